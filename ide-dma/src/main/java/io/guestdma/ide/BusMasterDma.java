package io.guestdma.ide;

import io.guestdma.memory.AddressSpace;
import io.guestdma.memory.SgList;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;
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

    /** QEMU's vmstate_bmdma plus the PRD walk position, which QEMU rebuilds on restart. */
    void save(StateWriter out) {
        out.u8(command).u8(status).u32(Integer.toUnsignedLong(tableAddress)).bool(armed);
        out.u32(Integer.toUnsignedLong(currentEntryAddress)).u32(Integer.toUnsignedLong(currentPrdAddress));
        out.u32(currentPrdLength).bool(currentPrdLast);
    }

    /** Reads what {@link #save} wrote; registers keep the bits the hardware can hold. */
    void load(StateReader in, String where) throws MigrationFormatException {
        command = in.u8(where + ".command");
        if ((command & ~(CMD_START | CMD_WRITE_TO_MEMORY)) != 0) {
            throw in.failure(where + ".command", String.format("0x%02x sets bits the register does not have", command));
        }
        status = in.u8(where + ".status");
        if ((status & ~(0x60 | STATUS_ACTIVE | STATUS_ERROR | STATUS_INTR)) != 0) {
            throw in.failure(where + ".status", String.format("0x%02x sets bits the register does not have", status));
        }
        tableAddress = (int) in.u32(where + ".tableAddress");
        if ((tableAddress & 3) != 0) {
            throw in.failure(where + ".tableAddress", "the low two bits of a PRD table address read 0");
        }
        armed = in.bool(where + ".armed");
        currentEntryAddress = (int) in.u32(where + ".currentEntryAddress");
        currentPrdAddress = (int) in.u32(where + ".currentPrdAddress");
        currentPrdLength = (int) in.u32InRange(where + ".currentPrdLength", 0, 0x10000);
        currentPrdLast = in.bool(where + ".currentPrdLast");
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
