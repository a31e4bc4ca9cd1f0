package io.guestdma.conformance;

import io.guestdma.conformance.VirtioDriver.Buf;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * virtio-blk-pci against QEMU 7.2: both machines get
 * {@code -drive file=IMG,if=none,id=d0,format=raw -device virtio-blk-pci,drive=d0,addr=04.0} and
 * the same register-level script (PCI configuration, BARs, rings in guest memory, notify, wait for
 * the used index); the guest's observations (IDs, BARs, capabilities, features, configuration,
 * used ring, status bytes, data, ISR, the interrupt line through the PIIX3 PIRQ routing) and the
 * disk images must be the same.
 */
class VirtioBlkConformanceTest {
    static final long IMAGE_BYTES = 8L << 20;
    static final long HDR = 0x200000;
    static final long STATUS = 0x201000;
    static final long DATA = 0x300000;
    static final long FEATURES = 1L << 32 | 1L << 28 | 1L << 9 | 1L << 13 | 1L << 14 | 1L << 11;
    private static final AtomicInteger IMAGES = new AtomicInteger();

    @FunctionalInterface
    interface Script {
        void run(VirtioDriver d, Observations log) throws Exception;
    }

    static Conformance.Run run(Target target, Path dir, String deviceOptions, Script script) throws Exception {
        Path file = dir.resolve(target.name().replaceAll("[^A-Za-z0-9.-]", "_") + "-" + IMAGES.incrementAndGet()
                + ".img");
        Conformance.Image.patterned(IMAGE_BYTES, 1 << 20, 7).create(file);
        Observations log = new Observations();
        List<String> args = List.of("-m", "64M", "-drive", "file=" + file + ",if=none,id=d0,format=raw",
                "-device", "virtio-blk-pci,drive=d0,addr=04.0" + deviceOptions);
        try (QtestClient client = target.startWith(args)) {
            script.run(new VirtioDriver(client), log);
        }
        return new Conformance.Run(target.name(), log.lines(), file);
    }

    static void assertSame(String context, String deviceOptions, Script script) throws Exception {
        QemuTarget qemu = QemuTarget.require();
        Path dir = Files.createTempDirectory("guestdma-virtio-conformance");
        try {
            Conformance.Run expected = run(qemu, dir, deviceOptions, script);
            for (Target ours : Targets.oursDefault()) {
                Conformance.Run actual = run(ours, dir, deviceOptions, script);
                Conformance.assertSameLog(expected, actual, context);
                Conformance.assertSameDisk(expected, actual, context);
            }
        } finally {
            Conformance.deleteTree(dir);
        }
    }

    // ------------------------------------------------------------------ identity and layout

    @ParameterizedTest
    @ValueSource(strings = {"", ",vectors=0", ",num-queues=2", ",serial=ABC123,queue-size=128"})
    void pciFunctionLooksTheSame(String options) throws Exception {
        assertSame("identity" + options, options, (d, log) -> {
            d.logConfigurationAndBarSizes(log);
            d.plugIn(!options.contains("vectors=0"));
            log.hex("command", d.cfgRead(4, 2));
            log.hex("ISA bridge PIRQ", d.cfgRead(1 << 3, 0x60, 4));
            for (int sel = 0; sel < 3; sel++) {
                d.write(VirtioDriver.COMMON, 4, sel);
                log.hex("device_feature[" + sel + "]", d.read(VirtioDriver.COMMON + 4, 4));
            }
            for (int off = 0; off < 0x40; off += 2) {
                log.hex(String.format("common[%02x]", off), d.read(VirtioDriver.COMMON + off, 2));
            }
            for (int off = 0; off < 64; off++) {
                log.hex(String.format("device[%02x]", off), d.read(VirtioDriver.DEVICE + off, 1));
            }
            log.hex("device readl 0x38", d.read(VirtioDriver.DEVICE + 0x38, 4));
            log.hex("isr", d.read(VirtioDriver.ISR, 1));
            log.hex("notify read", d.read(VirtioDriver.NOTIFY, 4));
            // the PCI configuration access capability reads the BAR
            d.cfgWrite(0x88, 1, 4);
            d.cfgWrite(0x8c, 4, 0x12);
            d.cfgWrite(0x90, 4, 2);
            log.hex("pci cfg access: num_queues", d.cfgRead(0x94, 4));
            d.cfgWrite(0x8c, 4, 0x2000);
            d.cfgWrite(0x90, 4, 4);
            log.hex("pci cfg access: capacity", d.cfgRead(0x94, 4));
        });
    }

