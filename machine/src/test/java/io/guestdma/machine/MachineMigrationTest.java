package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.migration.DeviceState;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The machine migrated in one JVM: a source driven by port accesses to a mid-activity state (PCI
 * programmed, PIRQ routed, fw_cfg half read, a PIO read half done on the secondary channel, a DMA
 * write held by werror=stop on the primary) is stopped and saved; a destination built from the
 * same configuration over copies of the images and of RAM loads every section, both continue
 * with the same script, and everything a guest sees agrees.
 */
class MachineMigrationTest {
    static final int IDE_DEVFN = 1 << 3 | 1;
    static final int ISA_DEVFN = 1 << 3;
    static final int BM_BASE = 0xc000;
    static final long PRDT = 0x10000;
    static final long BUFFER = 0x100000;
    static final long RAM = 16L << 20;

    @TempDir
    Path dir;

    private static final String FAIL_ONE_WRITE = """
            [inject-error]
            event = "pwritev"
            errno = "5"
            once = "on"
            """;

    private PcMachine source() throws IOException {
        byte[] pattern = new byte[1 << 20];
        for (int i = 0; i < pattern.length; i++) {
            pattern[i] = (byte) (i * 7 + (i >>> 9));
        }
        Path a = Files.write(dir.resolve("a.img"), pattern);
        Path c = Files.write(dir.resolve("c.img"), pattern);
        Path rules = Files.writeString(dir.resolve("rules.conf"), FAIL_ONE_WRITE);
        return new PcMachine(MachineConfig.parse(List.of("-m", "16M",
                "-drive", "file=blkdebug:" + rules + ":" + a + ",if=ide,format=raw,werror=stop",
                "-drive", "file=" + c + ",if=ide,index=2,format=raw")));
    }

    private PcMachine destination() throws IOException {
        Path b = Files.copy(dir.resolve("a.img"), dir.resolve("b.img"));
        Path d = Files.copy(dir.resolve("c.img"), dir.resolve("d.img"));
        return new PcMachine(MachineConfig.parse(List.of("-m", "16M",
                "-drive", "file=" + b + ",if=ide,format=raw,werror=stop",
                "-drive", "file=" + d + ",if=ide,index=2,format=raw")));
    }

    static void configWrite(PcMachine m, int devfn, int register, int size, int value) {
        m.ports().write(PciHost.ADDRESS_PORT, 4, 0x8000_0000 | devfn << 8 | (register & 0xfc));
        m.ports().write(PciHost.DATA_PORT + (register & 3), size, value);
    }

    static int configRead(PcMachine m, int devfn, int register) {
        m.ports().write(PciHost.ADDRESS_PORT, 4, 0x8000_0000 | devfn << 8 | register);
        return m.ports().read(PciHost.DATA_PORT, 4);
    }

