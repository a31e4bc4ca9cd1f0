package io.guestdma.conformance;

import io.guestdma.conformance.VirtioDriver.Buf;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The legacy interface (virtio 0.9.5) of the transitional virtio-blk-pci, against QEMU 7.2: a
 * driver that knows only the I/O BAR0 registers (host and guest features, queue page frame number,
 * size, select, notify, status, ISR, MSI-X vectors, then the device configuration) sets the device
 * up and runs requests on the legacy ring layout; registers, rings, data, interrupts and the disk
 * must be the same on both machines.
 */
class VirtioLegacyConformanceTest {
    static final int IO = 0xc000;
    static final long RING = 0x100000;

    /** The legacy registers and the ring at RING, over a {@link VirtioDriver}'s qtest client. */
    static final class Legacy {
        final VirtioDriver d;
        int size;
        long avail;
        long used;
        int nextDesc;
        int availIdx;

        Legacy(VirtioDriver d) {
            this.d = d;
        }

        /** Routes the PIRQs, places BAR0 (and BAR1) and enables I/O decoding plus {@code command}'s bits. */
        void plugIn(int command) {
            d.c.irqInterceptIn("ioapic");
            for (int p = 0; p < 4; p++) {
                d.cfgWrite(1 << 3, 0x60 + p, 1, VirtioDriver.PIRQ_IRQS[p]);
            }
            d.cfgWrite(0x10, 4, IO);
            d.cfgWrite(0x14, 4, (int) VirtioDriver.BAR1);
            d.cfgWrite(0x04, 2, 0x1 | command);
        }

        /** Reset, ACKNOWLEDGE|DRIVER, features, queue 0 at RING, DRIVER_OK. */
        void start(int features) {
            d.c.outb(IO + 0x12, 0);
            d.c.outb(IO + 0x12, 3);
            d.c.outl(IO + 0x04, features);
            d.c.outw(IO + 0x0e, 0);
            size = d.c.inw(IO + 0x0c);
            d.c.memset(RING, 0x10000, 0);
            d.c.outl(IO + 0x08, (int) (RING >>> 12));
            avail = RING + 16L * size;
            used = (avail + 4 + 2L * size + 4095) & -4096L;
            d.c.outb(IO + 0x12, 7);
            nextDesc = 0;
            availIdx = 0;
        }

        int usedIdx() {
            return (int) d.read(used + 2, 2);
        }

        /** Places a chain, offers it, notifies queue 0, waits; records what a guest sees. */
        void request(Observations log, String what, List<Buf> chain) {
            d.c.memset(VirtioBlkConformanceTest.STATUS, 1, 0x55);
            int before = usedIdx();
            int head = nextDesc;
            for (int i = 0; i < chain.size(); i++) {
                Buf b = chain.get(i);
                boolean more = i + 1 < chain.size();
                int at = (head + i) % size;
                d.c.memwrite(RING + 16L * at, VirtioDriver.descriptor(b.address(), b.length(),
                        (more ? 1 : 0) | (b.writable() ? 2 : 0), more ? (at + 1) % size : 0));
            }
            nextDesc = (head + chain.size()) % size;
            d.c.memwrite(avail + 4 + 2L * (availIdx % size), new byte[] {(byte) head, (byte) (head >> 8)});
            availIdx = (availIdx + 1) & 0xffff;
            d.c.memwrite(avail + 2, new byte[] {(byte) availIdx, (byte) (availIdx >> 8)});
            d.c.outw(IO + 0x10, 0);
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (usedIdx() != ((before + 1) & 0xffff) && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            int now = usedIdx();
            log.hex(what + ": used idx", now);
            for (int i = before; i != now; i = (i + 1) & 0xffff) {
                long entry = used + 4 + 8L * (i % size);
                log.hex(what + ": used id", d.read(entry, 4));
                log.hex(what + ": used len", d.read(entry + 4, 4));
            }
            log.hex(what + ": status byte", d.read(VirtioBlkConformanceTest.STATUS, 1));
            log.hex(what + ": device status", d.c.inb(IO + 0x12));
            log.flag(what + ": irq", d.c.irq(9));
            log.hex(what + ": isr", d.c.inb(IO + 0x13));
            log.flag(what + ": irq after isr read", d.c.irq(9));
        }
    }