    @Test
    void commonConfigurationRegisters() throws Exception {
        assertSame("common registers", "", (d, log) -> {
            d.plugIn(true);
            long c = VirtioDriver.COMMON;
            d.write(c + 0x18, 2, 128);
            log.hex("queue_size after 128", d.read(c + 0x18, 2));
            d.write(c + 0x18, 2, 100);
            log.hex("queue_size after 100", d.read(c + 0x18, 2));
            d.write(c + 0x18, 2, 0);
            log.hex("queue_size after 0", d.read(c + 0x18, 2));
            d.write(c + 0x18, 2, 2048);
            log.hex("queue_size after 2048", d.read(c + 0x18, 2));
            d.write(c + 0x16, 2, 5);
            log.hex("queue 5 size", d.read(c + 0x18, 2));
            log.hex("queue 5 notify off", d.read(c + 0x1e, 2));
            d.write(c + 0x16, 2, 1030);
            log.hex("select after 1030", d.read(c + 0x16, 2));
            d.write(c + 0x16, 2, 0);
            d.write(c + 0x1a, 2, 1);
            log.hex("queue vector 1", d.read(c + 0x1a, 2));
            d.write(c + 0x1a, 2, 7);
            log.hex("queue vector 7", d.read(c + 0x1a, 2));
            d.write(c + 0x10, 2, 0);
            log.hex("config vector", d.read(c + 0x10, 2));
            d.write(c + 0x08, 4, 0);
            d.write(c + 0x0c, 4, -1);
            log.hex("driver_feature[0]", d.read(c + 0x0c, 4));
            d.write(c + 0x08, 4, 5);
            log.hex("driver_feature[5]", d.read(c + 0x0c, 4));
            d.write(c + 0x20, 4, 0x1234_5000);
            d.write(c + 0x24, 4, 0x1);
            log.hex("desc", d.read(c + 0x20, 8));
            log.hex("unaligned readw 0x13", d.read(c + 0x13, 2));
            d.write(c + 0x14, 1, 0xb);
            log.hex("status", d.status());
            d.write(VirtioDriver.DEVICE + 0x20, 1, 0);
            log.hex("wce after 0", d.read(VirtioDriver.DEVICE + 0x20, 1));
            d.write(VirtioDriver.DEVICE, 1, 5);
            log.hex("capacity after a write", d.read(VirtioDriver.DEVICE, 4));
            d.write(c + 0x14, 1, 0);
            log.hex("status after reset", d.status());
            log.hex("queue_size after reset", d.read(c + 0x18, 2));
            log.hex("driver_feature_select after reset", d.read(c + 0x08, 4));
            log.hex("device_feature_select after reset", d.read(c + 0x00, 4));
            log.hex("desc after reset", d.read(c + 0x20, 8));
            log.hex("wce after reset", d.read(VirtioDriver.DEVICE + 0x20, 1));
            log.hex("queue vector after reset", d.read(c + 0x1a, 2));
            d.write(c + 0x1c, 2, 2);
            log.hex("status after a bad queue_enable (no VERSION_1)", d.status());
        });
    }

    // ------------------------------------------------------------------ requests

    static void header(VirtioDriver d, int type, long sector) {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(type).putInt(0).putLong(sector);
        d.c.memwrite(HDR, b.array());
    }

    /** Submits one chain, waits for it, and records what a guest sees. */
    static void request(VirtioDriver d, Observations log, String what, List<Buf> chain, boolean indirect) {
        d.c.memset(STATUS, 1, 0x55);
        int before = d.usedIdx();
        int head = indirect ? d.placeIndirect(chain) : d.place(chain);
        d.offer(head);
        d.kick();
        log.flag(what + ": done", d.await((before + 1) & 0xffff));
        observe(d, log, what, before);
    }

