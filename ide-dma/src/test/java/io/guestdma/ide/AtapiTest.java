package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import java.io.ByteArrayOutputStream;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The ATAPI CD-ROM drive: the packet protocol, sense data, reads by PIO (16 and 32 bits) and DMA
 * against the image, an empty drive, a medium change seen as NOT READY then UNIT ATTENTION, and
 * random packets that must never throw out of a register access.
 */
class AtapiTest {
    private static final int CMD_PACKET = 0xa0;
    private static final int REASON_CD = 1;
    private static final int REASON_IO = 2;

    static IdeRig cdRig(DmaMode mode) {
        IdeRig rig = IdeRig.builder().mode(mode).sectors(4096).configure(c -> DriveConfig.cdrom(c.backend())).build();
        rig.writeDisk(0, pattern(2 * 1024 * 1024, 5));
        return rig;
    }

    static byte[] cdb(int... bytes) {
        byte[] p = new byte[12];
        for (int i = 0; i < bytes.length; i++) {
            p[i] = (byte) bytes[i];
        }
        return p;
    }

    static byte[] read10(int lba, int count) {
        return cdb(0x28, 0, lba >>> 24, lba >>> 16, lba >>> 8, lba, 0, count >>> 8, count);
    }

    static void packet(IdeRig rig, byte[] cdb, int bcl, boolean dma) {
        rig.outb(REG_DEVICE, 0);
        rig.outb(REG_FEATURE, dma ? 1 : 0);
        rig.outb(REG_LBA_MID, bcl & 0xff);
        rig.outb(REG_LBA_HIGH, bcl >>> 8);
        rig.outb(REG_COMMAND, CMD_PACKET);
        assertThat(rig.inb(REG_NSECTORS) & 3).as("interrupt reason: command packet").isEqualTo(REASON_CD);
        assertThat(rig.altStatus() & (DRQ | BSY)).isEqualTo(DRQ);
        for (int i = 0; i < 12; i += 2) {
            rig.outw(REG_DATA, (cdb[i] & 0xff) | (cdb[i + 1] & 0xff) << 8);
        }
    }

    /** A PIO command; counts the DRQ blocks (each with its interrupt) and returns all data. */
    static byte[] pio(IdeRig rig, byte[] cdb, int bcl, boolean wide, int[] blocks) {
        packet(rig, cdb, bcl, false);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        while (true) {
            rig.waitNotBusy();
            assertThat(rig.irq14.level()).as("an interrupt per DRQ block and at the end").isTrue();
            int status = rig.inb(REG_STATUS);
            if ((status & DRQ) == 0) {
                return out.toByteArray();
            }
            blocks[0]++;
            assertThat(rig.inb(REG_NSECTORS) & 3).isEqualTo(REASON_IO);
            int count = rig.inb(REG_LBA_MID) | rig.inb(REG_LBA_HIGH) << 8;
            for (int i = 0; i < count; ) {
                int v = wide && count - i >= 4 ? rig.inl(REG_DATA) : rig.inw(REG_DATA);
                int width = wide && count - i >= 4 ? 4 : 2;
                for (int b = 0; b < width; b++) {
                    out.write(v >>> (8 * b));
                }
                i += width;
            }
        }
    }

    static byte[] pio(IdeRig rig, byte[] cdb, int bcl) {
        return pio(rig, cdb, bcl, false, new int[1]);
    }

    static int[] sense(IdeRig rig) {
        byte[] s = pio(rig, cdb(0x03, 0, 0, 0, 18), 18);
        return new int[] {s[2] & 0x0f, s[12] & 0xff};
    }

    @Test
    void pioReadsMatchTheImageWithOneInterruptPerBlock() {
        try (IdeRig rig = cdRig(DmaMode.MAP)) {
            byte[] expected = rig.diskBytes(3 * 2048L, 5 * 2048);
            int[] blocks = new int[1];
            assertThat(pio(rig, read10(3, 5), 0xffff, false, blocks)).isEqualTo(expected);
            assertThat(blocks[0]).as("one block: the drive refills its buffer within it").isEqualTo(1);
            blocks[0] = 0;
            assertThat(pio(rig, read10(3, 5), 1000, true, blocks)).isEqualTo(expected);
            assertThat(blocks[0]).as("1000-byte blocks").isEqualTo(11);
            assertThat(rig.inb(REG_NSECTORS) & 3).isEqualTo(REASON_IO | REASON_CD);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
        }
    }

