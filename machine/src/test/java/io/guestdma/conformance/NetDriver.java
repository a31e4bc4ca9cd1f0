package io.guestdma.conformance;

import io.guestdma.conformance.VirtioDriver.Buf;
import java.util.List;

/**
 * A virtio-net driver over qtest, on top of {@link VirtioDriver}'s PCI and register access: the
 * receive and transmit queues (0 and 1) with rings of their own in guest memory, INTx through the
 * PIIX3 (slot 4, INTA#: PIRQD, IRQ 9). The same calls run against QEMU and our machine.
 */
final class NetDriver {
    static final int RX = 0;
    static final int TX = 1;
    static final long RINGS = 0x100000;
    static final long RING_STRIDE = 0x10000;
    static final int IRQ = VirtioDriver.PIRQ_IRQS[3];

    final VirtioDriver d;
    final QtestClient c;
    private final int[] size = new int[2];
    private final int[] nextDesc = new int[2];
    private final int[] availIdx = new int[2];

    NetDriver(VirtioDriver driver) {
        this.d = driver;
        this.c = driver.c;
    }

    static long desc(int q) {
        return RINGS + q * RING_STRIDE;
    }

    static long avail(int q) {
        return desc(q) + 0x4000;
    }

    static long used(int q) {
        return desc(q) + 0x8000;
    }

    /** Plugs in (without MSI-X), then reset, features, FEATURES_OK, both queues, DRIVER_OK. */
    void start(long features, int queueSize) {
        d.plugIn(false);
        long common = VirtioDriver.COMMON;
        d.write(common + 0x14, 1, 0);
        d.write(common + 0x14, 1, 3);
        d.write(common + 0x08, 4, 0);
        d.write(common + 0x0c, 4, features & 0xffff_ffffL);
        d.write(common + 0x08, 4, 1);
        d.write(common + 0x0c, 4, features >>> 32);
        d.write(common + 0x14, 1, 0xb);
        c.memset(RINGS, 2 * RING_STRIDE, 0);
        for (int q = 0; q < 2; q++) {
            d.write(common + 0x16, 2, q);
            d.write(common + 0x18, 2, queueSize);
            d.write(common + 0x20, 4, desc(q));
            d.write(common + 0x24, 4, 0);
            d.write(common + 0x28, 4, avail(q));
            d.write(common + 0x2c, 4, 0);
            d.write(common + 0x30, 4, used(q));
            d.write(common + 0x34, 4, 0);
            d.write(common + 0x1c, 2, 1);
            size[q] = queueSize;
            nextDesc[q] = 0;
            availIdx[q] = 0;
        }
        d.write(common + 0x14, 1, 0xf);
    }

    /** Writes a chain into queue q's table and makes it available (no notify); returns its head. */
    int submit(int q, List<Buf> bufs) {
        int head = nextDesc[q];
        for (int i = 0; i < bufs.size(); i++) {
            int at = (head + i) % size[q];
            Buf b = bufs.get(i);
            boolean more = i + 1 < bufs.size();
            c.memwrite(desc(q) + 16L * at, VirtioDriver.descriptor(b.address(), b.length(),
                    (more ? 1 : 0) | (b.writable() ? 2 : 0), more ? (at + 1) % size[q] : 0));
        }
        nextDesc[q] = (head + bufs.size()) % size[q];
        c.memwrite(avail(q) + 4 + 2L * (availIdx[q] % size[q]), new byte[] {(byte) head, (byte) (head >> 8)});
        availIdx[q] = (availIdx[q] + 1) & 0xffff;
        c.memwrite(avail(q) + 2, new byte[] {(byte) availIdx[q], (byte) (availIdx[q] >> 8)});
        return head;
    }

    void kick(int q) {
        d.write(VirtioDriver.NOTIFY + 4L * q, 2, q);
    }

    int usedIdx(int q) {
        return (int) d.read(used(q) + 2, 2);
    }

    int usedFlags(int q) {
        return (int) d.read(used(q), 2);
    }

    int usedId(int q, int i) {
        return (int) d.read(used(q) + 4 + 8L * (i % size[q]), 4);
    }

    int usedLen(int q, int i) {
        return (int) d.read(used(q) + 8 + 8L * (i % size[q]), 4);
    }

    /**
     * Waits until queue q's used index is {@code index} and, if {@code interrupt}, INTx is raised
     * (our device publishes the used index a moment before it interrupts); gives up after 3 s.
     *
     * @return whether both happened
     */
    boolean await(int q, int index, boolean interrupt) {
        long deadline = System.nanoTime() + 3_000_000_000L;
        while (System.nanoTime() < deadline) {
            if (usedIdx(q) == (index & 0xffff) && (!interrupt || c.irq(IRQ))) {
                return true;
            }
            if ((d.status() & 0x40) != 0) {
                return false;
            }
        }
        return false;
    }
}