    static void observe(VirtioDriver d, Observations log, String what, int before) {
        int used = d.usedIdx();
        log.hex(what + ": used idx", used);
        for (int i = before; i != used; i = (i + 1) & 0xffff) {
            long entry = VirtioDriver.USED + 4 + 8L * (i % d.queueSize);
            log.hex(what + ": used id", d.read(entry, 4));
            log.hex(what + ": used len", d.read(entry + 4, 4));
        }
        log.hex(what + ": used flags", d.read(VirtioDriver.USED, 2));
        log.hex(what + ": avail_event", d.read(VirtioDriver.USED + 4 + 8L * d.queueSize, 2));
        log.hex(what + ": status byte", d.read(STATUS, 1));
        log.hex(what + ": device status", d.status());
        log.flag(what + ": irq", d.c.irq(9));
        log.hex(what + ": isr", d.read(VirtioDriver.ISR, 1));
        log.flag(what + ": irq after isr read", d.c.irq(9));
    }

    static List<Buf> chain(Buf... data) {
        List<Buf> c = new ArrayList<>();
        c.add(new Buf(HDR, 16, false));
        c.addAll(List.of(data));
        c.add(new Buf(STATUS, 1, true));
        return c;
    }

    @ParameterizedTest
    @ValueSource(longs = {0, 1L << 29})
    void requestsLookTheSame(long eventIdx) throws Exception {
        assertSame("requests, event_idx=" + (eventIdx != 0), ",serial=SER-1", (d, log) -> {
            d.plugIn(true);
            d.start(FEATURES | eventIdx, 16);
            byte[] pattern = new byte[8192];
            new Random(5).nextBytes(pattern);
            d.c.memwrite(DATA, pattern);
            header(d, 1, 40);
            request(d, log, "write 16 sectors in two pieces", chain(new Buf(DATA, 3072, false),
                    new Buf(DATA + 3072, 5120, false)), false);
            d.c.memset(DATA + 0x10000, 8192, 0);
            header(d, 0, 36);
            request(d, log, "read 16 sectors", chain(new Buf(DATA + 0x10000, 1000, true),
                    new Buf(DATA + 0x12000, 7192, true)), false);
            log.bytes("read data a", d.c.memread(DATA + 0x10000, 1000));
            log.bytes("read data b", d.c.memread(DATA + 0x12000, 7192));
            header(d, 0, 2);
            request(d, log, "indirect read", chain(new Buf(DATA + 0x20000, 512, true)), true);
            log.bytes("indirect data", d.c.memread(DATA + 0x20000, 512));
            header(d, 4, 0);
            request(d, log, "flush", chain(), false);
            d.c.memset(DATA + 0x30000, 64, 0x77);
            header(d, 8, 0);
            request(d, log, "get id", chain(new Buf(DATA + 0x30000, 64, true)), false);
            log.bytes("id", d.c.memread(DATA + 0x30000, 64));
            header(d, 0, IMAGE_BYTES / 512);
            request(d, log, "read past the end", chain(new Buf(DATA, 512, true)), false);
            header(d, 0, IMAGE_BYTES / 512 - 1);
            request(d, log, "read the last sector", chain(new Buf(DATA, 512, true)), false);
            header(d, 0, 0);
            request(d, log, "read 100 bytes", chain(new Buf(DATA, 100, true)), false);
            header(d, 99, 0);
            request(d, log, "unknown type", chain(new Buf(DATA, 512, true)), false);
            ByteBuffer seg = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(50).putInt(3).putInt(0);
            d.c.memwrite(DATA + 0x40000, seg.array());
            header(d, 13, 0);
            request(d, log, "write zeroes", chain(new Buf(DATA + 0x40000, 16, false)), false);
            header(d, 11, 0);
            request(d, log, "discard", chain(new Buf(DATA + 0x40000, 16, false)), false);
            header(d, 10, 0);
            request(d, log, "discard without OUT", chain(new Buf(DATA + 0x40000, 16, false)), false);
            seg.putInt(12, 2);
            d.c.memwrite(DATA + 0x40000, seg.array());
            header(d, 13, 0);
            request(d, log, "write zeroes with a bad flag", chain(new Buf(DATA + 0x40000, 16, false)), false);
            header(d, 1, 0);
            request(d, log, "write nothing", chain(), false);
            // several at once: completions may come in any order, so entries are compared as a set
            int before = d.usedIdx();
            for (int i = 0; i < 4; i++) {
                long hdr = HDR + 0x100 * (i + 1);
                ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(0).putInt(0).putLong(i * 8);
                d.c.memwrite(hdr, b.array());
                d.offer(d.place(List.of(new Buf(hdr, 16, false), new Buf(DATA + 0x50000 + 0x1000 * i, 4096, true),
                        new Buf(STATUS + 1 + i, 1, true))));
            }
            d.kick();
            log.flag("batch done", d.await((before + 4) & 0xffff));
            List<String> entries = new ArrayList<>();
            for (int i = before; i != d.usedIdx(); i = (i + 1) & 0xffff) {
                long entry = VirtioDriver.USED + 4 + 8L * (i % d.queueSize);
                entries.add(d.read(entry, 4) + "/" + d.read(entry + 4, 4));
            }
            entries.sort(null);
            log.text("batch used entries", entries);
            log.bytes("batch status", d.c.memread(STATUS + 1, 4));
            log.bytes("batch data", d.c.memread(DATA + 0x50000, 0x4000));
        });
    }

