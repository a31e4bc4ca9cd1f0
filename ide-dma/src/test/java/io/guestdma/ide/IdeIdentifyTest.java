package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** IDENTIFY DEVICE: the data phase and QEMU 7.2's word layout. */
class IdeIdentifyTest {

    private static int[] identify(IdeRig rig) {
        rig.outb(REG_DEVICE, 0);
        rig.outb(REG_COMMAND, CMD_IDENTIFY);
        assertThat(rig.irq14.level()).isTrue();
        assertThat(rig.inb(REG_DEVICE) & DEV).isZero();
        int[] words = new int[256];
        for (int i = 0; i < 256; i++) {
            int status = rig.inb(REG_STATUS);
            assertThat(status & (DRDY | DRQ)).isEqualTo(DRDY | DRQ);
            assertThat(status & (BSY | DF | ERR)).isZero();
            words[i] = rig.inw(REG_DATA);
        }
        int status = rig.inb(REG_STATUS);
        assertThat(status & DRDY).isEqualTo(DRDY);
        assertThat(status & (BSY | DF | ERR | DRQ)).isZero();
        return words;
    }

    private static String string(int[] words, int first, int count) {
        StringBuilder s = new StringBuilder();
        for (int i = first; i < first + count; i++) {
            s.append((char) (words[i] >>> 8)).append((char) (words[i] & 0xff));
        }
        return s.toString();
    }

    @Test
    void wordsMatchQemuForASmallDisk() {
        try (IdeRig rig = IdeRig.builder().sectors(16384).build()) {
            int[] w = identify(rig);
            assertThat(w[0]).isEqualTo(0x0040);
            // 16384 sectors / (16 * 63) = 16 cylinders
            assertThat(new int[] {w[1], w[3], w[4], w[5], w[6]})
                    .containsExactly(16, 16, 512 * 63, 512, 63);
            assertThat(string(w, 10, 10)).isEqualTo("QM00001             ");
            assertThat(string(w, 23, 4)).isEqualTo("2.5+    ");
            assertThat(string(w, 27, 20)).isEqualTo("QEMU HARDDISK" + " ".repeat(27));
            assertThat(new int[] {w[20], w[21], w[22]}).containsExactly(3, 512, 4);
            assertThat(w[47]).isEqualTo(0x8010);
            assertThat(w[48]).isEqualTo(1);
            assertThat(w[49]).isEqualTo(0x0b00);
            assertThat(new int[] {w[51], w[52], w[53]}).containsExactly(0x200, 0x200, 7);
            assertThat(new int[] {w[54], w[55], w[56]}).containsExactly(16, 16, 63);
            assertThat(w[57] | w[58] << 16).isEqualTo(16 * 16 * 63);
            assertThat(w[59]).isEqualTo(0x110);
            assertThat(w[60] | w[61] << 16).isEqualTo(16384);
            assertThat(new int[] {w[62], w[63], w[64]}).containsExactly(7, 7, 3);
            assertThat(new int[] {w[65], w[66], w[67], w[68]}).containsExactly(120, 120, 120, 120);
            assertThat(w[69]).isEqualTo(0x4000);
            assertThat(new int[] {w[80], w[81], w[82], w[83], w[84], w[85], w[86], w[87], w[88]})
                    .containsExactly(0xf0, 0x16, 0x4021, 0x7400, 0x4000, 0x4021, 0x3400, 0x4000, 0x203f);
            assertThat(w[93]).isEqualTo(0x6001);
            assertThat(new int[] {w[100], w[101], w[102], w[103]}).containsExactly(16384, 0, 0, 0);
            assertThat(w[106]).isEqualTo(0x6000);
            assertThat(w[169]).isEqualTo(1);
        }
    }

    @Test
    void lba28CapacityStopsBelow2To28WhileLba48WordsCarryTheRest() {
        long sectors = (1L << 28) + 8; // a sparse 128 GiB image
        try (IdeRig rig = IdeRig.builder().sectors(sectors).build()) {
            int[] w = identify(rig);
            assertThat(w[60] | w[61] << 16).isEqualTo((1 << 28) - 1);
            long lba48 = w[100] | (long) w[101] << 16 | (long) w[102] << 32 | (long) w[103] << 48;
            assertThat(lba48).isEqualTo(sectors);
            assertThat(w[1]).isEqualTo(16383); // cylinders cap
        }
    }

    @Test
    void configuredSerialFirmwareAndModelAsIdeTestSetsThem() {
        try (IdeRig rig = IdeRig.builder()
                .configure(c -> c.withSerial("testdisk").withModel("QEMU HARDDISK", "version"))
                .build()) {
            int[] w = identify(rig);
            assertThat(string(w, 10, 10)).isEqualTo("testdisk            ");
            assertThat(string(w, 23, 4)).isEqualTo("version ");
            assertThat(w[85] & 0x20).isEqualTo(0x20);
        }
    }

    @Test
    void geometryComesFromThePartitionTableWhenThereIsOne() {
        byte[] mbr = new byte[512];
        mbr[510] = 0x55;
        mbr[511] = (byte) 0xaa;
        int entry = 0x1be;
        mbr[entry + 5] = 7; // end head: 8 heads
        mbr[entry + 6] = 32; // end sector: 32 sectors per track
        mbr[entry + 12] = 100; // a non-empty partition
        try (IdeRig rig = IdeRig.builder().sectors(16384).sectorZero(mbr).build()) {
            int[] w = identify(rig);
            assertThat(new int[] {w[1], w[3], w[6]}).containsExactly(16384 / (8 * 32), 8, 32);
        }
    }

    @Test
    void setFeaturesChangesTheCachedTransferModeAndWriteCacheWords() {
        try (IdeRig rig = IdeRig.builder().build()) {
            identify(rig);
            rig.outb(REG_FEATURE, 0x03);
            rig.outb(REG_NSECTORS, 0x40 | 2); // UDMA mode 2
            rig.outb(REG_COMMAND, CMD_SET_FEATURES);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            rig.outb(REG_FEATURE, 0x82); // write cache off: also flushes
            rig.outb(REG_COMMAND, CMD_SET_FEATURES);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            int[] w = identify(rig);
            assertThat(w[88]).isEqualTo(0x3f | 1 << 10);
            assertThat(w[85]).isEqualTo(0x4001);
        }
    }

    @Test
    void unknownSetFeaturesSubcommandAborts() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.outb(REG_FEATURE, 0x44);
            rig.outb(REG_COMMAND, CMD_SET_FEATURES);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | ERR);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(ABRT);
        }
    }
}
