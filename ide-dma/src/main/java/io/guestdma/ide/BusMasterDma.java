package io.guestdma.ide;

import io.guestdma.memory.AddressSpace;
import io.guestdma.memory.SgList;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The PIIX bus-master DMA function of one channel (QEMU's {@code BMDMAState}): command register,
 * status register, PRD table pointer, and the walk of the PRD table into a scatter-gather list.
 *
 * <p>Registers (byte offsets in the channel's 8-byte slice of BAR4): 0 command (bit 0 START,
 * bit 3 direction, other bits read 0), 2 status (bit 0 ACTIVE read-only, bits 1 ERROR and 2 INTR
 * write-1-to-clear, bits 5/6 drive 0/1 DMA capable read/write), 4..7 PRD table address (the low
 * two bits read 0). Offsets 1 and 3 read 0xff.
 *
 * <p>Guarded by the owning channel's lock; the PRD walk reads guest memory through the copy path.
 */
final class BusMasterDma {
    static final int CMD_START = 0x01;
    static final int CMD_WRITE_TO_MEMORY = 0x08;
    static final int STATUS_ACTIVE = 0x01;
    static final int STATUS_ERROR = 0x02;
    static final int STATUS_INTR = 0x04;

    /** QEMU's fail-safe: a PRD table never extends past one page from its start. */
    private static final int PRD_TABLE_LIMIT = 4096;
    private static final int PRD_EOT = 0x80000000;

    private final AddressSpace memory;
    private final PiixIde controller;
    /** One PRD entry as fetched from guest memory. */
    private final MemorySegment entry = MemorySegment.ofArray(new long[1]);

    int command;
    int status;
    /** PRD table address as the guest set it (bits 1..0 always 0). */
    int tableAddress;

    // PRD walk position; 32-bit registers, wrapping as the hardware's do
    private int currentEntryAddress;
    private int currentPrdAddress;
    private int currentPrdLength;
    private boolean currentPrdLast;

    /** QEMU's {@code bm->dma_cb != NULL}: a DMA command waits for (or runs under) START. */
    boolean armed;

    BusMasterDma(AddressSpace memory, PiixIde controller) {
        this.memory = memory;
        this.controller = controller;
    }

    int readAddressBytes(int offset, int size) {
        int shift = offset * 8;
        long mask = (1L << (size * 8)) - 1;
        return (int) ((Integer.toUnsignedLong(tableAddress) >>> shift) & mask);
    }

    void writeAddressBytes(int offset, int size, int value) {
        int shift = offset * 8;
        long mask = (1L << (size * 8)) - 1;
        long address = Integer.toUnsignedLong(tableAddress);
        address &= ~(mask << shift);
        address |= ((Integer.toUnsignedLong(value) & mask) << shift) & ~3L;
        tableAddress = (int) address;
    }

    /** Status writes: ERROR and INTR are write-1-to-clear, bits 5/6 stored, ACTIVE kept. */
    void writeStatus(int value) {
        status = (value & 0x60) | (status & STATUS_ACTIVE) | (status & ~value & 0x06);
    }

    /** A DMA command has been issued: forget any old PRD position but not the table pointer. */
    void arm() {
        armed = true;
        currentPrdLast = false;
        currentPrdAddress = 0;
        currentPrdLength = 0;
    }

    /** START went from 0 to 1: the walk begins at the table's first entry. */
    void rewind() {
        currentEntryAddress = tableAddress;
    }

    void setInactive(boolean stayActive) {
        armed = false;
        if (stayActive) {
            status |= STATUS_ACTIVE;
        } else {
            status &= ~STATUS_ACTIVE;
        }
    }

    void reset() {
        if ((status & STATUS_ACTIVE) != 0) {
            setInactive(false);
        }
        armed = false;
        command = 0;
        status = 0;
        tableAddress = 0;
        currentEntryAddress = 0;
        currentPrdLast = false;
        currentPrdAddress = 0;
        currentPrdLength = 0;
    }

    /**
     * Walks PRD entries into {@code sg} until {@code limit} bytes are collected, then keeps
     * consuming (but not collecting) entries up to the end of the table, as QEMU's
     * bmdma_prepare_buf does: the table ends at an entry with EOT or one page after its start.
     *
     * <p>A table entry that cannot be fetched because a device's MMIO handler failed (or refused
     * a re-entrant access) stops the walk: the transfer must end with a bus-master error. QEMU 7.2
     * ignores the result of that read; unassigned space still reads as zeros, as there.
     *
     * @param sg cleared and filled with at most {@code limit} bytes
     * @return the bytes all consumed entries describe (QEMU's io_buffer_size), or -1 if an entry
     *         could not be fetched
     */
    long collect(SgList sg, long limit) {
        sg.reset();
        long described = 0;
        while (true) {
            if (currentPrdLength == 0) {
                if (currentPrdLast
                        || Integer.toUnsignedLong(currentEntryAddress - tableAddress) >= PRD_TABLE_LIMIT) {
                    return described;
                }
                // One 8-byte read per entry, as QEMU's bmdma_prepare_buf does (the memory core
                // splits it for MMIO that takes narrower accesses).
                if (!fetchPrd(currentEntryAddress)) {
                    return -1;
                }
                long prd = entry.get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
                int base = (int) prd;
                int count = (int) (prd >>> 32);
                currentEntryAddress += 8;
                int length = count & 0xfffe;
                currentPrdLength = length == 0 ? 0x10000 : length;
                currentPrdAddress = base;
                currentPrdLast = (count & PRD_EOT) != 0;
            }
            int length = currentPrdLength;
            long take = Math.min(limit - sg.size(), length);
            if (take > 0) {
                sg.add(Integer.toUnsignedLong(currentPrdAddress), take);
            }
            currentPrdAddress += length;
            currentPrdLength = 0;
            described += length;
        }
    }

    /**
     * Reads the PRD entry at {@code address} into {@link #entry} through the bus master's address
     * space: with bus mastering off it sees nothing (zeros), as in QEMU.
     *
     * @return false if a device's handler (or an IOMMU) failed the read
     */
    private boolean fetchPrd(int address) {
        return !memory.read(Integer.toUnsignedLong(address), entry).failed();
    }
}