    // ------------------------------------------------------------------ hostile rings

    @Test
    void hostileRingsBreakTheDeviceAlike() throws Exception {
        assertSame("hostile rings", "", (d, log) -> {
            d.plugIn(true);
            String[] cases = {"head out of range", "next out of range", "loop", "zero length", "readable after writable",
                "avail index too far", "indirect of bad length", "missing header", "header too short",
                "discard header too short"};
            for (String what : cases) {
                d.start(FEATURES, 16);
                header(d, 0, 0);
                d.c.memset(STATUS, 1, 0x55);
                switch (what) {
                    case "head out of range" -> d.offer(40);
                    case "next out of range" -> {
                        d.rawDescriptor(0, HDR, 16, 1, 20);
                        d.offer(0);
                    }
                    case "loop" -> {
                        d.rawDescriptor(0, HDR, 16, 1, 1);
                        d.rawDescriptor(1, DATA, 512, 3, 0);
                        d.offer(0);
                    }
                    case "zero length" -> d.offer(d.place(chain(new Buf(DATA, 0, true))));
                    case "readable after writable" -> d.offer(d.place(List.of(new Buf(HDR, 16, false),
                            new Buf(STATUS, 1, true), new Buf(DATA, 512, false))));
                    case "avail index too far" -> d.setAvailIdx(17);
                    case "indirect of bad length" -> {
                        d.rawDescriptor(0, VirtioDriver.INDIRECT, 24, 4, 0);
                        d.offer(0);
                    }
                    case "missing header" -> d.offer(d.place(List.of(new Buf(STATUS, 1, true))));
                    case "header too short" -> d.offer(d.place(List.of(new Buf(HDR, 8, false), new Buf(STATUS, 1, true))));
                    default -> {
                        header(d, 11, 0);
                        d.offer(d.place(List.of(new Buf(HDR, 16, false), new Buf(DATA, 8, false), new Buf(STATUS, 1, true))));
                    }
                }
                d.kick();
                log.flag(what + ": settled", d.await(1));
                observe(d, log, what, 0);
                d.kick(); // ignored while broken
                log.hex(what + ": used idx after another kick", d.usedIdx());
                log.hex(what + ": generation", d.read(VirtioDriver.COMMON + 0x15, 1));
            }
        });
    }

