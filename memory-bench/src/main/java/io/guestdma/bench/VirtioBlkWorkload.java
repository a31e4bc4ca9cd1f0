package io.guestdma.bench;

import io.guestdma.block.BlockBackend;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioHandler;
import io.guestdma.memory.RamView;
import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioBlkConfig;
import io.guestdma.virtio.VirtioPci;
import io.guestdma.virtio.Virtqueue;

/**
 * virtio-blk-pci driven as a guest driver drives it, for the benchmarks: per queue, {@code depth}
 * read or write requests (a 16-byte header, {@code bytes} of data in one buffer, a status byte) are laid
 * out once in the descriptor table; a batch makes all of them available (avail ring entries and
 * index through a RamView, as a driver's stores), writes the notify register, and waits for the
 * used index to move by {@code depth}. The device processes a queue inside its notify (no I/O
 * threads), so a batch is the device's whole cost on the calling thread: ring loads, chain checks,
 * header reads, the DmaBlockIo transfer, status byte, used ring, interrupt decision.
 */
final class VirtioBlkWorkload implements AutoCloseable {
    private static final int QUEUE_SIZE = 128;
    private static final long RINGS = 0x100000;
    private static final long DATA = 0x1000000;

    private final GuestMemory memory;
    private final VirtioBlk blk;
    private final MmioHandler bar;
    private final RamView[] avail;
    private final RamView[] used;
    private final int depth;
    private final int[] availIdx;

    VirtioBlkWorkload(BlockBackend disk, int queues, int depth, int bytes) {
        this(disk, queues, depth, bytes, false, false);
    }

    /**
     * @param write    whether the requests write (VIRTIO_BLK_T_OUT) rather than read
     * @param copyPath whether the device moves data through a heap buffer instead of mapping it
     */
    VirtioBlkWorkload(BlockBackend disk, int queues, int depth, int bytes, boolean write, boolean copyPath) {
        this.depth = depth;
        memory = GuestMemory.ofRam(64L << 20);
        DeviceAddressSpace dev = memory.deviceSpace("virtio-blk");
        blk = new VirtioBlk(dev, disk, VirtioBlkConfig.defaults().withQueues(queues).withIoThreads(false)
                .withCopyPath(copyPath));
        VirtioPci pci = new VirtioPci(blk, dev, level -> { }, 0);
        bar = pci.modernBar();
        pci.commandWritten(0x6);
        common(0x14, 1, 3);
        common(0x08, 4, 1);
        common(0x0c, 4, 1); // VERSION_1
        common(0x14, 1, 0xb);
        avail = new RamView[queues];
        used = new RamView[queues];
        availIdx = new int[queues];
        for (int q = 0; q < queues; q++) {
            long desc = RINGS + 0x10000L * q;
            DriverRing ring = DriverRing.enable(bar, memory, q, QUEUE_SIZE, desc);
            avail[q] = ring.avail();
            used[q] = ring.used();
            long buffers = DATA + (long) q * depth * (bytes + 4096);
            for (int r = 0; r < depth; r++) {
                long header = RINGS + 0x80000 + 0x1000L * q + 32L * r;
                memory.writeInt(header, write ? VirtioBlk.T_OUT : VirtioBlk.T_IN);
                memory.writeLong(header + 8, (long) r * (bytes / 512));
                long data = buffers + (long) r * (bytes + 4096);
                descriptor(desc, 3 * r, header, 16, Virtqueue.DESC_F_NEXT);
                memory.fill(data, bytes, (byte) (r + 1));
                descriptor(desc, 3 * r + 1, data, bytes, Virtqueue.DESC_F_NEXT | (write ? 0 : Virtqueue.DESC_F_WRITE));
                descriptor(desc, 3 * r + 2, header + 16, 1, Virtqueue.DESC_F_WRITE);
            }
        }
        common(0x14, 1, 0xf);
    }

    private void common(int offset, int size, long value) {
        bar.write(VirtioPci.COMMON + offset, size, value);
    }

    private void descriptor(long table, int index, long address, int length, int flags) {
        DriverRing.descriptor(memory, table, index, address, length, flags, index + 1);
    }

    /**
     * One batch on queue {@code q}: every request made available, one notify, all completed.
     *
     * @return the used index, so the work cannot be optimised away
     * @throws IllegalStateException if the device did not complete the batch (it broke)
     */
    int batch(int q) {
        RamView a = avail[q];
        int idx = availIdx[q];
        for (int r = 0; r < depth; r++) {
            a.setShort(4 + 2L * ((idx + r) % QUEUE_SIZE), (short) (3 * r));
        }
        idx = (idx + depth) & 0xffff;
        availIdx[q] = idx;
        a.setShortRelease(2, (short) idx);
        bar.write(VirtioPci.NOTIFY + 4L * q, 2, q);
        int usedIdx = Short.toUnsignedInt(used[q].getShortAcquire(2));
        if (usedIdx != idx) {
            throw new IllegalStateException("virtio-blk completed up to " + usedIdx + " of " + idx);
        }
        return usedIdx;
    }

    @Override
    public void close() {
        blk.close();
        memory.close();
    }
}