    @Test
    void registersLookTheSame() throws Exception {
        VirtioBlkConformanceTest.assertSame("legacy registers", ",serial=LEGACY", (d, log) -> {
            Legacy l = new Legacy(d);
            l.plugIn(0);
            for (int off = 0; off < 0x40; off += 4) {
                log.hex(String.format("inl %02x", off), d.c.inl(IO + off));
            }
            for (int off = 0; off < 0x20; off += 2) {
                log.hex(String.format("inw %02x", off), d.c.inw(IO + off));
            }
            for (int off = 0; off < 0x40; off++) {
                log.hex(String.format("inb %02x", off), d.c.inb(IO + off));
            }
            d.c.outl(IO + 0x04, -1);
            log.hex("guest features after all ones", d.c.inl(IO + 0x04));
            d.c.outl(IO + 0x04, 1 << 30);
            log.hex("guest features after BAD_FEATURE", d.c.inl(IO + 0x04));
            d.c.outw(IO + 0x0e, 1);
            log.hex("queue 1 size", d.c.inw(IO + 0x0c));
            d.c.outl(IO + 0x08, 0x123);
            log.hex("queue 1 pfn", d.c.inl(IO + 0x08));
            d.c.outw(IO + 0x0e, 1030);
            log.hex("select after 1030", d.c.inw(IO + 0x0e));
            d.c.outw(IO + 0x0e, 0);
            d.c.outl(IO + 0x08, 0x456);
            log.hex("queue 0 pfn", d.c.inl(IO + 0x08));
            log.hex("queue 0 desc through the modern view", d.cfgRead(0x04, 2));
            d.c.outb(IO + 0x12, 3);
            log.hex("command after ACKNOWLEDGE|DRIVER (bus-master quirk)", d.cfgRead(0x04, 2));
            log.hex("status", d.c.inb(IO + 0x12));
            d.c.outl(IO + 0x08, 0);
            log.hex("status after pfn 0", d.c.inb(IO + 0x12));
            log.hex("queue 0 pfn after pfn 0", d.c.inl(IO + 0x08));
            d.c.outb(IO + 0x14, 0x20);
            log.hex("config byte 0 written (read-only capacity)", d.c.inb(IO + 0x14));
            // MSI-X on: the vectors appear at 0x14/0x16 and the configuration moves to 0x18
            d.cfgWrite(0x9b, 1, 0x80);
            for (int off = 0x10; off < 0x30; off += 2) {
                log.hex(String.format("msix inw %02x", off), d.c.inw(IO + off));
            }
            d.c.outw(IO + 0x14, 0);
            d.c.outw(IO + 0x16, 1);
            log.hex("config vector", d.c.inw(IO + 0x14));
            log.hex("queue vector", d.c.inw(IO + 0x16));
            d.c.outw(IO + 0x16, 9);
            log.hex("queue vector 9", d.c.inw(IO + 0x16));
            d.c.outw(IO + 0x14, 0x7777);
            log.hex("config vector 0x7777", d.c.inw(IO + 0x14));
            log.hex("config through 0x18", d.c.inl(IO + 0x18));
            d.cfgWrite(0x9b, 1, 0x00);
            log.hex("config through 0x14 again", d.c.inl(IO + 0x14));
            d.c.outb(IO + 0x12, 0);
            log.hex("status after reset", d.c.inb(IO + 0x12));
        });
    }

