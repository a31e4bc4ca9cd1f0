package io.guestdma.conformance;

import static io.guestdma.conformance.IdeDriver.*;

import io.guestdma.conformance.Conformance.Image;
import io.guestdma.conformance.Conformance.Scenario;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * QEMU's tests/qtest/ide-test.c cases, replayed on QEMU 7.2 and on our machine (in both DMA
 * engine modes and on both backends): every bus-master status, interrupt level, ATA status and
 * error, the guest RAM the transfers touched, and the disk image afterwards must be the same.
 */
class IdeConformanceTest {
    private static final long MiB = 1 << 20;
    /** ide-test's TEST_IMAGE_SIZE. */
    private static final long TEST_IMAGE_SIZE = 64 * MiB;
    private static final long BUF = 0x200000;

    private static Target qemu;

    @BeforeAll
    static void requireQemu() {
        qemu = QemuTarget.require();
    }

    private static void check(String name, Image image, String driveOptions, Scenario scenario)
            throws Exception {
        Conformance.assertSame(qemu, Targets.ours(), image, driveOptions, name, scenario);
    }

    private static int[] prd(long address, int size) {
        return new int[] {(int) address, size};
    }

    private static int[] lastPrd(long address, int size) {
        return new int[] {(int) address, size | PRDT_EOT};
    }

