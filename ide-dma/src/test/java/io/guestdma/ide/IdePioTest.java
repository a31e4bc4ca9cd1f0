package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** PIO data transfers through the data register, 16 and 32 bits wide, LBA28, LBA48 and CHS. */
class IdePioTest {

    private static void writeSectors(IdeRig rig, byte[] data, boolean wide) {
        for (int off = 0; off < data.length; ) {
            assertThat(rig.inb(REG_STATUS) & (DRQ | BSY | ERR)).isEqualTo(DRQ);
            for (int end = off + 512; off < end; ) {
                if (wide) {
                    rig.outl(REG_DATA, (data[off] & 0xff) | (data[off + 1] & 0xff) << 8
                            | (data[off + 2] & 0xff) << 16 | (data[off + 3] & 0xff) << 24);
                    off += 4;
                } else {
                    rig.outw(REG_DATA, (data[off] & 0xff) | (data[off + 1] & 0xff) << 8);
                    off += 2;
                }
            }
        }
    }

    private static byte[] readSectors(IdeRig rig, int count, boolean wide) {
        byte[] data = new byte[count * 512];
        for (int off = 0; off < data.length; ) {
            assertThat(rig.irq14.level()).isTrue();
            assertThat(rig.inb(REG_STATUS) & (DRQ | BSY | ERR | DRDY)).isEqualTo(DRQ | DRDY);
            for (int end = off + 512; off < end; ) {
                int v = wide ? rig.inl(REG_DATA) : rig.inw(REG_DATA);
                data[off++] = (byte) v;
                data[off++] = (byte) (v >>> 8);
                if (wide) {
                    data[off++] = (byte) (v >>> 16);
                    data[off++] = (byte) (v >>> 24);
                }
            }
        }
        return data;
    }

    @Test
    void writeThenReadSectorsWith16BitAccesses() {
        try (IdeRig rig = IdeRig.builder().build()) {
            byte[] data = pattern(3 * 512, 1);
            rig.command(CMD_WRITE_PIO, 100, 3);
            assertThat(rig.irq14.level()).isFalse(); // the first block needs no interrupt
            writeSectors(rig, data, false);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(rig.diskBytes(100 * 512, data.length)).isEqualTo(data);
            // the task file now addresses the sector after the last one written
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo(103);
            assertThat(rig.inb(REG_NSECTORS)).isZero();

            rig.command(CMD_READ_PIO, 100, 3);
            assertThat(readSectors(rig, 3, false)).isEqualTo(data);
            int status = rig.inb(REG_STATUS);
            assertThat(status).isEqualTo(DRDY | DSC);
            // after the last word, the data register reads 0
            assertThat(rig.inw(REG_DATA)).isZero();
        }
    }

    @Test
    void thirtyTwoBitAccessesMoveFourBytesAtATime() {
        try (IdeRig rig = IdeRig.builder().build()) {
            byte[] data = pattern(2 * 512, 2);
            rig.command(CMD_WRITE_PIO, 7, 2);
            writeSectors(rig, data, true);
            rig.command(CMD_READ_PIO, 7, 2);
            assertThat(readSectors(rig, 2, true)).isEqualTo(data);
            assertThat(rig.diskBytes(7 * 512, data.length)).isEqualTo(data);
        }
    }

    @Test
    void lba48UsesTheHighOrderBytesWrittenFirst() {
        long sectors = (1L << 28) + 64;
        try (IdeRig rig = IdeRig.builder().sectors(sectors).build()) {
            long lba = (1L << 28) + 5; // not reachable with LBA28
            byte[] data = pattern(512, 3);
            rig.outb(REG_DEVICE, LBA);
            rig.outb(REG_NSECTORS, 0);
            rig.outb(REG_LBA_LOW, (int) (lba >>> 24));
            rig.outb(REG_LBA_MID, 0);
            rig.outb(REG_LBA_HIGH, 0);
            rig.outb(REG_NSECTORS, 1);
            rig.outb(REG_LBA_LOW, (int) lba & 0xff);
            rig.outb(REG_LBA_MID, (int) (lba >>> 8) & 0xff);
            rig.outb(REG_LBA_HIGH, (int) (lba >>> 16) & 0xff);
            rig.outb(REG_COMMAND, CMD_WRITE_PIO_EXT);
            writeSectors(rig, data, false);
            assertThat(rig.diskBytes(lba * 512, 512)).isEqualTo(data);
            // with HOB set in device control, the registers show the high-order bytes
            rig.control(0x80);
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo((int) ((lba + 1) >>> 24) & 0xff);
            rig.control(0);
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo((int) (lba + 1) & 0xff);
        }
    }

