package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QEMU's drive and device spellings (-drive if=none, -blockdev, -device ide-hd|ide-cd) put the
 * drives where the guest finds them; the refusals are compared with QEMU's in
 * DeviceOptionConformanceTest.
 */
class DeviceOptionsTest {
    @TempDir
    Path dir;

    private Path image(String name, int fill) throws IOException {
        byte[] bytes = new byte[1 << 20];
        Arrays.fill(bytes, (byte) fill);
        return Files.write(dir.resolve(name), bytes);
    }

    private static PcMachine machine(String... args) throws IOException {
        return new PcMachine(MachineConfig.parse(List.of(args)));
    }

    /** The signature a unit leaves in the cylinder registers: 0xeb14 for ATAPI, 0 for a disk. */
    private static int signature(PcMachine m, int channel, int unit) {
        int base = channel == 0 ? 0x1f0 : 0x170;
        m.ports().write(base + 6, 1, 0xa0 | unit << 4);
        return m.ports().read(base + 5, 1) << 8 | m.ports().read(base + 4, 1);
    }

    /** IDENTIFY DEVICE on a unit: the 256 words, or null if the drive aborted (no disk there). */
    private static int[] identify(PcMachine m, int channel, int unit) {
        int base = channel == 0 ? 0x1f0 : 0x170;
        m.ports().write(base + 6, 1, 0xa0 | unit << 4);
        m.ports().write(base + 7, 1, 0xec);
        if ((m.ports().read(base + 7, 1) & 0x08) == 0) {
            return null;
        }
        int[] words = new int[256];
        for (int i = 0; i < words.length; i++) {
            words[i] = m.ports().read(base, 2);
        }
        return words;
    }

    private static String identifyString(int[] words, int first, int count) {
        byte[] bytes = new byte[2 * count];
        for (int i = 0; i < count; i++) {
            bytes[2 * i] = (byte) (words[first + i] >> 8);
            bytes[2 * i + 1] = (byte) words[first + i];
        }
        return new String(bytes, StandardCharsets.US_ASCII).strip();
    }

    /** {@return sector 0 read with READ SECTORS (PIO) from a unit of the primary channel} */
    private static byte[] readSector0(PcMachine m, int unit) {
        m.ports().write(0x1f6, 1, 0xe0 | unit << 4);
        m.ports().write(0x1f2, 1, 1);
        m.ports().write(0x1f3, 1, 0);
        m.ports().write(0x1f4, 1, 0);
        m.ports().write(0x1f5, 1, 0);
        m.ports().write(0x1f7, 1, 0x20);
        byte[] data = new byte[512];
        for (int i = 0; i < 512; i += 2) {
            int w = m.ports().read(0x1f0, 2);
            data[i] = (byte) w;
            data[i + 1] = (byte) (w >> 8);
        }
        return data;
    }

    @Test
    void blockdevNodesOnBothUnitsAsIdeTestsDiagnosticCase() throws IOException {
        Path a = image("a.img", 0x11);
        Path b = image("b.img", 0x22);
        try (PcMachine m = machine("-blockdev", "driver=file,node-name=hda,filename=" + a,
                "-blockdev", "driver=file,node-name=hdb,filename=" + b,
                "-device", "ide-hd,drive=hda,bus=ide.0,unit=0",
                "-device", "ide-hd,drive=hdb,bus=ide.0,unit=1")) {
            assertThat(readSector0(m, 0)).containsOnly(0x11);
            assertThat(readSector0(m, 1)).containsOnly(0x22);
            assertThat(identify(m, 1, 0)).as("nothing on the secondary channel").isNull();
        }
    }

    @Test
    void rawNodeOverAFileNodeReadsTheFile() throws IOException {
        Path a = image("a.img", 0x33);
        try (PcMachine m = machine("-blockdev", "driver=file,node-name=f0,filename=" + a,
                "-blockdev", "driver=raw,node-name=r0,file=f0", "-device", "ide-hd,drive=r0,bus=ide.1,unit=1")) {
            assertThat(identify(m, 1, 1)).isNotNull();
            assertThat(identify(m, 0, 0)).isNull();
        }
    }

