package io.guestdma.ide;

import io.guestdma.memory.SgList;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The range entries of one DATA SET MANAGEMENT (TRIM) command, parsed from its payload as the guest
 * laid it out: 8-byte little-endian entries (48-bit LBA, 16-bit count) on a grid that starts at
 * each scatter-gather entry (each PRD's share of the payload), a tail of an entry shorter than 8
 * bytes ignored. That is what QEMU 7.2's {@code ide_issue_trim_cb} reads when every PRD maps as
 * one piece, as one in RAM does.
 *
 * <p>Why the grid is anchored to the guest's entries and not to the pieces the engine maps: QEMU
 * parses per mapped iovec, so where a PRD of MMIO is cut (by bounce space that another device is
 * holding at that moment) would decide which bytes form an entry, and with it whether the command
 * completes or aborts. That depends on timing and on the data path (MAP cuts where the bounce pool
 * runs out, COPY where its buffer ends), not on anything the guest wrote. Here an entry that a cut
 * splits is put together from both sides, so the outcome is the same in every mode and at any
 * time.
 *
 * <p>Fed the payload in list order, chunk by chunk, under one transfer; not thread-safe.
 */
final class TrimPayload {
    private static final ValueLayout.OfLong LONG_LE =
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Where the entries go. */
    @FunctionalInterface
    interface RangeSink {
        /**
         * Handles one range with a nonzero count.
         *
         * @param firstSector the 48-bit first sector
         * @param sectors     the count, 1..65535
         * @return false to stop the command (a range past the end)
         * @throws IOException if the backend failed
         */
        boolean range(long firstSector, int sectors) throws IOException;
    }

    private SgList sg;
    /** The scatter-gather entry the next byte belongs to. */
    private int entry;
    /** Bytes of that entry not yet fed. */
    private long leftInEntry;
    /** The bytes of an entry that a cut has split, little-endian, and how many there are. */
    private long partial;
    private int partialBytes;

    /**
     * Begins a payload laid out by {@code list}, which must stay unchanged while it is fed.
     *
     * @param list the command's scatter-gather list
     */
    void start(SgList list) {
        sg = list;
        entry = -1;
        leftInEntry = 0;
        partial = 0;
        partialBytes = 0;
    }

    /**
     * Feeds the next bytes of the payload (any cut of it: a mapped piece, a copy buffer) and hands
     * every entry they complete with a nonzero count to {@code sink}, in order.
     *
     * @param bytes the next bytes, in list order
     * @param sink  where ranges go
     * @return false if {@code sink} stopped the command
     * @throws IOException           if {@code sink} does
     * @throws IllegalStateException if more bytes are fed than the list describes
     */
    boolean feed(MemorySegment bytes, RangeSink sink) throws IOException {
        long size = bytes.byteSize();
        long at = 0;
        while (at < size) {
            while (leftInEntry == 0) {
                if (++entry >= sg.count()) {
                    throw new IllegalStateException("TRIM payload longer than its scatter-gather list");
                }
                leftInEntry = sg.length(entry);
                partial = 0;
                partialBytes = 0;
            }
            long end = at + Math.min(size - at, leftInEntry);
            leftInEntry -= end - at;
            while (at < end) {
                long value;
                if (partialBytes == 0 && end - at >= 8) {
                    value = bytes.get(LONG_LE, at);
                    at += 8;
                } else {
                    partial |= (bytes.get(ValueLayout.JAVA_BYTE, at) & 0xffL) << (8 * partialBytes);
                    at++;
                    if (++partialBytes < 8) {
                        continue;
                    }
                    value = partial;
                    partial = 0;
                    partialBytes = 0;
                }
                int sectors = (int) (value >>> 48);
                if (sectors != 0 && !sink.range(value & 0x0000_ffff_ffff_ffffL, sectors)) {
                    return false;
                }
            }
        }
        return true;
    }
}