    @Test
    void dmaReadsMatchTheImageInBothEngineModes() {
        for (DmaMode mode : DmaMode.values()) {
            try (IdeRig rig = cdRig(mode)) {
                rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096}, {BUF_ADDR + 0x8000, 4096 | PRD_EOT}});
                rig.bmWrite(BM_CMD, 0);
                rig.bmWrite(BM_STATUS, BM_INTR);
                rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
                packet(rig, read10(100, 4), 0, true);
                assertThat(rig.altStatus() & (BSY | DRQ)).isEqualTo(BSY | DRQ);
                rig.bmWrite(BM_CMD, BM_START | BM_TO_MEMORY);
                rig.waitNotBusy();
                assertThat(rig.bmRead(BM_STATUS) & (BM_ACTIVE | BM_INTR | BM_ERROR)).isEqualTo(BM_INTR);
                assertThat(rig.irq14.level()).isTrue();
                assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
                assertThat(rig.ram(BUF_ADDR, 4096)).isEqualTo(rig.diskBytes(100 * 2048L, 4096));
                assertThat(rig.ram(BUF_ADDR + 0x8000, 4096)).isEqualTo(rig.diskBytes(102 * 2048L, 4096));
            }
        }
    }

    @Test
    void identifyDeviceAbortsWithThePacketSignature() {
        try (IdeRig rig = cdRig(DmaMode.MAP)) {
            rig.outb(REG_DEVICE, 0);
            rig.outb(REG_COMMAND, CMD_IDENTIFY);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | ERR);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(ABRT);
            assertThat(rig.inb(REG_LBA_MID)).isEqualTo(0x14);
            assertThat(rig.inb(REG_LBA_HIGH)).isEqualTo(0xeb);
            rig.outb(REG_COMMAND, 0xa1);
            int word0 = rig.inw(REG_DATA);
            assertThat(word0).isEqualTo(0x85c0);
        }
    }

    @Test
    void emptyDriveIsNotReady() {
        try (IdeRig rig = cdRig(DmaMode.MAP)) {
            rig.ide.changeMedium(0, 0, null);
            assertThat(rig.irq14.level()).as("a medium change interrupts").isTrue();
            pio(rig, cdb(0x00), 0);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | ERR);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(0x20); // NOT READY << 4
            assertThat(sense(rig)).containsExactly(0x02, 0x3a);
            byte[] event = pio(rig, cdb(0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8), 8);
            assertThat(event[5]).as("tray open").isEqualTo((byte) 1);
            assertThat(event[4]).as("no event while the tray is open").isZero();
            pio(rig, read10(0, 1), 2048);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(0x20);
            pio(rig, cdb(0x25), 8);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(0x20);
            // FLUSH CACHE without a medium fails at the ATA level
            rig.outb(REG_COMMAND, CMD_FLUSH_CACHE);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | ERR);
        }
    }

    @Test
    void mediumChangeReportsNotReadyThenUnitAttention() throws Exception {
        try (IdeRig rig = cdRig(DmaMode.MAP);
             var disc = FileChannelBackend.open(rig.image, BlockOptions.defaults().withReadOnly(true).withLock(false))) {
            rig.ide.changeMedium(0, 0, disc);
            pio(rig, cdb(0x00), 0);
            assertThat(rig.inb(REG_ERROR)).as("first: not ready").isEqualTo(0x20);
            pio(rig, cdb(0x00), 0);
            assertThat(rig.inb(REG_ERROR)).as("then: unit attention").isEqualTo(0x60);
            pio(rig, cdb(0x00), 0);
            assertThat(rig.inb(REG_STATUS)).as("UA pending: bare check status").isEqualTo(ERR);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(0x60);
            byte[] event = pio(rig, cdb(0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8), 8);
            assertThat(event[4]).as("new media event").isEqualTo((byte) 2);
            assertThat(event[5]).as("media present").isEqualTo((byte) 2);
            assertThat(sense(rig)).containsExactly(0x06, 0x28);
            pio(rig, cdb(0x00), 0);
            assertThat(rig.inb(REG_STATUS)).as("REQUEST SENSE cleared the unit attention").isEqualTo(DRDY | DSC);
            byte[] expected = rig.diskBytes(7 * 2048L, 2048);
            assertThat(pio(rig, read10(7, 1), 2048)).isEqualTo(expected);
        }
    }

    @Test
    void guestValuesNeverEscapeAsExceptions() {
        int[] opcodes = {0x00, 0x03, 0x12, 0x1b, 0x1e, 0x25, 0x28, 0x2b, 0x46, 0x4a, 0x5a, 0xa8, 0xbb,
            0xbd, 0x43, 0xff};
        Random random = new Random(15);
        for (DmaMode mode : DmaMode.values()) {
            try (IdeRig rig = cdRig(mode)) {
                for (int round = 0; round < 1500; round++) {
                    byte[] packet = new byte[12];
                    random.nextBytes(packet);
                    packet[0] = (byte) opcodes[random.nextInt(opcodes.length)];
                    boolean dma = random.nextInt(4) == 0;
                    rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, (random.nextInt(8) * 1024) | PRD_EOT}});
                    rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
                    rig.bmWrite(BM_CMD, 0);
                    rig.bmWrite(BM_STATUS, BM_INTR | BM_ERROR);
                    rig.outb(REG_DEVICE, 0);
                    rig.outb(REG_FEATURE, dma ? 1 : random.nextInt(4) == 0 ? random.nextInt(256) : 0);
                    int bcl = random.nextInt(3) == 0 ? random.nextInt(4) : random.nextInt(0x10000);
                    rig.outb(REG_LBA_MID, bcl & 0xff);
                    rig.outb(REG_LBA_HIGH, bcl >>> 8);
                    rig.outb(REG_COMMAND, CMD_PACKET);
                    for (int i = 0; i < 12; i += 2) {
                        rig.outw(REG_DATA, (packet[i] & 0xff) | (packet[i + 1] & 0xff) << 8);
                    }
                    if (dma) {
                        rig.bmWrite(BM_CMD, BM_START | BM_TO_MEMORY);
                    }
                    for (int i = 0; i < 20000 && (rig.altStatus() & DRQ) != 0 && !dma; i++) {
                        rig.inw(REG_DATA);
                    }
                    if ((rig.altStatus() & (BSY | DRQ)) != 0) {
                        // a stuck transfer (odd byte count, PRD underflow): the guest resets
                        rig.bmWrite(BM_CMD, 0);
                        rig.control(0x04);
                        rig.control(0x00);
                    }
                    int status = rig.inb(REG_STATUS);
                    assertThat(status & BSY).as("round %d", round).isZero();
                }
            }
        }
    }

    @Test
    void configurationRules() throws Exception {
        assertThatThrownBy(() -> new DriveConfig(null, ErrorPolicy.REPORT, ErrorPolicy.REPORT, "m", null, "v"))
                .isInstanceOf(NullPointerException.class);
        try (IdeRig rig = IdeRig.builder().build();
             var readOnly = FileChannelBackend.open(rig.image, BlockOptions.defaults().withReadOnly(true).withLock(false))) {
            rig.ide.attach(1, 0, DriveConfig.cdrom(readOnly)); // a CD may be read-only
            rig.ide.attach(1, 1, DriveConfig.cdrom(null)); // and empty
            assertThatThrownBy(() -> rig.ide.changeMedium(0, 0, null))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("no CD-ROM");
            assertThatThrownBy(() -> rig.ide.attach(0, 1, DriveConfig.of(readOnly)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("read-only");
        }
    }

    @Test
    void rawSectorsCarrySyncHeaderAndZeroedEcc() {
        byte[] buf = new byte[Atapi.RAW_SECTOR_SIZE];
        java.util.Arrays.fill(buf, (byte) 0x77);
        Atapi.rawSector(buf, 4500); // 4650 frames after the lead-in: 01:02:00
        org.assertj.core.api.Assertions.assertThat(java.util.Arrays.copyOfRange(buf, 0, 16)).containsExactly(
                0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 2, 0, 1);
        org.assertj.core.api.Assertions.assertThat(java.util.Arrays.copyOfRange(buf, 16, 2064)).containsOnly(0x77);
        org.assertj.core.api.Assertions.assertThat(java.util.Arrays.copyOfRange(buf, 2064, 2352)).containsOnly(0);
        Atapi.rawSector(buf, 0);
        org.assertj.core.api.Assertions.assertThat(java.util.Arrays.copyOfRange(buf, 12, 15)).containsExactly(0, 2, 0);
    }
}
