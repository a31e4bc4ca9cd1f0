package io.guestdma.conformance;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * A virtio-pci driver written against QEMU's device, over qtest: PCI configuration cycles, the
 * modern BAR's registers, rings in guest memory. The same calls run against QEMU and our machine;
 * nothing here depends on what a target answers except waits.
 */
final class VirtioDriver {
    static final int SLOT = 4;
    static final long BAR4 = 0xe000_0000L;
    static final long BAR1 = 0xe001_0000L;
    static final long COMMON = BAR4;
    static final long ISR = BAR4 + 0x1000;
    static final long DEVICE = BAR4 + 0x2000;
    static final long NOTIFY = BAR4 + 0x3000;
    static final long DESC = 0x100000;
    static final long AVAIL = 0x104000;
    static final long USED = 0x108000;
    static final long INDIRECT = 0x110000;
    /** The ISA interrupts the PIIX3 routes PIRQA-D to in these tests. */
    static final int[] PIRQ_IRQS = {10, 11, 5, 9};

    /** One buffer of a chain. */
    record Buf(long address, int length, boolean writable) {
    }

    final QtestClient c;
    int queueSize;
    private int nextDesc;
    private int availIdx;

    VirtioDriver(QtestClient client) {
        this.c = client;
    }

    /** This driver, ring state and all, talking to another machine: a migration's destination. */
    VirtioDriver movedTo(QtestClient other) {
        VirtioDriver moved = new VirtioDriver(other);
        moved.queueSize = queueSize;
        moved.nextDesc = nextDesc;
        moved.availIdx = availIdx;
        return moved;
    }

    int cfgRead(int function, int register, int size) {
        c.outl(0xcf8, 0x8000_0000 | function << 8 | (register & 0xfc));
        return switch (size) {
            case 1 -> c.inb(0xcfc + (register & 3));
            case 2 -> c.inw(0xcfc + (register & 2));
            default -> c.inl(0xcfc);
        };
    }

    void cfgWrite(int function, int register, int size, int value) {
        c.outl(0xcf8, 0x8000_0000 | function << 8 | (register & 0xfc));
        switch (size) {
            case 1 -> c.outb(0xcfc + (register & 3), value);
            case 2 -> c.outw(0xcfc + (register & 2), value);
            default -> c.outl(0xcfc, value);
        }
    }

    int cfgRead(int register, int size) {
        return cfgRead(SLOT << 3, register, size);
    }

    void cfgWrite(int register, int size, int value) {
        cfgWrite(SLOT << 3, register, size, value);
    }

    long read(long address, int size) {
        String op = switch (size) {
            case 1 -> "readb";
            case 2 -> "readw";
            case 4 -> "readl";
            default -> "readq";
        };
        return Long.parseUnsignedLong(c.ok(String.format("%s 0x%x", op, address)).substring(2), 16);
    }

    void write(long address, int size, long value) {
        String op = switch (size) {
            case 1 -> "writeb";
            case 2 -> "writew";
            case 4 -> "writel";
            default -> "writeq";
        };
        c.ok(String.format("%s 0x%x 0x%x", op, address, value));
    }

    /** Logs the whole configuration space and what each BAR's size probe answers (then restores it). */
    void logConfigurationAndBarSizes(Observations log) {
        for (int r = 0; r < 256; r += 4) {
            log.hex(String.format("config[%02x]", r), cfgRead(r, 4));
        }
        for (int bar = 0; bar < 6; bar++) {
            int reg = 0x10 + 4 * bar;
            int saved = cfgRead(reg, 4);
            cfgWrite(reg, 4, -1);
            log.hex("BAR" + bar + " size probe", cfgRead(reg, 4));
            cfgWrite(reg, 4, saved);
        }
    }

    /** Routes PIRQA-D, places the BARs and turns on I/O, memory and bus mastering. */
    void plugIn(boolean msixBar) {
        c.irqInterceptIn("ioapic");
        for (int p = 0; p < 4; p++) {
            cfgWrite(1 << 3, 0x60 + p, 1, PIRQ_IRQS[p]);
        }
        cfgWrite(0x20, 4, (int) BAR4);
        cfgWrite(0x24, 4, 0);
        if (msixBar) {
            cfgWrite(0x14, 4, (int) BAR1);
        }
        cfgWrite(0x04, 2, 0x7);
    }