    private static byte[] filled(int length, int value) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) value);
        return b;
    }

    @Test
    void identify() throws Exception {
        check("identify", Image.blank(TEST_IMAGE_SIZE), "", IDENTIFY);
        // ide-test's own setup: -global ide-hd.serial=testdisk -global ide-hd.ver=version
        Conformance.assertSame(qemu, Targets.oursDefault(), Image.blank(TEST_IMAGE_SIZE), ",cache=writeback",
                java.util.List.of("-global", "ide-hd.serial=testdisk", "-global", "ide-hd.ver=version",
                        "-global", "ide-hd.model=guestdma model"),
                "identify with -global", IDENTIFY);
    }

    /** ide-test's test_identify, with 16- and 32-bit data reads. */
    static final Scenario IDENTIFY = ide -> {
            ide.setUp();
            for (String width : new String[] {"inw", "inl"}) {
                ide.ideOut(REG_DEVICE, 0);
                ide.ideOut(REG_COMMAND, CMD_IDENTIFY);
                ide.log.flag(width + " irq after identify", ide.qts.irq(IDE_PRIMARY_IRQ));
                ide.log.hex(width + " device", ide.ideIn(REG_DEVICE));
                ByteBuffer data = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < 256; ) {
                    ide.log.hex(width + " status before word " + i, ide.ideIn(REG_STATUS));
                    if (width.equals("inw")) {
                        data.putShort((short) ide.qts.inw(IDE_BASE + REG_DATA));
                        i++;
                    } else {
                        data.putInt(ide.qts.inl(IDE_BASE + REG_DATA));
                        i += 2;
                    }
                }
                ide.log.hex(width + " status after data", ide.ideIn(REG_STATUS));
                ide.log.flag(width + " irq after data", ide.qts.irq(IDE_PRIMARY_IRQ));
                data.flip();
                for (int word = 0; word < 256; word++) {
                    ide.log.hex("identify word " + word, data.getShort() & 0xffff);
                }
            }
        };

    /** ide-test's test_bmdma_simple_rw: write two patterns by DMA, read them back. */
    static final Scenario SIMPLE_RW = ide -> {
        ide.setUp();
        int[][] prdt = {lastPrd(BUF, 512)};
        ide.qts.memwrite(BUF, filled(512, 0x55));
        ide.sendDmaRequest("write 0x55 to sector 0", CMD_WRITE_DMA, 0, 1, prdt);
        ide.qts.memwrite(BUF, filled(512, 0xaa));
        ide.sendDmaRequest("write 0xaa to sector 1", CMD_WRITE_DMA, 1, 1, prdt);
        ide.sendDmaRequest("read sector 0", CMD_READ_DMA, 0, 1, prdt);
        ide.recordRam("sector 0 in RAM", BUF, 512);
        ide.sendDmaRequest("read sector 1", CMD_READ_DMA, 1, 1, prdt);
        ide.recordRam("sector 1 in RAM", BUF, 512);
    };

    @Test
    void bmdmaSimpleReadWrite() throws Exception {
        check("bmdma/simple_rw", Image.blank(TEST_IMAGE_SIZE), "", SIMPLE_RW);
    }

    @Test
    void bmdmaTrim() throws Exception {
        Scenario trim = ide -> {
            ide.setUp();
            int[][] prdt = {lastPrd(BUF, 512)};
            ByteBuffer ranges = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
            ranges.putLong(2L << 48).putLong(8L << 48 | 6);
            ide.qts.memwrite(BUF, ranges.array());
            ide.sendDmaRequest("trim 0+2, 6+8", CMD_DSM, 0, 1, prdt);
            ranges.clear();
            ranges.putLong(1L << 48 | 10).putLong(2L << 48 | (TEST_IMAGE_SIZE / 512 - 1));
            ide.qts.memwrite(BUF, ranges.array());
            ide.sendDmaRequest("trim 10+1, last sector+2 (past the end)", CMD_DSM, 0, 1, prdt);
            ide.sendDmaRequest("read back sectors 0-15", CMD_READ_DMA, 0, 16,
                    new int[][] {lastPrd(BUF, 16 * 512)});
            ide.recordRam("sectors 0-15", BUF, 16 * 512);
        };
        Image image = Image.patterned(TEST_IMAGE_SIZE, MiB, 7);
        check("bmdma/trim (discard=ignore, QEMU's default)", image, "", trim);
        check("bmdma/trim (discard=unmap)", image, ",discard=unmap", trim);
    }

    /** ide-test's test_bmdma_various_prdts: one PRD of every size against 1-256 sectors, plain and aborted. */
    @Test
    void bmdmaVariousPrdts() throws Exception {
        check("bmdma/various_prdts", Image.patterned(16 * MiB, MiB, 3), "", ide -> {
            ide.setUp();
            for (int sectors = 1; sectors <= 256; sectors *= 2) {
                for (int size = 0; size < 65536; size += 256) {
                    int[][] prdt = {new int[] {0, size | PRDT_EOT}};
                    String label = sectors + " sectors, PRD " + size;
                    ide.sendDmaRequest(label, CMD_READ_DMA, 0, sectors, prdt);
                    ide.sendDmaRequest(label + " aborted", CMD_READ_DMA | CMDF_ABORT, 0, sectors, prdt);
                }
            }
            ide.recordRam("RAM 0-64K", 0, 65536);
        });
    }

    @Test
    void bmdmaNoBusmaster() throws Exception {
        check("bmdma/no_busmaster", Image.patterned(16 * MiB, MiB, 5), "", ide -> {
            ide.setUp();
            ide.qts.memset(BUF, 4096 * 8, 0xcc); // garbage where a careless engine would write
            ide.qts.memset(PRDT_ADDR, 4096 * 8, 0);
            ide.sendDmaRequest("no busmaster, 4096 null PRDs", CMD_READ_DMA | CMDF_NO_BM, 0, 512, PRDT_ADDR);
            ide.recordRam("RAM 0-64K", 0, 65536);
            ide.recordRam("buffer", BUF, 4096 * 8);
            ide.qts.memwrite(BUF, filled(4096, 0x5a));
            ide.sendDmaRequest("no busmaster write", CMD_WRITE_DMA | CMDF_NO_BM, 4, 8,
                    new int[][] {lastPrd(BUF, 4096)});
        });
    }

    @Test
    void flush() throws Exception {
        check("flush", Image.blank(16 * MiB), "", ide -> {
            ide.setUp();
            ide.qts.memwrite(BUF, filled(512, 0x3c));
            ide.sendDmaRequest("make dirty", CMD_WRITE_DMA, 1, 1, new int[][] {lastPrd(BUF, 512)});
            for (int command : new int[] {CMD_FLUSH_CACHE, CMD_FLUSH_CACHE_EXT}) {
                String label = String.format("flush 0x%x", command);
                ide.ideOut(REG_DEVICE, 0);
                ide.ideOut(REG_COMMAND, command);
                ide.log.hex(label + " status when idle", ide.waitNotBusy());
                ide.recordTaskFile(label);
            }
        });
    }

    /** PRD tables of several entries that are shorter than, equal to and longer than the transfer. */
    @Test
    void shortAndLongPrdts() throws Exception {
        int[][][] tables = {
                {prd(BUF, 1024), prd(BUF + 0x1000, 1024), lastPrd(BUF + 0x2000, 1024)},   // short
                {prd(BUF, 2048), lastPrd(BUF + 0x1000, 2048)},                             // exact
                {prd(BUF, 2048), prd(BUF + 0x1000, 2048), lastPrd(BUF + 0x2000, 2048)},   // long
                {prd(BUF, 1000), prd(BUF + 0x1000, 1000), lastPrd(BUF + 0x2000, 2096)},   // odd split
                {prd(BUF + 0x3, 513), lastPrd(BUF + 0x1001, 3583)},                        // odd address
                {prd(BUF, 0x10000), lastPrd(BUF + 0x10000, 0)},                            // 0 = 64 KiB
                {prd(BUF, 2), prd(BUF + 0x10, 2), lastPrd(BUF + 0x20, 2)},                 // tiny
        };
        check("short and long PRDTs", Image.patterned(16 * MiB, 2 * MiB, 11), "", ide -> {
            ide.setUp();
            for (int t = 0; t < tables.length; t++) {
                for (boolean write : new boolean[] {false, true}) {
                    String label = "table " + t + (write ? " write" : " read");
                    ide.qts.memset(BUF, 0x30000, write ? 0x77 + t : 0xee);
                    ide.sendDmaRequest(label, write ? CMD_WRITE_DMA : CMD_READ_DMA, 64 + 8 * t, 8,
                            tables[t]);
                    ide.recordRam(label + " RAM", BUF, 0x30000);
                }
            }
        });
    }

    /** READ/WRITE DMA EXT with more than 256 sectors, at and past the end of the disk. */
    @Test
    void lba48AndTheEndOfTheDisk() throws Exception {
        long sectors = 16 * MiB / 512;
        int[][] prdt = {prd(BUF, 0), prd(BUF + 0x10000, 0), prd(BUF + 0x20000, 0), lastPrd(BUF + 0x30000, 0)};
        check("LBA48 and the end of the disk", Image.patterned(16 * MiB, 16 * MiB, 13), "", ide -> {
            ide.setUp();
            ide.qts.memset(BUF, 0x40000, 0x99);
            ide.sendDmaRequest("write ext 300 sectors", CMD_WRITE_DMA_EXT, 1000, 300, prdt);
            ide.sendDmaRequest("read ext 300 sectors", CMD_READ_DMA_EXT, 999, 300, prdt);
            ide.recordRam("RAM after read ext", BUF, 0x40000);
            long[] lbas = {sectors - 8, sectors - 4, sectors - 1, sectors, sectors + 100, 0xfffffffL};
            for (long lba : lbas) {
                for (int cmd : new int[] {CMD_READ_DMA, CMD_WRITE_DMA, CMD_READ_DMA_EXT, CMD_WRITE_DMA_EXT}) {
                    String label = String.format("cmd 0x%x lba %d", cmd, lba);
                    ide.qts.memset(BUF, 0x1000, 0x42);
                    ide.sendDmaRequest(label, cmd, lba, 8, new int[][] {lastPrd(BUF, 4096)});
                    ide.recordRam(label + " RAM", BUF, 0x1000);
                }
            }
            ide.sendDmaRequest("read ext lba 2^48-1", CMD_READ_DMA_EXT, (1L << 48) - 1, 1,
                    new int[][] {lastPrd(BUF, 512)});
        });
    }

    /** PIO READ/WRITE SECTORS through the data port, 16- and 32-bit wide, waiting for BSY as a driver does. */
    @Test
    void pioReadAndWrite() throws Exception {
        check("PIO", Image.patterned(16 * MiB, MiB, 17), "", ide -> {
            ide.setUp();
            pioCommand(ide, 0x20, 5, 2); // READ SECTORS
            ByteBuffer data = ByteBuffer.allocate(1024).order(ByteOrder.LITTLE_ENDIAN);
            for (int sector = 0; sector < 2; sector++) {
                ide.log.hex("read sector " + sector + " alt status when idle", ide.waitNotBusy());
                ide.log.flag("read sector " + sector + " irq", ide.qts.irq(IDE_PRIMARY_IRQ));
                ide.log.hex("read sector " + sector + " status", ide.ideIn(REG_STATUS));
                for (int i = 0; i < 128; i++) {
                    if (sector == 0) {
                        data.putShort((short) ide.qts.inw(IDE_BASE)).putShort((short) ide.qts.inw(IDE_BASE));
                    } else {
                        data.putInt(ide.qts.inl(IDE_BASE));
                    }
                }
            }
            ide.waitNotBusy();
            ide.recordTaskFile("after PIO read");
            ide.log.bytes("PIO read data", data.array());

            pioCommand(ide, 0x30, 9, 2); // WRITE SECTORS
            for (int sector = 0; sector < 2; sector++) {
                ide.log.hex("write sector " + sector + " alt status when idle", ide.waitNotBusy());
                ide.log.hex("write sector " + sector + " status", ide.ideIn(REG_STATUS));
                for (int i = 0; i < 128; i++) {
                    if (sector == 0) {
                        ide.qts.outw(IDE_BASE, 0x1100 + i);
                        ide.qts.outw(IDE_BASE, 0x2200 + i);
                    } else {
                        ide.qts.outl(IDE_BASE, 0x33445566 + i);
                    }
                }
            }
            ide.waitNotBusy();
            ide.recordTaskFile("after PIO write");

            pioCommand(ide, 0x20, 0xffffff, 1);
            ide.waitNotBusy();
            ide.recordTaskFile("PIO read past the end");
            ide.ideOut(REG_COMMAND, 0xfe); // no such command
            ide.waitNotBusy();
            ide.recordTaskFile("unknown command");
        });
    }

    private static void pioCommand(IdeDriver ide, int command, int lba, int sectors) {
        ide.ideOut(REG_DEVICE, LBA);
        ide.ideOut(REG_NSECTORS, sectors);
        ide.ideOut(REG_LBA_LOW, lba);
        ide.ideOut(REG_LBA_MIDDLE, lba >> 8);
        ide.ideOut(REG_LBA_HIGH, lba >> 16);
        ide.ideOut(REG_COMMAND, command);
    }
}
