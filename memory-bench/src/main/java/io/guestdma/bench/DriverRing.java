package io.guestdma.bench;

import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioHandler;
import io.guestdma.memory.RamView;
import io.guestdma.virtio.VirtioPci;
import java.nio.ByteOrder;

/**
 * A guest driver's side of one split virtqueue for the benchmark workloads: the queue set up and
 * enabled through the common configuration, its available ring written and its used ring read
 * through RamViews (a driver's stores and loads).
 *
 * @param avail the available ring
 * @param used  the used ring
 */
record DriverRing(RamView avail, RamView used) {
    /**
     * Sets up queue {@code q} with its descriptor table at {@code table}, the available ring
     * 0x4000 and the used ring 0x8000 bytes after it, and enables it.
     *
     * @param bar    the device's modern BAR
     * @param memory guest memory
     * @param q      the queue's index
     * @param size   the queue's size
     * @param table  the descriptor table's address
     * @return the queue's rings
     */
    static DriverRing enable(MmioHandler bar, GuestMemory memory, int q, int size, long table) {
        long availAt = table + 0x4000;
        long usedAt = table + 0x8000;
        bar.write(VirtioPci.COMMON + 0x16, 2, q);
        bar.write(VirtioPci.COMMON + 0x18, 2, size);
        bar.write(VirtioPci.COMMON + 0x20, 4, table);
        bar.write(VirtioPci.COMMON + 0x28, 4, availAt);
        bar.write(VirtioPci.COMMON + 0x30, 4, usedAt);
        bar.write(VirtioPci.COMMON + 0x1c, 2, 1);
        return new DriverRing(memory.ramView(availAt, 6 + 2 * size, ByteOrder.LITTLE_ENDIAN, true),
                memory.ramView(usedAt, 6 + 8 * size, ByteOrder.LITTLE_ENDIAN, false));
    }

    /**
     * Writes descriptor {@code index} of the table at {@code table}.
     *
     * @param memory  guest memory
     * @param table   the descriptor table's address
     * @param index   the descriptor
     * @param address the buffer's address
     * @param length  the buffer's length
     * @param flags   VIRTQ_DESC_F_*
     * @param next    the next descriptor's index (read only with NEXT)
     */
    static void descriptor(GuestMemory memory, long table, int index, long address, int length, int flags, int next) {
        long at = table + 16L * index;
        memory.writeLong(at, address);
        memory.writeInt(at + 8, length);
        memory.writeShort(at + 12, (short) flags);
        memory.writeShort(at + 14, (short) next);
    }
}