    /** Reset, ACKNOWLEDGE|DRIVER, features, FEATURES_OK, queue 0, DRIVER_OK. */
    void start(long features, int size) {
        write(COMMON + 0x14, 1, 0);
        write(COMMON + 0x14, 1, 3);
        write(COMMON + 0x08, 4, 0);
        write(COMMON + 0x0c, 4, features & 0xffff_ffffL);
        write(COMMON + 0x08, 4, 1);
        write(COMMON + 0x0c, 4, features >>> 32);
        write(COMMON + 0x14, 1, 0xb);
        c.memset(DESC, 0xc000, 0);
        write(COMMON + 0x16, 2, 0);
        write(COMMON + 0x18, 2, size);
        write(COMMON + 0x20, 4, DESC);
        write(COMMON + 0x24, 4, 0);
        write(COMMON + 0x28, 4, AVAIL);
        write(COMMON + 0x2c, 4, 0);
        write(COMMON + 0x30, 4, USED);
        write(COMMON + 0x34, 4, 0);
        write(COMMON + 0x1c, 2, 1);
        write(COMMON + 0x14, 1, 0xf);
        queueSize = size;
        nextDesc = 0;
        availIdx = 0;
    }

    int status() {
        return (int) read(COMMON + 0x14, 1);
    }

    static byte[] descriptor(long address, int length, int flags, int next) {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(address).putInt(length).putShort((short) flags).putShort((short) next);
        return b.array();
    }

    /** Writes a chain into the descriptor table; returns its head. */
    int place(List<Buf> bufs) {
        int head = nextDesc;
        for (int i = 0; i < bufs.size(); i++) {
            int d = (head + i) % queueSize;
            Buf b = bufs.get(i);
            boolean more = i + 1 < bufs.size();
            c.memwrite(DESC + 16L * d, descriptor(b.address(), b.length(), (more ? 1 : 0) | (b.writable() ? 2 : 0),
                    more ? (d + 1) % queueSize : 0));
        }
        nextDesc = (head + bufs.size()) % queueSize;
        return head;
    }

    /** Writes a chain into an indirect table and one descriptor pointing at it; returns its head. */
    int placeIndirect(List<Buf> bufs) {
        for (int i = 0; i < bufs.size(); i++) {
            Buf b = bufs.get(i);
            boolean more = i + 1 < bufs.size();
            c.memwrite(INDIRECT + 16L * i, descriptor(b.address(), b.length(), (more ? 1 : 0) | (b.writable() ? 2 : 0),
                    more ? i + 1 : 0));
        }
        int head = nextDesc;
        c.memwrite(DESC + 16L * head, descriptor(INDIRECT, 16 * bufs.size(), 4, 0));
        nextDesc = (head + 1) % queueSize;
        return head;
    }

    /** Raw descriptor bytes at an index (for hostile chains). */
    void rawDescriptor(int index, long address, int length, int flags, int next) {
        c.memwrite(DESC + 16L * index, descriptor(address, length, flags, next));
    }

    void offer(int head) {
        c.memwrite(AVAIL + 4 + 2L * (availIdx % queueSize), new byte[] {(byte) head, (byte) (head >> 8)});
        availIdx = (availIdx + 1) & 0xffff;
        setAvailIdx(availIdx);
    }

    void setAvailIdx(int index) {
        c.memwrite(AVAIL + 2, new byte[] {(byte) index, (byte) (index >> 8)});
    }

    void kick() {
        write(NOTIFY, 2, 0);
    }

    int usedIdx() {
        return (int) read(USED + 2, 2);
    }

    /** Waits until the used index is {@code index} or the device needs a reset; false on timeout. */
    boolean await(int index) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < deadline) {
            if (usedIdx() == index || (status() & 0x40) != 0) {
                return true;
            }
        }
        return false;
    }
}
