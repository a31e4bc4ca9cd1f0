package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** virtio-blk-pci in the machine: where it goes, what it refuses. */
class VirtioBlkPciTypeTest {
    @TempDir
    Path dir;

    private PcMachine machine(String... args) throws IOException {
        return new PcMachine(MachineConfig.parse(List.of(args)));
    }

    private static int config(PcMachine m, int devfn, int register) {
        m.ports().write(PciHost.ADDRESS_PORT, 4, 0x8000_0000 | devfn << 8 | register);
        return m.ports().read(PciHost.DATA_PORT, 4);
    }

    @Test
    void takesTheFirstFreeSlotAndQemusIds() throws IOException {
        Path image = Files.write(dir.resolve("a.img"), new byte[1 << 20]);
        try (PcMachine m = machine("-drive", "if=none,id=d0,file=" + image + ",format=raw",
                "-device", "virtio-blk-pci,drive=d0")) {
            assertThat(config(m, 2 << 3, 0)).isEqualTo(0x1001_1af4);
            assertThat(config(m, 2 << 3, 0x2c)).isEqualTo(0x0002_1af4);
            assertThat(config(m, 2 << 3, 0x34) & 0xff).isEqualTo(0x98);
        }
    }
}
