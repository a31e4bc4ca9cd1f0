package io.guestdma.conformance;

import static io.guestdma.conformance.AtapiDriver.cdb;
import static io.guestdma.conformance.AtapiDriver.read10;
import static io.guestdma.conformance.AtapiDriver.read12;
import static io.guestdma.conformance.IdeDriver.*;

import io.guestdma.conformance.Conformance.Image;
import io.guestdma.conformance.Conformance.Scenario;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The ATAPI CD-ROM ({@code -drive ...,media=cdrom}) replayed on QEMU 7.2 and on our machine:
 * signatures and IDENTIFY PACKET DEVICE, the packet protocol with its byte count limit and DRQ
 * blocks, the MMC commands QEMU answers, sense data for every guest mistake, and READ(10)/(12) by
 * PIO (small and large) and by DMA. Every interrupt, status, error, interrupt reason, byte count
 * and data byte must be the same.
 */
class AtapiConformanceTest {
    private static final long MiB = 1 << 20;
    /** 4 MiB: 2048 CD sectors, the first 1 MiB patterned so reads find data. */
    static final Image DISC = Image.patterned(4 * MiB, MiB, 21);
    static final String CDROM = ",media=cdrom";
    private static final long BUF = 0x200000;

    private static Target qemu;

    @BeforeAll
    static void requireQemu() {
        qemu = QemuTarget.require();
    }

    private static void check(String name, Scenario scenario) throws Exception {
        Conformance.assertSame(qemu, Targets.ours(), DISC, CDROM, name, scenario);
    }