    private static void waitNotBusy(PcMachine m, int controlPort) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while ((m.ports().read(controlPort, 1) & 0x80) != 0) {
            assertThat(System.nanoTime()).as("drive still busy").isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    /** Issues an LBA28 command on the master of the channel at {@code base}. */
    private static void ataCommand(PcMachine m, int base, int lba, int count, int command) {
        m.ports().write(base + 6, 1, 0xe0 | (lba >>> 24 & 0x0f));
        m.ports().write(base + 2, 1, count);
        m.ports().write(base + 3, 1, lba & 0xff);
        m.ports().write(base + 4, 1, lba >>> 8 & 0xff);
        m.ports().write(base + 5, 1, lba >>> 16 & 0xff);
        m.ports().write(base + 7, 1, command);
    }

    /** Programs the source up to the point of migration. */
    private static void driveToMidActivity(PcMachine m) {
        configWrite(m, IDE_DEVFN, 0x20, 4, BM_BASE | 1);
        configWrite(m, IDE_DEVFN, 0x04, 2, 0x05);
        configWrite(m, IDE_DEVFN, 0x3c, 1, 14);
        configWrite(m, ISA_DEVFN, 0x60, 1, 11);
        configWrite(m, ISA_DEVFN, 0x61, 1, 10);
        m.ports().write(0xcf9, 1, 0x02);
        // fw_cfg: the signature, two bytes of it read
        m.ports().write(0x510, 2, 0);
        assertThat(m.ports().read(0x511, 1)).isEqualTo('Q');
        assertThat(m.ports().read(0x511, 1)).isEqualTo('E');
        // secondary master: READ SECTORS of 4 sectors at 8, 300 of 1024 words read
        ataCommand(m, 0x170, 8, 4, 0x20);
        waitNotBusy(m, 0x376);
        for (int i = 0; i < 300; i++) {
            m.ports().read(0x170, 2);
        }
        // primary master: WRITE DMA of 16 sectors at 100 from RAM, which the backend fails once
        byte[] data = new byte[8192];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 13 + 5);
        }
        m.memory().write(BUFFER, data, 0, data.length);
        m.memory().writeInt(PRDT, (int) BUFFER);
        m.memory().writeInt(PRDT + 4, 8192 | 0x8000_0000);
        m.ports().write(BM_BASE + 4, 4, (int) PRDT);
        ataCommand(m, 0x1f0, 100, 16, 0xca);
        m.ports().write(BM_BASE, 1, 0x01);
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!m.runState().equals("io-error")) {
            assertThat(System.nanoTime()).as("werror=stop").isLessThan(deadline);
            Thread.onSpinWait();
        }
        // leave the configuration latch somewhere a guest could see it
        m.ports().write(PciHost.ADDRESS_PORT, 4, 0x8000_0810);
    }

    /** Saves every section of a stopped machine. */
    static List<byte[]> saveAll(PcMachine m) {
        m.stop();
        List<byte[]> sections = new ArrayList<>();
        for (DeviceState s : m.deviceStates()) {
            StateWriter out = new StateWriter();
            s.save(out);
            sections.add(out.toByteArray());
        }
        return sections;
    }

    /** Loads sections in order into a stopped machine, checking each was consumed whole. */
    static void loadAll(PcMachine m, List<byte[]> sections) throws MigrationFormatException {
        m.stop();
        List<DeviceState> states = m.deviceStates();
        for (int i = 0; i < states.size(); i++) {
            StateReader in = new StateReader(states.get(i).sectionId(), sections.get(i));
            states.get(i).load(in, states.get(i).version());
            in.expectEnd();
        }
    }

    static void copyRam(PcMachine from, PcMachine to) {
        byte[] ram = new byte[(int) RAM];
        from.memory().read(0, ram, 0, ram.length);
        to.memory().write(0, ram, 0, ram.length);
    }

    /** What a guest reads without changing anything (the latch is put back). */
    static List<Integer> observe(PcMachine m) {
        List<Integer> seen = new ArrayList<>();
        int latch = m.ports().read(PciHost.ADDRESS_PORT, 4);
        seen.add(latch);
        for (int devfn = 0; devfn < 256; devfn++) {
            if (m.pci().function(devfn) != null) {
                for (int reg = 0; reg < 256; reg += 4) {
                    seen.add(configRead(m, devfn, reg));
                }
            }
        }
        m.ports().write(PciHost.ADDRESS_PORT, 4, latch);
        for (int port = 0x1f1; port <= 0x1f6; port++) {
            seen.add(m.ports().read(port, 1));
            seen.add(m.ports().read(port - 0x80, 1));
        }
        seen.add(m.ports().read(0x3f6, 1));
        seen.add(m.ports().read(0x376, 1));
        for (int offset = 0; offset < 16; offset++) {
            seen.add(m.ports().read(BM_BASE + offset, 1));
        }
        seen.add(m.ports().read(0xcf9, 1));
        for (int line = 0; line < 16; line++) {
            seen.add(m.irqLevel(line) ? 1 : 0);
        }
        seen.add((int) m.clock().nanos());
        return seen;
    }

    private static void assertSameGuestView(PcMachine a, PcMachine b) throws IOException {
        assertThat(observe(b)).isEqualTo(observe(a));
        byte[] ramA = new byte[(int) RAM];
        byte[] ramB = new byte[(int) RAM];
        a.memory().read(0, ramA, 0, ramA.length);
        b.memory().read(0, ramB, 0, ramB.length);
        assertThat(ramB).isEqualTo(ramA);
    }

    @Test
    void aStoppedMachineMigratesAndBothSidesContinueAlike() throws Exception {
        try (PcMachine src = source()) {
            driveToMidActivity(src);
            src.clock().step(123_456);
            List<byte[]> sections = saveAll(src);
            try (PcMachine dst = destination()) {
                assertThat(dst.deviceStates()).extracting(DeviceState::sectionId)
                        .containsExactly("pc", "piix-ide", "pc-irq");
                copyRam(src, dst);
                loadAll(dst, sections);
                assertSameGuestView(src, dst);
                assertThat(Files.readAllBytes(dir.resolve("b.img")))
                        .isEqualTo(Files.readAllBytes(dir.resolve("a.img")));

                src.cont();
                dst.cont();
                for (PcMachine m : List.of(src, dst)) {
                    long deadline = System.nanoTime() + 10_000_000_000L;
                    while (!m.irqLevel(14)) {
                        assertThat(System.nanoTime()).as("the retried DMA completes").isLessThan(deadline);
                        Thread.onSpinWait();
                    }
                }
                assertThat(dst.runState()).isEqualTo("running");
                assertThat(dst.irqLevel(14)).as("the restarted DMA completed").isTrue();
                assertSameGuestView(src, dst);
                for (int i = 300; i < 1024; i++) {
                    assertThat(dst.ports().read(0x170, 2)).as("word %d", i).isEqualTo(src.ports().read(0x170, 2));
                    waitNotBusy(src, 0x376);
                    waitNotBusy(dst, 0x376);
                }
                assertThat(dst.ports().read(0x511, 1)).isEqualTo(src.ports().read(0x511, 1)).isEqualTo('M');
                assertThat(dst.ports().read(0x1f7, 1)).isEqualTo(src.ports().read(0x1f7, 1)).isEqualTo(0x50);
                assertThat(dst.ports().read(0x177, 1)).isEqualTo(src.ports().read(0x177, 1)).isEqualTo(0x50);
                assertSameGuestView(src, dst);
                byte[] written = Files.readAllBytes(dir.resolve("b.img"));
                assertThat(written).isEqualTo(Files.readAllBytes(dir.resolve("a.img")));
                byte[] expected = new byte[8192];
                src.memory().read(BUFFER, expected, 0, expected.length);
                assertThat(java.util.Arrays.copyOfRange(written, 100 * 512, 100 * 512 + 8192)).isEqualTo(expected);
            }
        }
    }

    @Test
    void aMachineSectionFromAnotherConfigurationIsRefusedAndTheMachineReset() throws Exception {
        try (PcMachine src = source()) {
            driveToMidActivity(src);
            List<byte[]> sections = saveAll(src);
            Path other = Files.write(dir.resolve("e.img"), new byte[1 << 20]);
            Path blk = Files.write(dir.resolve("f.img"), new byte[1 << 20]);
            try (PcMachine dst = new PcMachine(MachineConfig.parse(List.of("-m", "16M",
                    "-drive", "file=" + other + ",if=ide,format=raw",
                    "-drive", "if=none,id=v,file=" + blk + ",format=raw", "-device", "virtio-blk-pci,drive=v")))) {
                dst.stop();
                DeviceState pc = dst.deviceStates().get(0);
                assertThatThrownBy(() -> pc.load(new StateReader("pc", sections.get(0)), 1))
                        .isInstanceOf(MigrationFormatException.class)
                        .hasMessageContaining("PCI functions");
                assertThat(configRead(dst, IDE_DEVFN, 0x04) & 0xffff).as("reset: I/O and bus mastering off")
                        .isZero();
                assertThatThrownBy(() -> pc.load(new StateReader("pc", sections.get(0)), 7))
                        .isInstanceOf(MigrationFormatException.class).hasMessageContaining("unknown version 7");
            }
        }
    }

    @Test
    void readOnlyConfigurationBitsAndABackwardClockAreRefused() throws Exception {
        try (PcMachine src = source()) {
            driveToMidActivity(src);
            src.clock().step(1000);
            byte[] pc = saveAll(src).get(0);
            try (PcMachine dst = destination()) {
                dst.stop();
                // the vendor ID of the first function: after latch(4) reset(1) clock(8) fw_cfg(14) count(2) devfn(1) length(4)
                byte[] vendor = pc.clone();
                vendor[4 + 1 + 8 + 14 + 2 + 1 + 4] ^= 1;
                DeviceState section = dst.deviceStates().get(0);
                assertThatThrownBy(() -> section.load(new StateReader("pc", vendor), 1))
                        .isInstanceOf(MigrationFormatException.class).hasMessageContaining("register 0x00");
                dst.clock().step(5000);
                assertThatThrownBy(() -> section.load(new StateReader("pc", pc), 1))
                        .isInstanceOf(MigrationFormatException.class).hasMessageContaining("virtual time");
            }
        }
    }

    @Test
    void interruptLevelsThatTheDevicesDidNotRestoreAreRefused() throws Exception {
        try (PcMachine src = source()) {
            driveToMidActivity(src);
            List<byte[]> sections = saveAll(src);
            assertThat(src.irqLevel(15)).as("the secondary channel's PIO block is ready").isTrue();
            try (PcMachine dst = destination()) {
                copyRam(src, dst);
                dst.stop();
                // the IDE section left out: IRQ 15 stays low on the destination
                DeviceState pc = dst.deviceStates().get(0);
                pc.load(new StateReader("pc", sections.get(0)), 1);
                DeviceState irq = dst.deviceStates().get(2);
                assertThatThrownBy(() -> irq.load(new StateReader("pc-irq", sections.get(2)), 1))
                        .isInstanceOf(MigrationFormatException.class).hasMessageContaining("IRQ 15 was high");
            }
        }
    }

    @Test
    void aRunningMachineCannotBeSaved() throws Exception {
        try (PcMachine m = source()) {
            assertThatThrownBy(() -> m.deviceStates().get(0).save(new StateWriter()))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("stopped");
            assertThatThrownBy(() -> m.deviceStates().get(1).save(new StateWriter()))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("paused");
        }
    }

    // ------------------------------------------------------------------ virtio-blk in the machine

    static final int VIRTIO_DEVFN = 4 << 3;
    static final long VIRTIO_BAR = 0xe000_0000L;
    static final long DESC = 0x100000;
    static final long AVAIL = 0x104000;
    static final long USED = 0x108000;

    private PcMachine virtioMachine(String image) throws IOException {
        return new PcMachine(MachineConfig.parse(List.of("-m", "16M",
                "-drive", "if=none,id=v,file=" + dir.resolve(image) + ",format=raw",
                "-device", "virtio-blk-pci,drive=v,addr=4,vectors=0")));
    }

    private static void common(PcMachine m, int offset, int size, long value) {
        switch (size) {
            case 1 -> m.memory().writeByte(VIRTIO_BAR + offset, (byte) value);
            case 2 -> m.memory().writeShort(VIRTIO_BAR + offset, (short) value);
            default -> m.memory().writeInt(VIRTIO_BAR + offset, (int) value);
        }
    }

    /** Places the BAR, routes PIRQD (slot 4's INTA#) to IRQ 9, negotiates, sets up queue 0 of 16. */
    private static void startVirtio(PcMachine m) {
        configWrite(m, VIRTIO_DEVFN, 0x20, 4, (int) VIRTIO_BAR | 0x4);
        configWrite(m, VIRTIO_DEVFN, 0x24, 4, 0);
        configWrite(m, VIRTIO_DEVFN, 0x04, 2, 0x06);
        configWrite(m, ISA_DEVFN, 0x63, 1, 9);
        common(m, 0x14, 1, 3);
        common(m, 0x08, 4, 1);
        common(m, 0x0c, 4, 1); // VIRTIO_F_VERSION_1
        common(m, 0x14, 1, 0xb);
        common(m, 0x16, 2, 0);
        common(m, 0x18, 2, 16);
        common(m, 0x20, 4, DESC);
        common(m, 0x28, 4, AVAIL);
        common(m, 0x30, 4, USED);
        common(m, 0x1c, 2, 1);
        common(m, 0x14, 1, 0xf);
    }

    /** A read of {@code sectors} at {@code sector} into 0x300000 + 0x10000 * n, offered as request n. */
    private static void offerRead(PcMachine m, int n, long sector, int sectors) {
        long hdr = 0x200000 + 0x100L * n;
        m.memory().writeInt(hdr, 0);
        m.memory().writeInt(hdr + 4, 0);
        m.memory().writeLong(hdr + 8, sector);
        long[][] chain = {{hdr, 16, 0}, {0x300000 + 0x10000L * n, sectors * 512L, 2}, {hdr + 0x20, 1, 2}};
        for (int i = 0; i < 3; i++) {
            int d = (3 * n + i) % 16;
            long at = DESC + 16L * d;
            m.memory().writeLong(at, chain[i][0]);
            m.memory().writeInt(at + 8, (int) chain[i][1]);
            m.memory().writeShort(at + 12, (short) (chain[i][2] | (i < 2 ? 1 : 0)));
            m.memory().writeShort(at + 14, (short) ((d + 1) % 16));
        }
        m.memory().writeShort(AVAIL + 4 + 2L * (n % 16), (short) (3 * n % 16));
        m.memory().writeShort(AVAIL + 2, (short) (n + 1));
    }

    private static int usedIdx(PcMachine m) {
        return Short.toUnsignedInt(m.memory().readShort(USED + 2));
    }

    @Test
    void virtioBlkWithRequestsWaitingInItsRingMigrates() throws Exception {
        byte[] pattern = new byte[1 << 20];
        new java.util.Random(5).nextBytes(pattern);
        Files.write(dir.resolve("v.img"), pattern);
        try (PcMachine src = virtioMachine("v.img")) {
            startVirtio(src);
            offerRead(src, 0, 2, 2);
            common(src, 0x3000, 2, 0); // notify queue 0
            assertThat(usedIdx(src)).isEqualTo(1);
            assertThat(src.irqLevel(9)).as("INTx through PIRQD").isTrue();
            // two more requests made available, not yet notified
            offerRead(src, 1, 10, 4);
            offerRead(src, 2, 20, 1);
            List<byte[]> sections = saveAll(src);
            Files.copy(dir.resolve("v.img"), dir.resolve("w.img"));
            try (PcMachine dst = virtioMachine("w.img")) {
                assertThat(dst.deviceStates()).extracting(DeviceState::sectionId)
                        .containsExactly("pc", "piix-ide", "virtio-blk@04.0", "pc-irq");
                copyRam(src, dst);
                loadAll(dst, sections);
                assertThat(dst.irqLevel(9)).as("the loaded transport drives its line").isTrue();
                assertSameGuestView(src, dst);
                src.cont();
                dst.cont();
                for (PcMachine m : List.of(src, dst)) {
                    assertThat(m.memory().readByte(VIRTIO_BAR + 0x1000)).as("ISR").isEqualTo((byte) 1);
                    common(m, 0x3000, 2, 0);
                    assertThat(usedIdx(m)).isEqualTo(3);
                }
                assertSameGuestView(src, dst);
                byte[] got = new byte[4 * 512];
                dst.memory().read(0x310000, got, 0, got.length);
                assertThat(got).isEqualTo(java.util.Arrays.copyOfRange(pattern, 10 * 512, 14 * 512));
                assertThat(dst.memory().readByte(0x200120)).as("status OK").isZero();
            }
        }
    }
}