    @Test
    void cdromDrivesAsIdeTestsCdromCases() throws IOException {
        Path disc = image("disc.iso", 0x44);
        try (PcMachine m = machine("-drive", "if=none,file=" + disc + ",media=cdrom,format=raw,id=sr0,index=0",
                "-device", "ide-cd,drive=sr0,bus=ide.0")) {
            assertThat(signature(m, 0, 0)).as("ATAPI signature on the master").isEqualTo(0xeb14);
        }
        try (PcMachine m = machine("-device", "ide-cd,bus=ide.0")) {
            assertThat(signature(m, 0, 0)).as("an empty CD-ROM drive").isEqualTo(0xeb14);
        }
        try (PcMachine m = machine("-device", "ide-cd", "-device", "ide-cd", "-device", "ide-cd")) {
            assertThat(signature(m, 0, 0)).as("no bus: the first free unit").isEqualTo(0xeb14);
            assertThat(signature(m, 0, 1)).isEqualTo(0xeb14);
            assertThat(signature(m, 1, 0)).isEqualTo(0xeb14);
        }
    }

    @Test
    void devicePropertiesOverGlobals() throws IOException {
        Path a = image("a.img", 0);
        try (PcMachine m = machine("-drive", "if=none,id=d0,file=" + a + ",format=raw",
                "-global", "ide-hd.serial=global", "-global", "ide-hd.model=Global Model",
                "-device", "ide-hd,drive=d0,serial=mine,ver=1.0,id=disk0")) {
            int[] words = identify(m, 0, 0);
            assertThat(identifyString(words, 10, 10)).isEqualTo("mine");
            assertThat(identifyString(words, 23, 4)).isEqualTo("1.0");
            assertThat(identifyString(words, 27, 20)).isEqualTo("Global Model");
        }
    }

    @Test
    void ifIdeDrivesComeFirstAndKeepQemusNames() throws IOException {
        Path a = image("a.img", 0);
        Path b = image("b.img", 0);
        MachineConfig c = MachineConfig.parse(List.of("-drive", "file=" + a, "-drive", "file=" + b + ",index=3",
                "-drive", "if=none,file=" + a, "-drive", "if=ide,media=cdrom,index=2"));
        assertThat(c.drives()).extracting(DriveSpec::id).containsExactly("ide0-hd0", "ide1-hd1", "none0", "ide1-cd0");
        // a -device placed on the unit an if=ide drive took is refused, as QEMU refuses it
        assertThatThrownBy(() -> machine("-drive", "file=" + a, "-drive", "if=none,id=x,file=" + b,
                "-device", "ide-hd,drive=x,bus=ide.0,unit=0")).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("-device ide-hd,drive=x,bus=ide.0,unit=0: IDE unit 0 is in use");
    }

    @Test
    void refusalsWithoutQemusWording() throws IOException {
        Path a = image("a.img", 0);
        assertThatThrownBy(() -> machine("-blockdev", "driver=file,node-name=n0,filename=" + a,
                "-device", "ide-hd,drive=n0", "-device", "ide-hd,drive=n0,bus=ide.1"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("-device ide-hd,drive=n0,bus=ide.1: Drive 'n0' is already in use by another device");
        assertThatThrownBy(() -> machine("-blockdev", "driver=file,node-name=n0,filename=" + dir.resolve("none")))
                .isInstanceOf(IOException.class)
                .hasMessage("Could not open '" + dir.resolve("none") + "': No such file or directory");
        assertThatThrownBy(() -> MachineConfig.parse(List.of("-blockdev", "driver=qcow2,node-name=n0,file=x")))
                .hasMessageContaining("driver=qcow2 is not supported");
        assertThatThrownBy(() -> MachineConfig.parse(List.of("-global", "e1000.mac=x")))
                .hasMessageContaining("no device driver 'e1000'");
        assertThatThrownBy(() -> MachineConfig.parse(List.of("-global", "ide-hd.drive=x")))
                .hasMessageContaining("Property 'ide-hd.drive' not found");
        assertThatThrownBy(() -> MachineConfig.parse(List.of("-device", ",bus=ide.0")))
                .hasMessageContaining("Parameter 'driver' is missing");
    }

    @Test
    void unusedDrivesAreClosedWithTheMachine() throws IOException {
        Path a = image("a.img", 0);
        machine("-drive", "if=none,id=spare,file=" + a).close();
        // the image lock is gone: the same image opens again for writing
        try (PcMachine m = machine("-drive", "file=" + a)) {
            assertThat(identify(m, 0, 0)).isNotNull();
        }
    }
}
