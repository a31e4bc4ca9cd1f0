package io.guestdma.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The DMA debug mode Jamie Lokier asked for in the 2009 review, after Linux's DMA-API debugging:
 * catch device misuse of the map API "even on x86", where it would otherwise work by accident.
 *
 * <ul>
 * <li>Every mapping's segment lives in its own arena, closed at unmap: any access after unmap
 *     throws IllegalStateException instead of silently touching guest memory.</li>
 * <li>Every live mapping remembers the stack that created it, for leak reports.</li>
 * <li>FROM_DEVICE bounce buffers are filled with a position-dependent poison pattern, so unmap can
 *     tell a device that wrote past its access length, or that claims bytes it never wrote.</li>
 * </ul>
 *
 * Enabled per address space ({@link GuestMemory.Builder#debug}) or for a whole run with
 * {@code -Dguestdma.dma.debug=true}. When off, none of this code runs.
 */
final class DmaDebug {
    /** Whether the system property turns debug mode on for every address space. */
    static final boolean FORCED = Boolean.getBoolean("guestdma.dma.debug");

    private static final long POISON = 0xDB5E_A5ED_0BAD_F00DL;
    private static final ValueLayout.OfLong WORD = ValueLayout.JAVA_LONG_UNALIGNED;

    private final Map<DmaMapping, Throwable> live = new ConcurrentHashMap<>();

    /** A scope for one mapping; closing it revokes the segment handed to the device. */
    Arena newScope() {
        return Arena.ofShared();
    }

    /** The device's view of {@code memory}: same bytes, but only valid while {@code scope} is open. */
    @SuppressWarnings("restricted") // re-scoping guest memory to a per-mapping arena is the point
    MemorySegment revocable(MemorySegment memory, Arena scope, boolean readOnly) {
        MemorySegment view = memory.reinterpret(scope, null);
        return readOnly ? view.asReadOnly() : view;
    }

    void poison(MemorySegment buffer) {
        long length = buffer.byteSize();
        long words = length / 8;
        for (long i = 0; i < words; i++) {
            buffer.set(WORD, i * 8, poisonWord(i));
        }
        for (long b = words * 8; b < length; b++) {
            buffer.set(ValueLayout.JAVA_BYTE, b, (byte) poisonWord(words));
        }
    }

    void track(DmaMapping mapping) {
        live.put(mapping, new Throwable("DMA mapping created here: " + mapping));
    }

    void untrack(DmaMapping mapping) {
        live.remove(mapping);
    }

    /**
     * Checks a FROM_DEVICE bounce buffer against its poison.
     *
     * @return a description of the misuse, or null if the buffer is consistent with accessLength
     */
    String checkPoison(DmaMapping mapping, MemorySegment buffer, long accessLength) {
        long length = mapping.length();
        long words = length / 8;
        for (long i = 0; i < words; i++) {
            long start = i * 8;
            boolean claimed = start + 8 <= accessLength;
            long value = buffer.get(WORD, start);
            if (claimed && value == poisonWord(i)) {
                return String.format("unmap of %s with access length %d: bytes at offset %d were never written"
                        + " (the device claims bytes it did not write)", mapping, accessLength, start);
            }
            if (!claimed) {
                // Only the bytes at or past accessLength must still hold the poison.
                int from = (int) Math.max(0, accessLength - start);
                long mask = -1L << (8 * from);
                long differing = (value ^ poisonWord(i)) & mask;
                if (differing != 0) {
                    return String.format("unmap of %s with access length %d: the device wrote at offset %d,"
                            + " past its access length (those bytes are not written back)", mapping, accessLength,
                            start + Long.numberOfTrailingZeros(differing) / 8);
                }
            }
        }
        byte tail = (byte) poisonWord(words);
        for (long b = Math.max(words * 8, accessLength); b < length; b++) {
            if (buffer.get(ValueLayout.JAVA_BYTE, b) != tail) {
                return String.format("unmap of %s with access length %d: the device wrote at offset %d,"
                        + " past its access length (those bytes are not written back)", mapping, accessLength, b);
            }
        }
        return null;
    }

    /** @return one description per live mapping, each with the stack that created it */
    List<Throwable> outstanding() {
        return new ArrayList<>(live.values());
    }

    private static long poisonWord(long index) {
        return POISON ^ (index * 0x9E37_79B9_7F4A_7C15L);
    }
}