    @Test
    void signatureAndIdentify() throws Exception {
        check("atapi identify", ide -> {
            ide.setUp();
            ide.recordTaskFile("power-on");
            ide.ideOut(REG_DEVICE, 0);
            ide.ideOut(REG_COMMAND, CMD_IDENTIFY);
            ide.recordTaskFile("IDENTIFY DEVICE");
            ide.ideOut(REG_COMMAND, 0x20); // READ SECTORS
            ide.recordTaskFile("READ SECTORS");
            ide.ideOut(REG_COMMAND, 0xc8); // READ DMA: not for packet devices
            ide.recordTaskFile("READ DMA");
            ide.ideOut(REG_COMMAND, AtapiDriver.CMD_IDENTIFY_PACKET);
            ide.log.flag("irq after IDENTIFY PACKET", ide.qts.irq(IDE_PRIMARY_IRQ));
            ide.log.hex("status", ide.ideIn(REG_STATUS));
            ByteBuffer data = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < 256; i++) {
                data.putShort((short) ide.qts.inw(IDE_BASE + REG_DATA));
            }
            ide.log.hex("status after data", ide.ideIn(REG_STATUS));
            data.flip();
            for (int word = 0; word < 256; word++) {
                ide.log.hex("identify packet word " + word, data.getShort() & 0xffff);
            }
            ide.ideOut(REG_COMMAND, CMD_FLUSH_CACHE);
            ide.log.hex("FLUSH CACHE done", ide.waitNotBusy()); // QEMU flushes asynchronously
            ide.recordTaskFile("FLUSH CACHE");
            ide.ideOut(REG_COMMAND, 0x90); // EXECUTE DEVICE DIAGNOSTIC
            ide.recordTaskFile("EXECUTE DEVICE DIAGNOSTIC");
            ide.ideOut(REG_COMMAND, AtapiDriver.CMD_DEVICE_RESET);
            ide.recordTaskFile("DEVICE RESET");
            ide.qts.outb(IDE_CONTROL, 0x04);
            ide.qts.outb(IDE_CONTROL, 0x00);
            ide.log.hex("soft reset done", ide.waitNotBusy());
            ide.recordTaskFile("soft reset");
        });
    }

    @Test
    void globalsReachIdentifyAndInquiry() throws Exception {
        Conformance.assertSame(qemu, Targets.oursDefault(), DISC, CDROM,
                java.util.List.of("-global", "ide-cd.serial=cd42", "-global", "ide-cd.model=guestdma cd",
                        "-global", "ide-cd.ver=9.9"),
                "atapi -global", ide -> {
                    ide.setUp();
                    ide.ideOut(REG_DEVICE, 0);
                    ide.ideOut(REG_COMMAND, AtapiDriver.CMD_IDENTIFY_PACKET);
                    for (int i = 0; i < 256; i++) {
                        ide.log.hex("identify packet word " + i, ide.qts.inw(IDE_BASE + REG_DATA));
                    }
                    AtapiDriver cd = new AtapiDriver(ide);
                    cd.pio("INQUIRY", cdb(0x12, 0, 0, 0, 36), 36);
                    cd.pio("INQUIRY VPD 0x83", cdb(0x12, 1, 0x83, 0, 255), 0x200);
                });
    }

    @Test
    void tocAndDiscInformation() throws Exception {
        check("atapi TOC", ide -> {
            ide.setUp();
            AtapiDriver cd = new AtapiDriver(ide);
            for (int msf : new int[] {0, 2}) {
                for (int format : new int[] {0, 1, 2, 3}) {
                    cd.pio("READ TOC msf " + msf + " format " + format,
                            cdb(0x43, msf, 0, 0, 0, 0, 0, 0, 0xff, format << 6), 0x200);
                }
                cd.pio("READ TOC msf " + msf + " lead-out only", cdb(0x43, msf, 0, 0, 0, 0, 0xaa, 0, 0xff), 0x200);
                cd.pio("READ TOC msf " + msf + " track 2", cdb(0x43, msf, 0, 0, 0, 0, 2, 0, 0xff), 0x200);
                cd.pio("READ TOC msf " + msf + " 6 bytes", cdb(0x43, msf, 0, 0, 0, 0, 0, 0, 6), 0x200);
            }
            cd.pio("READ DISC INFORMATION", cdb(0x51, 0, 0, 0, 0, 0, 0, 0, 0xff), 0x200);
            cd.pio("READ DISC INFORMATION type 1", cdb(0x51, 1, 0, 0, 0, 0, 0, 0, 0xff), 0x200);
            cd.pio("eject", cdb(0x1b, 0, 0, 0, 0x02), 0);
            cd.pio("READ TOC tray open", cdb(0x43, 0, 0, 0, 0, 0, 0, 0, 0xff), 0x200);
        });
    }

    /** READ DVD STRUCTURE and GET CONFIGURATION on a CD-sized and a DVD-sized (sparse) disc. */
    @Test
    void dvdStructure() throws Exception {
        Scenario scenario = ide -> {
            ide.setUp();
            AtapiDriver cd = new AtapiDriver(ide);
            cd.pio("GET CONFIGURATION", cdb(0x46, 0, 0, 0, 0, 0, 0, 0, 32), 64);
            cd.pio("READ CAPACITY", cdb(0x25), 8);
            for (int format : new int[] {0x00, 0x01, 0x03, 0x04, 0x30, 0x80, 0xff}) {
                cd.pio("READ DVD STRUCTURE format " + format,
                        cdb(0xad, 0, 0, 0, 0, 0, 0, format, 0x10, 0x04), 0xfffe);
            }
            cd.pio("READ DVD STRUCTURE 6 bytes, layer 1", cdb(0xad, 0, 0, 0, 0, 0, 1, 0, 0, 6), 0xfffe);
            cd.pio("READ DVD STRUCTURE 8 bytes, layer 1", cdb(0xad, 0, 0, 0, 0, 0, 1, 0, 0, 8), 0xfffe);
            cd.pio("READ DVD STRUCTURE media 1", cdb(0xad, 1, 0, 0, 0, 0, 0, 0xff, 0, 0x20), 0xfffe);
            cd.requestSense("after READ DVD STRUCTURE");
        };
        check("atapi DVD structure on a CD", scenario);
        Conformance.assertSame(qemu, Targets.oursDefault(), Image.patterned(800 * MiB, MiB, 23), CDROM,
                "atapi DVD structure on a DVD", scenario);
    }

    @Test
    void commandsAndSense() throws Exception {
        check("atapi commands", ide -> {
            ide.setUp();
            AtapiDriver cd = new AtapiDriver(ide);
            cd.pio("TEST UNIT READY", cdb(0x00), 0);
            cd.requestSense("after TUR");
            cd.pio("INQUIRY 36", cdb(0x12, 0, 0, 0, 36), 36);
            cd.pio("INQUIRY 5", cdb(0x12, 0, 0, 0, 5), 0xffff);
            cd.pio("INQUIRY 255 bcl 7", cdb(0x12, 0, 0, 0, 255), 7);
            cd.pio("INQUIRY VPD 0", cdb(0x12, 1, 0, 0, 255), 0xfffe);
            cd.pio("INQUIRY VPD 0x83", cdb(0x12, 1, 0x83, 0, 255), 0x200);
            cd.pio("INQUIRY VPD 0x83 short", cdb(0x12, 1, 0x83, 0, 20), 0x200);
            cd.pio("INQUIRY VPD 0x80", cdb(0x12, 1, 0x80, 0, 255), 0x200);
            cd.requestSense("after VPD 0x80");
            cd.pio("READ CAPACITY", cdb(0x25), 8);
            cd.pio("MODE SENSE error recovery", cdb(0x5a, 0, 0x01, 0, 0, 0, 0, 0, 64), 64);
            cd.pio("MODE SENSE capabilities", cdb(0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 64), 64);
            cd.pio("MODE SENSE capabilities 10", cdb(0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 10), 64);
            cd.pio("MODE SENSE all pages", cdb(0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 64), 64);
            cd.requestSense("after MODE SENSE 0x3f");
            cd.pio("MODE SENSE changeable", cdb(0x5a, 0, 0x41, 0, 0, 0, 0, 0, 64), 64);
            cd.pio("MODE SENSE saved", cdb(0x5a, 0, 0xc1, 0, 0, 0, 0, 0, 64), 64);
            cd.requestSense("after MODE SENSE saved");
            cd.pio("GET CONFIGURATION", cdb(0x46, 0, 0, 0, 0, 0, 0, 0, 64), 64);
            cd.pio("GET CONFIGURATION 8", cdb(0x46, 0, 0, 0, 0, 0, 0, 0, 8), 64);
            cd.pio("GET CONFIGURATION feature 1", cdb(0x46, 0, 0, 1, 0, 0, 0, 0, 64), 64);
            cd.pio("GESN media", cdb(0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8), 8);
            cd.pio("GESN other class", cdb(0x4a, 1, 0, 0, 0x02, 0, 0, 0, 8), 8);
            cd.pio("GESN asynchronous", cdb(0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8), 8);
            cd.pio("MECHANISM STATUS", cdb(0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8), 8);
            cd.pio("SET SPEED", cdb(0xbb), 0);
            cd.pio("SEEK past the end", cdb(0x2b, 0, 0, 0, 0x10, 0), 0);
            cd.requestSense("after SEEK");
            cd.pio("unknown opcode", cdb(0xff), 0x100);
            cd.requestSense("after unknown opcode");
            cd.pio("INQUIRY with byte count 0", cdb(0x12, 0, 0, 0, 36), 0);
            cd.pio("REQUEST SENSE 0 bytes", cdb(0x03, 0, 0, 0, 0), 18);
            ide.ideOut(REG_DEVICE, 0);
            ide.ideOut(REG_FEATURE, 2); // overlapped
            ide.ideOut(REG_COMMAND, AtapiDriver.CMD_PACKET);
            ide.recordTaskFile("overlapped PACKET");
        });
    }

    /** READ(10)/(12) by PIO, small and large, with byte count limits even, odd, 0 and 0xffff. */
    static final Scenario PIO_READS = ide -> {
        ide.setUp();
        AtapiDriver cd = new AtapiDriver(ide);
        cd.pio("READ(10) 1 sector", read10(0, 1), 2048);
        cd.pio("READ(10) 5 sectors bcl 0xffff", read10(3, 5), 0xffff);
        cd.pio("READ(10) 2 sectors bcl 1000", read10(100, 2), 1000);
        cd.pio("READ(10) 1 sector bcl 1001", read10(7, 1), 1001);
        cd.pio("READ(10) 2 sectors bcl 4096", read10(200, 2), 4096);
        cd.pio("READ(12) 3 sectors bcl 0x8000", read12(400, 3), 0x8000);
        cd.pio("READ(10) 0 sectors", read10(5, 0), 2048);
        cd.pio("READ(10) bcl 0", read10(5, 1), 0);
        cd.pio("READ(10) last sector", read10(2047, 1), 2048);
        cd.pio("READ(10) past the end", read10(2047, 2), 2048);
        cd.requestSense("after read past the end");
        cd.pio("READ(10) far past the end", read10(0xffffff00L, 1), 2048);
        cd.pio("READ(12) wrapping count", read12(1, 0xffffffffL), 2048);
        cd.requestSense("after wrapping read");
    };

    /** READ by DMA: one PRD, several, too few (underflow), too many; a reply by DMA; an error. */
    static final Scenario DMA_READS = ide -> {
        ide.setUp();
        AtapiDriver cd = new AtapiDriver(ide);
        cd.dma("READ(10) 4 sectors", read10(10, 4), new int[][] {{(int) BUF, 8192 | PRDT_EOT}});
        ide.recordRam("4 sectors", BUF, 8192);
        cd.dma("READ(12) 2 sectors in 3 PRDs", read12(500, 2),
                new int[][] {{(int) BUF, 1024}, {(int) BUF + 0x10000, 2048}, {(int) BUF + 0x20000, 1024 | PRDT_EOT}});
        ide.recordRam("piece 1", BUF, 1024);
        ide.recordRam("piece 2", BUF + 0x10000, 2048);
        ide.recordRam("piece 3", BUF + 0x20000, 1024);
        cd.dma("READ(10) 2 sectors, PRDs for 1", read10(20, 2), new int[][] {{(int) BUF, 2048 | PRDT_EOT}});
        ide.recordRam("underflow", BUF, 4096);
        ide.qts.outb(IDE_CONTROL, 0x04);
        ide.qts.outb(IDE_CONTROL, 0x00);
        ide.log.hex("soft reset done", ide.waitNotBusy());
        ide.recordTaskFile("soft reset after underflow");
        cd.dma("READ(10) 1 sector, PRDs for 3", read10(30, 1), new int[][] {{(int) BUF, 6144 | PRDT_EOT}});
        ide.recordRam("overflow", BUF, 2048);
        cd.dma("INQUIRY by DMA", cdb(0x12, 0, 0, 0, 36), new int[][] {{(int) BUF, 512 | PRDT_EOT}});
        ide.recordRam("inquiry", BUF, 36);
        cd.dma("READ(10) past the end by DMA", read10(2048, 1), new int[][] {{(int) BUF, 2048 | PRDT_EOT}});
        cd.requestSense("after DMA past the end");
    };

    /** READ CD (0xbe) of {@code count} sectors from {@code lba}, with byte 9 selecting what to send. */
    static byte[] readCd(long lba, int count, int select) {
        return cdb(0xbe, 0, (int) (lba >>> 24), (int) (lba >>> 16), (int) (lba >>> 8), (int) lba,
                count >>> 16, count >>> 8, count, select);
    }

    /** READ CD by PIO and DMA: user data, raw 2352-byte sectors, nothing, bad selections, range. */
    static final Scenario READ_CD = ide -> {
        ide.setUp();
        AtapiDriver cd = new AtapiDriver(ide);
        cd.pio("READ CD user data 2 sectors", readCd(10, 2, 0x10), 0xfffe);
        cd.pio("READ CD raw 1 sector", readCd(11, 1, 0xf8), 0xffff);
        cd.pio("READ CD raw 3 sectors bcl 5000", readCd(1000, 3, 0xf8), 5000);
        cd.pio("READ CD raw at lba 4500", readCd(2047, 1, 0xf8), 4096);
        cd.pio("READ CD nothing selected", readCd(12, 1, 0x00), 2048);
        cd.pio("READ CD 0 sectors", readCd(12, 0, 0xf8), 2048);
        cd.pio("READ CD headers only", readCd(12, 1, 0x20), 2048);
        cd.requestSense("after READ CD headers only");
        cd.pio("READ CD past the end", readCd(2047, 2, 0xf8), 2048);
        cd.requestSense("after READ CD past the end");
        cd.dma("READ CD raw 2 sectors by DMA", readCd(20, 2, 0xf8),
                new int[][] {{(int) BUF, 3000}, {(int) BUF + 0x10000, 1704 | PRDT_EOT}});
        ide.recordRam("raw by DMA, first piece", BUF, 3000);
        ide.recordRam("raw by DMA, second piece", BUF + 0x10000, 1704);
        cd.dma("READ CD user data by DMA", readCd(30, 2, 0x10), new int[][] {{(int) BUF, 4096 | PRDT_EOT}});
        ide.recordRam("user data by DMA", BUF, 4096);
    };

    /**
     * A PRD table that ends short of the transfer with a tail that is not a whole 512-byte unit:
     * one DMA read per machine (QEMU 7.2 keeps the drive busy afterwards, even across a soft
     * reset), with everything the guest can see after it.
     */
    static Scenario shortPrdTail(String label, byte[] packet, int[][] prdt) {
        return ide -> {
            ide.setUp();
            AtapiDriver cd = new AtapiDriver(ide);
            ide.qts.memset(BUF, 0x8000, 0xee);
            cd.dma(label, packet, prdt);
            for (int at : new int[] {0, 500, 504, 512, 1000, 1016, 1024, 1500, 2040, 2048, 4096}) {
                ide.log.bytes(label + " RAM+" + at, ide.qts.memread(BUF + at, 8));
            }
            ide.recordRam(label + " RAM", BUF, 0x8000);
            ide.log.hex(label + " alt status later", ide.qts.inb(IDE_CONTROL));
        };
    }

    @Test
    void pioReads() throws Exception {
        check("atapi PIO reads", PIO_READS);
    }

    @Test
    void dmaReads() throws Exception {
        check("atapi DMA", DMA_READS);
    }

    @Test
    void readCd() throws Exception {
        check("READ CD", READ_CD);
        check("READ CD raw by DMA, PRDs end mid-sector", shortPrdTail("raw 3000 of 4704", readCd(40, 2, 0xf8),
                new int[][] {{(int) BUF, 3000 | PRDT_EOT}}));
    }

    @Test
    void shortPrdTails() throws Exception {
        check("PRD 1000 bytes for 1 sector", shortPrdTail("1000", read10(40, 1),
                new int[][] {{(int) BUF, 1000 | PRDT_EOT}}));
        check("PRDs 2048+700 for 2 sectors", shortPrdTail("2048+700", read10(50, 2),
                new int[][] {{(int) BUF, 2048}, {(int) BUF + 0x4000, 700 | PRDT_EOT}}));
        check("PRDs 512+300 for 1 sector", shortPrdTail("512+300", read10(60, 1),
                new int[][] {{(int) BUF, 512}, {(int) BUF + 0x1000, 300 | PRDT_EOT}}));
        check("PRD 300 for 1 sector", shortPrdTail("300", read10(60, 1),
                new int[][] {{(int) BUF, 300 | PRDT_EOT}}));
    }

    @Test
    void trayAndLocking() throws Exception {
        check("atapi tray", ide -> {
            ide.setUp();
            AtapiDriver cd = new AtapiDriver(ide);
            cd.pio("GESN before", cdb(0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8), 8);
            cd.pio("eject", cdb(0x1b, 0, 0, 0, 0x02), 0);
            cd.pio("TUR with the tray open", cdb(0x00), 0);
            cd.requestSense("tray open");
            cd.pio("READ with the tray open", read10(0, 1), 2048);
            cd.pio("READ CAPACITY with the tray open", cdb(0x25), 8);
            cd.pio("GESN tray open", cdb(0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8), 8);
            cd.pio("GET CONFIGURATION tray open", cdb(0x46, 0, 0, 0, 0, 0, 0, 0, 32), 64);
            cd.pio("load", cdb(0x1b, 0, 0, 0, 0x03), 0);
            cd.pio("TUR loaded", cdb(0x00), 0);
            cd.pio("prevent removal", cdb(0x1e, 0, 0, 0, 1), 0);
            cd.pio("MODE SENSE capabilities locked", cdb(0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 30), 64);
            cd.pio("eject while locked", cdb(0x1b, 0, 0, 0, 0x02), 0);
            cd.requestSense("eject while locked");
            cd.pio("power condition", cdb(0x1b, 0, 0, 0, 0x12), 0);
            cd.pio("allow removal", cdb(0x1e, 0, 0, 0, 0), 0);
            cd.pio("eject again", cdb(0x1b, 0, 0, 0, 0x02), 0);
            cd.pio("TUR ejected", cdb(0x00), 0);
        });
    }
}