    @Test
    void readMultipleTransfersBlocksOfSixteenSectorsPerInterrupt() {
        try (IdeRig rig = IdeRig.builder().build()) {
            byte[] data = pattern(20 * 512, 4);
            rig.writeDisk(50 * 512, data);
            rig.command(CMD_READ_MULTIPLE, 50, 20);
            byte[] got = new byte[data.length];
            int interrupts = 0;
            int off = 0;
            while (off < got.length) {
                assertThat(rig.irq14.level()).isTrue();
                interrupts++;
                assertThat(rig.inb(REG_STATUS) & DRQ).isEqualTo(DRQ); // lowers the line
                int block = Math.min(16, (got.length - off) / 512) * 512;
                for (int end = off + block; off < end; off += 2) {
                    int v = rig.inw(REG_DATA);
                    got[off] = (byte) v;
                    got[off + 1] = (byte) (v >>> 8);
                }
            }
            assertThat(interrupts).isEqualTo(2);
            assertThat(got).isEqualTo(data);
        }
    }

    @Test
    void chsAddressingUsesTheGuessedGeometry() {
        try (IdeRig rig = IdeRig.builder().build()) {
            byte[] data = pattern(512, 5);
            // cylinder 1, head 2, sector 3 with 16 heads and 63 sectors per track
            long lba = (1L * 16 + 2) * 63 + (3 - 1);
            rig.writeDisk(lba * 512, data);
            rig.outb(REG_DEVICE, 0xa0 | 2);
            rig.outb(REG_NSECTORS, 1);
            rig.outb(REG_LBA_LOW, 3);
            rig.outb(REG_LBA_MID, 1);
            rig.outb(REG_LBA_HIGH, 0);
            rig.outb(REG_COMMAND, CMD_READ_PIO);
            assertThat(readSectors(rig, 1, false)).isEqualTo(data);
        }
    }

    @Test
    void dataRegisterReadsZeroAndIgnoresWritesOutsideATransfer() {
        try (IdeRig rig = IdeRig.builder().build()) {
            assertThat(rig.inb(REG_DATA)).isZero();
            assertThat(rig.inw(REG_DATA)).isZero();
            rig.outw(REG_DATA, 0x1234); // no DRQ: ignored
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
        }
    }

    @Test
    void byteReadOfTheDataRegisterConsumesAWholeWord() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.outb(REG_DEVICE, 0);
            rig.outb(REG_COMMAND, CMD_IDENTIFY);
            int[] words = new int[256];
            for (int i = 0; i < words.length; i++) {
                words[i] = rig.inw(REG_DATA);
            }
            rig.outb(REG_COMMAND, CMD_IDENTIFY);
            assertThat(rig.inb(REG_DATA)).isEqualTo(words[0] & 0xff);
            assertThat(rig.inb(REG_DATA)).isEqualTo(words[1] & 0xff);
            assertThat(rig.inw(REG_DATA)).isEqualTo(words[2]);
        }
    }

    @Test
    void wideAccessesAwayFromTheDataRegisterFollowQemusPortLists() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.outb(REG_NSECTORS, 0x11);
            rig.outb(REG_LBA_LOW, 0x22);
            rig.outb(REG_LBA_MID, 0x33);
            // 16 bits at a task-file register read two registers; 32 bits read all ones untouched.
            assertThat(rig.inw(REG_NSECTORS)).isEqualTo(0x2211);
            assertThat(rig.inl(REG_NSECTORS)).isEqualTo(0xffffffff);
            // The status register is the last port of the window: the byte past it reads 0xff.
            assertThat(rig.inw(REG_STATUS)).isEqualTo(0xff00 | (DRDY | DSC));
            // A 32-bit write away from the data register is dropped whole.
            rig.outl(REG_NSECTORS, 0x77665544);
            assertThat(rig.inb(REG_NSECTORS)).isEqualTo(0x11);
            rig.outw(REG_LBA_LOW, 0x5544);
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo(0x44);
            assertThat(rig.inb(REG_LBA_MID)).isEqualTo(0x55);
        }
    }

    @Test
    void pioReadPastTheEndAbortsWithAnInterrupt() {
        try (IdeRig rig = IdeRig.builder().sectors(1024).build()) {
            rig.command(CMD_READ_PIO, 1024, 1);
            assertThat(rig.irq14.level()).isTrue();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | ERR);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(ABRT);
        }
    }

    @Test
    void pioWritePastTheEndAbortsOnlyOnceTheDataIsIn() {
        try (IdeRig rig = IdeRig.builder().sectors(1024).build()) {
            rig.command(CMD_WRITE_PIO, 1023, 2);
            writeSectors(rig, new byte[512], false); // the last sector is in range
            writeSectors(rig, new byte[512], false); // the second is not
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | ERR);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(ABRT);
        }
    }
}
