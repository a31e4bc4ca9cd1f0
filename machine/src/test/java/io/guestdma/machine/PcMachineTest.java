package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The machine's wiring, without QEMU: port decoding, BAR4 and the command register, reset, IRQs. */
class PcMachineTest {
    private static final int IDE = 1 << 3 | 1;
    private static final int BM = 0xc000;

    @TempDir
    Path dir;

    private PcMachine machine(String... driveOptions) throws IOException {
        Path image = dir.resolve("disk.img");
        byte[] disk = new byte[1 << 20];
        for (int i = 0; i < disk.length; i++) {
            disk[i] = (byte) (i / 512 + i);
        }
        Files.write(image, disk);
        return new PcMachine(MachineConfig.parse(List.of("-m", "16M",
                "-drive", "file=" + image + String.join("", driveOptions))));
    }

    private static void config(PcMachine m, int register, int size, int value) {
        m.ports().write(0xcf8, 4, 0x80000000 | IDE << 8 | (register & 0xfc));
        m.ports().write(0xcfc + (register & 3), size, value);
    }

    private static int config(PcMachine m, int register, int size) {
        m.ports().write(0xcf8, 4, 0x80000000 | IDE << 8 | (register & 0xfc));
        return m.ports().read(0xcfc + (register & 3), size);
    }

    @Test
    void legacyPortsAlwaysDecodeAndBar4FollowsTheCommandRegister() throws IOException {
        try (PcMachine m = machine()) {
            assertThat(m.ports().read(0x1f7, 1)).as("status with I/O disabled").isEqualTo(0x50);
            config(m, 0x20, 4, BM);
            assertThat(m.ports().read(BM + 4, 4)).as("BAR4 without I/O enabled").isEqualTo(0xffffffff);
            config(m, 0x04, 2, PciFunction.COMMAND_IO);
            m.ports().write(BM + 4, 4, 0x1234567f);
            assertThat(m.ports().read(BM + 4, 4)).isEqualTo(0x1234567c);
            config(m, 0x20, 4, 0xd000);
            assertThat(m.ports().read(BM + 4, 4)).as("old window").isEqualTo(0xffffffff);
            assertThat(m.ports().read(0xd004, 4)).as("moved window keeps its registers").isEqualTo(0x1234567c);
            config(m, 0x04, 2, 0);
            assertThat(m.ports().read(0xd004, 4)).isEqualTo(0xffffffff);
            assertThat(m.ports().read(0x1f7, 1)).isEqualTo(0x50);
        }
    }

    @Test
    void theBusMasterBitGatesDma() throws IOException {
        try (PcMachine m = machine()) {
            config(m, 0x20, 4, BM);
            config(m, 0x04, 2, PciFunction.COMMAND_IO); // no bus master
            m.memory().writeInt(0x1000, 0x20000);
            m.memory().writeInt(0x1004, 0x80000000 | 512);
            readDma(m, 3);
            assertThat(ram(m, 0x20000, 512)).as("nothing reaches RAM").containsOnly(0);

            config(m, 0x04, 2, PciFunction.COMMAND_IO | PciFunction.COMMAND_MASTER);
            readDma(m, 3);
            byte[] expected = new byte[512];
            for (int i = 0; i < 512; i++) {
                expected[i] = (byte) (3 + 3 * 512 + i);
            }
            assertThat(ram(m, 0x20000, 512)).isEqualTo(expected);
        }
    }

    private static void readDma(PcMachine m, int sector) {
        m.ports().write(BM, 1, 0);
        m.ports().write(BM + 2, 1, 0x04);
        m.ports().write(BM + 4, 4, 0x1000);
        m.ports().write(0x1f6, 1, 0x40);
        m.ports().write(0x1f2, 1, 1);
        m.ports().write(0x1f3, 1, sector);
        m.ports().write(0x1f4, 1, 0);
        m.ports().write(0x1f5, 1, 0);
        m.ports().write(0x1f7, 1, 0xc8);
        m.ports().write(BM, 1, 0x09);
        assertThat(m.ports().read(BM + 2, 1) & 0x04).as("bm status: interrupt").isEqualTo(0x04);
        m.ports().write(BM, 1, 0);
    }

    private static byte[] ram(PcMachine m, long address, int length) {
        byte[] b = new byte[length];
        m.memory().read(address, b, 0, length);
        return b;
    }

    @Test
    void interruptsReachTheListenerOncePerChange() throws IOException {
        try (PcMachine m = machine()) {
            List<String> events = new ArrayList<>();
            m.irqListener((line, level) -> events.add(line + (level ? "+" : "-")));
            m.ports().write(0x1f6, 1, 0xa0);
            m.ports().write(0x1f7, 1, 0xec); // IDENTIFY
            assertThat(m.irqLevel(14)).isTrue();
            m.ports().read(0x3f6, 1); // alternate status: no side effect
            m.ports().read(0x1f7, 1);
            m.ports().read(0x1f7, 1);
            assertThat(events).containsExactly("14+", "14-");
            assertThat(m.irqLevel(14)).isFalse();
            assertThatThrownBy(() -> m.irqLevel(16)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void theResetControlRegisterResetsPciAndIde() throws IOException {
        try (PcMachine m = machine()) {
            config(m, 0x20, 4, BM);
            config(m, 0x04, 2, 0x7);
            m.ports().write(0xcf9, 1, 0x02);
            assertThat(m.ports().read(0xcf9, 2)).as("bit 1 is stored; wide reads repeat it").isEqualTo(0x0202);
            m.ports().write(0x1f2, 1, 0x33);
            m.ports().write(0xcf9, 1, 0x06);
            assertThat(config(m, 0x20, 4)).isEqualTo(1);
            assertThat(config(m, 0x04, 2)).isZero();
            assertThat(m.ports().read(0xcf9, 1)).isZero();
            assertThat(m.ports().read(BM + 2, 1)).isEqualTo(0xff);
            assertThat(m.ports().read(0x1f2, 1)).as("task file reset").isEqualTo(0x01);
        }
    }

    @Test
    void ramStartsAtZeroAndTheRestIsUnassigned() throws IOException {
        try (PcMachine m = machine()) {
            m.memory().writeInt((16 << 20) - 4, 0x11223344);
            m.memory().writeInt(16 << 20, 0x55667788);
            assertThat(m.memory().readLong((16 << 20) - 4)).isEqualTo(0x11223344L);
            assertThat(Arrays.asList(m.memory().regions().getFirst().base(), m.memory().regions().getFirst().size()))
                    .containsExactly(0L, 16L << 20);
        }
    }

    @Test
    void aMissingImageIsAnIoErrorNamingTheFile() {
        Path missing = dir.resolve("missing.img");
        assertThatThrownBy(() -> new PcMachine(MachineConfig.parse(List.of("-drive", "file=" + missing))))
                .isInstanceOf(IOException.class).hasMessageContaining("missing.img");
    }
}
