package io.guestdma.virtio;

import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioHandler;
import java.util.List;

/**
 * A virtio driver in a few lines, for tests: negotiates features, sets up queues in guest RAM and
 * submits descriptor chains through the transport's registers, as a guest's driver would.
 */
final class GuestDriver {
    /** One buffer of a chain: guest address, length, device-writable or not. */
    record Buf(long address, int length, boolean writable) {
    }

    static final long RINGS = 0x10000;
    static final long RING_STRIDE = 0x10000;

    final VirtioPci pci;
    final GuestMemory memory;
    final MmioHandler bar;
    private final int[] nextDesc = new int[8];
    private final int[] availIdx = new int[8];
    private final int[] size = new int[8];

    GuestDriver(VirtioPci pci, GuestMemory memory) {
        this.pci = pci;
        this.memory = memory;
        this.bar = pci.modernBar();
    }

    /**
     * A driver on a migrated device that goes on where {@code source} was: the same free
     * descriptors and avail indices (a guest's driver state lives in the RAM that migrated).
     */
    GuestDriver continuing(GuestDriver source) {
        System.arraycopy(source.nextDesc, 0, nextDesc, 0, nextDesc.length);
        System.arraycopy(source.availIdx, 0, availIdx, 0, availIdx.length);
        System.arraycopy(source.size, 0, size, 0, size.length);
        return this;
    }

    long common(int offset, int width) {
        return bar.read(VirtioPci.COMMON + offset, width);
    }

    void common(int offset, int width, long value) {
        bar.write(VirtioPci.COMMON + offset, width, value);
    }

    long desc(int q) {
        return RINGS + q * RING_STRIDE;
    }

    long avail(int q) {
        return desc(q) + 0x4000;
    }

    long used(int q) {
        return desc(q) + 0x8000;
    }

    /** Status ACK|DRIVER, features, FEATURES_OK, the queues, DRIVER_OK; bus mastering on. */
    GuestDriver start(long features, int queues, int queueSize) {
        pci.commandWritten(0x6);
        common(0x14, 1, 0);
        common(0x14, 1, 3);
        common(0x08, 4, 0);
        common(0x0c, 4, features & 0xffff_ffffL);
        common(0x08, 4, 1);
        common(0x0c, 4, features >>> 32);
        common(0x14, 1, 0xb);
        for (int q = 0; q < queues; q++) {
            setupQueue(q, queueSize);
        }
        common(0x14, 1, 0xf);
        return this;
    }

    void setupQueue(int q, int queueSize) {
        memory.fill(desc(q), RING_STRIDE, (byte) 0);
        common(0x16, 2, q);
        common(0x18, 2, queueSize);
        common(0x20, 4, desc(q));
        common(0x24, 4, 0);
        common(0x28, 4, avail(q));
        common(0x2c, 4, 0);
        common(0x30, 4, used(q));
        common(0x34, 4, 0);
        common(0x1c, 2, 1);
        size[q] = queueSize;
        nextDesc[q] = 0;
        availIdx[q] = 0;
    }

    /** Writes a chain of descriptors into the table and makes it available; returns its head. */
    int submit(int q, List<Buf> bufs) {
        int head = place(q, bufs);
        offer(q, head);
        return head;
    }

    /** Writes the chain without offering it. */
    int place(int q, List<Buf> bufs) {
        int head = nextDesc[q];
        for (int i = 0; i < bufs.size(); i++) {
            int d = (head + i) % size[q];
            Buf b = bufs.get(i);
            long at = desc(q) + 16L * d;
            memory.writeLong(at, b.address());
            memory.writeInt(at + 8, b.length());
            boolean more = i + 1 < bufs.size();
            memory.writeShort(at + 12, (short) ((more ? Virtqueue.DESC_F_NEXT : 0) | (b.writable() ? Virtqueue.DESC_F_WRITE : 0)));
            memory.writeShort(at + 14, (short) (more ? (d + 1) % size[q] : 0));
        }
        nextDesc[q] = (head + bufs.size()) % size[q];
        return head;
    }

    /** A chain of one indirect descriptor pointing at a table at {@code table}. */
    int submitIndirect(int q, long table, List<Buf> bufs) {
        for (int i = 0; i < bufs.size(); i++) {
            Buf b = bufs.get(i);
            long at = table + 16L * i;
            memory.writeLong(at, b.address());
            memory.writeInt(at + 8, b.length());
            boolean more = i + 1 < bufs.size();
            memory.writeShort(at + 12, (short) ((more ? Virtqueue.DESC_F_NEXT : 0) | (b.writable() ? Virtqueue.DESC_F_WRITE : 0)));
            memory.writeShort(at + 14, (short) (more ? i + 1 : 0));
        }
        int head = nextDesc[q];
        long at = desc(q) + 16L * head;
        memory.writeLong(at, table);
        memory.writeInt(at + 8, 16 * bufs.size());
        memory.writeShort(at + 12, (short) Virtqueue.DESC_F_INDIRECT);
        memory.writeShort(at + 14, (short) 0);
        nextDesc[q] = (head + 1) % size[q];
        offer(q, head);
        return head;
    }

    void offer(int q, int head) {
        memory.writeShort(avail(q) + 4 + 2L * (availIdx[q] % size[q]), (short) head);
        availIdx[q] = (availIdx[q] + 1) & 0xffff;
        memory.writeShort(avail(q) + 2, (short) availIdx[q]);
    }

    void notify(int q) {
        bar.write(VirtioPci.NOTIFY + 4L * q, 2, q);
    }

    int usedIdx(int q) {
        return Short.toUnsignedInt(memory.readShort(used(q) + 2));
    }

    int usedId(int q, int i) {
        return memory.readInt(used(q) + 4 + 8L * (i % size[q]));
    }

    int usedLen(int q, int i) {
        return memory.readInt(used(q) + 8 + 8L * (i % size[q]));
    }

    int status() {
        return (int) common(0x14, 1);
    }

    /** Waits until the used index reaches {@code index}, or fails after 10 s. */
    void awaitUsed(int q, int index) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (usedIdx(q) != index) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("used index of queue " + q + " stayed at " + usedIdx(q) + ", expected " + index
                        + "; status 0x" + Integer.toHexString(status()));
            }
            Thread.onSpinWait();
        }
    }

    /** Waits until the device status has NEEDS_RESET, or fails after 10 s. */
    void awaitNeedsReset() {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while ((status() & VirtioPci.STATUS_NEEDS_RESET) == 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no NEEDS_RESET; status 0x" + Integer.toHexString(status()));
            }
            Thread.onSpinWait();
        }
    }
}