    @Test
    void requestsOnTheLegacyRingLookTheSame() throws Exception {
        VirtioBlkConformanceTest.assertSame("legacy requests", ",serial=LEGACY-2", (d, log) -> {
            Legacy l = new Legacy(d);
            l.plugIn(0);
            int host = d.c.inl(IO);
            log.hex("host features", host);
            l.start(host & (1 << 9 | 1 << 28 | 1 << 2 | 1 << 6));
            log.hex("command after legacy start (bus-master quirk)", d.cfgRead(0x04, 2));
            log.hex("queue size", l.size);
            byte[] pattern = new byte[4096];
            new Random(11).nextBytes(pattern);
            d.c.memwrite(VirtioBlkConformanceTest.DATA, pattern);
            VirtioBlkConformanceTest.header(d, 1, 8);
            l.request(log, "write", VirtioBlkConformanceTest.chain(new Buf(VirtioBlkConformanceTest.DATA, 1024, false),
                    new Buf(VirtioBlkConformanceTest.DATA + 1024, 3072, false)));
            d.c.memset(VirtioBlkConformanceTest.DATA + 0x10000, 4096, 0);
            VirtioBlkConformanceTest.header(d, 0, 6);
            l.request(log, "read", VirtioBlkConformanceTest.chain(new Buf(VirtioBlkConformanceTest.DATA + 0x10000, 4096, true)));
            log.bytes("read data", d.c.memread(VirtioBlkConformanceTest.DATA + 0x10000, 4096));
            VirtioBlkConformanceTest.header(d, 4, 0);
            l.request(log, "flush", VirtioBlkConformanceTest.chain());
            d.c.memset(VirtioBlkConformanceTest.DATA + 0x30000, 32, 0x77);
            VirtioBlkConformanceTest.header(d, 8, 0);
            l.request(log, "get id", VirtioBlkConformanceTest.chain(new Buf(VirtioBlkConformanceTest.DATA + 0x30000, 32, true)));
            log.bytes("id", d.c.memread(VirtioBlkConformanceTest.DATA + 0x30000, 32));
            // header and data in one descriptor: a legacy driver without ANY_LAYOUT never does it, QEMU copes
            ByteBuffer joined = ByteBuffer.allocate(16 + 512).order(ByteOrder.LITTLE_ENDIAN);
            joined.putInt(1).putInt(0).putLong(20).put(pattern, 0, 512);
            d.c.memwrite(VirtioBlkConformanceTest.HDR, joined.array());
            l.request(log, "header and data in one buffer", List.of(new Buf(VirtioBlkConformanceTest.HDR, 16 + 512, false),
                    new Buf(VirtioBlkConformanceTest.STATUS, 1, true)));
            // a notify for a queue the device does not have, then a reset through the page frame number
            d.c.outw(IO + 0x10, 7);
            d.c.outl(IO + 0x08, 0);
            log.hex("status after pfn 0", d.c.inb(IO + 0x12));
            log.hex("guest features after pfn 0", d.c.inl(IO + 0x04));
        });
    }

    @Test
    void virtioNetLegacyFeaturesAndConfigurationLookTheSame() throws Exception {
        VirtioNetConformanceTest.assertSame("legacy virtio-net", ",mac=52:54:00:12:34:56", (n, peer, log) -> {
            Legacy l = new Legacy(n.d);
            l.plugIn(0x4);
            log.hex("host features", n.c.inl(IO));
            for (int off = 0x14; off < 0x20; off++) {
                log.hex(String.format("config inb %02x", off), n.c.inb(IO + off));
            }
            n.c.outl(IO + 0x04, 1 << 30);
            log.hex("guest features after BAD_FEATURE", n.c.inl(IO + 0x04));
            n.c.outl(IO + 0x04, -1);
            log.hex("guest features after all ones", n.c.inl(IO + 0x04));
            for (int q = 0; q < 3; q++) {
                n.c.outw(IO + 0x0e, q);
                log.hex("queue " + q + " size", n.c.inw(IO + 0x0c));
            }
        });
    }
}