    @Test
    void randomRequestsLookTheSame() throws Exception {
        for (long seed = 1; seed <= 3; seed++) {
            long s = seed;
            assertSame("random requests, seed " + seed, "", (d, log) -> {
                Random r = new Random(s);
                d.plugIn(true);
                d.start(FEATURES | (r.nextBoolean() ? 1L << 29 : 0), 32);
                for (int i = 0; i < 40; i++) {
                    int[] types = {0, 0, 1, 1, 4, 8, 11, 13, 2, 77};
                    int type = types[r.nextInt(types.length)];
                    long sector = r.nextInt(8) == 0 ? IMAGE_BYTES / 512 - r.nextInt(4) : r.nextInt(16000);
                    header(d, type, sector);
                    List<Buf> data = new ArrayList<>();
                    boolean write = type == 1 || type == 11 || type == 13;
                    int pieces = r.nextInt(4);
                    long at = DATA + 0x1000L * r.nextInt(64);
                    for (int p = 0; p < pieces; p++) {
                        int len = r.nextInt(6) == 0 ? 1 + r.nextInt(700) : 512 * (1 + r.nextInt(4));
                        if (type == 11 || type == 13) {
                            ByteBuffer seg = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN)
                                    .putLong(r.nextInt(16000)).putInt(r.nextInt(9)).putInt(r.nextInt(4) == 0 ? 1 : 0);
                            d.c.memwrite(at, seg.array());
                            len = 16;
                        } else if (write) {
                            byte[] bytes = new byte[len];
                            r.nextBytes(bytes);
                            d.c.memwrite(at, bytes);
                        }
                        data.add(new Buf(at, len, !write));
                        at += len + 64;
                    }
                    if ((type == 11 || type == 13) && pieces != 1) {
                        data.clear(); // the multi-segment and short forms are covered above
                    }
                    request(d, log, "request " + i + " type " + type, chain(data.toArray(Buf[]::new)),
                            r.nextInt(5) == 0);
                    if (!write) {
                        for (Buf b : data) {
                            log.bytes("request " + i + " data", d.c.memread(b.address(), b.length()));
                        }
                    }
                }
            });
        }
    }

    @Test
    void msixLooksTheSame() throws Exception {
        assertSame("MSI-X", "", (d, log) -> {
            d.plugIn(true);
            long table = VirtioDriver.BAR1;
            log.hex("msix control", d.cfgRead(0x9a, 2));
            for (int off = 0; off < 32; off += 4) {
                log.hex(String.format("table[%02x] at power-on", off), d.read(table + off, 4));
            }
            log.hex("pba", d.read(table + 0x800, 4));
            // vector 0 for configuration changes, vector 1 for the queue; messages land in RAM
            long[] addresses = {0x500000, 0x500010};
            for (int v = 0; v < 2; v++) {
                d.write(table + 16L * v, 4, addresses[v]);
                d.write(table + 16L * v + 4, 4, 0);
                d.write(table + 16L * v + 8, 4, 0x1100 + v);
                d.write(table + 16L * v + 12, 4, 0);
            }
            d.cfgWrite(0x9b, 1, 0x80);
            log.hex("msix control enabled", d.cfgRead(0x9a, 2));
            d.start(FEATURES, 16);
            d.write(VirtioDriver.COMMON + 0x10, 2, 0);
            d.write(VirtioDriver.COMMON + 0x16, 2, 0);
            d.write(VirtioDriver.COMMON + 0x1a, 2, 1);
            log.hex("config vector", d.read(VirtioDriver.COMMON + 0x10, 2));
            log.hex("queue vector", d.read(VirtioDriver.COMMON + 0x1a, 2));
            header(d, 0, 1);
            request(d, log, "read with MSI-X", chain(new Buf(DATA, 512, true)), false);
            log.hex("message 1", d.read(addresses[1], 4));
            log.hex("message 0", d.read(addresses[0], 4));
            // masked: pending, then sent on unmask
            d.c.memset(addresses[1], 4, 0);
            d.write(table + 16 + 12, 4, 1);
            header(d, 0, 2);
            request(d, log, "read with the vector masked", chain(new Buf(DATA, 512, true)), false);
            log.hex("message 1 while masked", d.read(addresses[1], 4));
            log.hex("pba while masked", d.read(table + 0x800, 4));
            d.write(table + 16 + 12, 4, 0);
            log.hex("message 1 after unmask", d.read(addresses[1], 4));
            log.hex("pba after unmask", d.read(table + 0x800, 4));
            // function mask, then a broken ring: the configuration vector
            d.cfgWrite(0x9b, 1, 0xc0);
            d.offer(60);
            d.kick();
            log.flag("broken", d.await(-1));
            log.hex("pba with the function masked", d.read(table + 0x800, 4));
            log.hex("message 0 while function masked", d.read(addresses[0], 4));
            d.cfgWrite(0x9b, 1, 0x80);
            log.hex("message 0 after function unmask", d.read(addresses[0], 4));
            log.hex("status", d.status());
            log.hex("isr", d.read(VirtioDriver.ISR, 1));
            log.flag("intx", d.c.irq(9));
        });
    }
}
