package io.guestdma.conformance;

import static io.guestdma.conformance.IdeDriver.BSY;
import static io.guestdma.conformance.IdeDriver.CMD_FLUSH_CACHE;
import static io.guestdma.conformance.IdeDriver.CMD_WRITE_DMA;
import static io.guestdma.conformance.IdeDriver.DEV;
import static io.guestdma.conformance.IdeDriver.IDE_PRIMARY_IRQ;
import static io.guestdma.conformance.IdeDriver.PRDT_EOT;
import static io.guestdma.conformance.IdeDriver.REG_COMMAND;
import static io.guestdma.conformance.IdeDriver.REG_DEVICE;
import static io.guestdma.conformance.IdeDriver.REG_ERROR;
import static io.guestdma.conformance.IdeDriver.REG_LBA_HIGH;
import static io.guestdma.conformance.IdeDriver.REG_LBA_MIDDLE;
import static io.guestdma.conformance.IdeDriver.REG_STATUS;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.guestdma.conformance.LibqtestLaunchTest.Exit;
import io.guestdma.conformance.LibqtestLaunchTest.Launched;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * QEMU's tests/qtest/ide-test.c, case by case in our own code, run on bin/qtest-machine launched
 * exactly as libqtest launches QEMU (both Unix sockets, QMP handshake, SIGTERM at the end with
 * status 0) and on QEMU 7.2 launched the same way (with {@code -nodefaults} and a halting BIOS,
 * which its Debian build needs in place of the qtest accelerator). Each case logs every register
 * it reads and every QMP message (without timestamps); the logs and the final images must be the
 * same. The flush cases use ide-test's command lines: blkdebug with {@code rerror/werror=stop}
 * (STOP, BLOCK_IO_ERROR, {@code cont} retrying the flush), and a {@code qemu-io} breakpoint that
 * holds a flush until {@code resume}; the CD-ROM cases use {@code -drive if=none} with
 * {@code -device ide-cd}. ide-test's waits call {@code clock_set}, which QEMU's Debian build
 * refuses without the qtest accelerator; the waits here poll without it.
 */
class IdeTestUnderLibqtestTest {
    private static final long MiB = 1 << 20;
    /** ide-test's BYTE_COUNT_LIMIT for CD-ROM PIO. */
    private static final int BYTE_COUNT_LIMIT = 5120;
    private static final long BUF = 0x200000;

    /** One case: the guest side on the qtest socket and the monitor on the QMP socket. */
    @FunctionalInterface
    interface Case {
        void run(IdeDriver ide, Qmp qmp) throws Exception;
    }

    /** The QMP side of a case: commands and events go into the case's log. */
    record Qmp(Launched m, Observations log) {
        /** Sends a command and logs every message up to its reply. */
        JsonNode execute(String json) throws Exception {
            m.send(json);
            while (true) {
                JsonNode message = next();
                if (message.has("return") || message.has("error")) {
                    return message;
                }
            }
        }

        /** Logs messages until the named event has come. */
        void awaitEvent(String name) throws Exception {
            while (!next().path("event").asText().equals(name)) {
                // logged by next()
            }
        }

        /** human-monitor-command, as libqtest's qtest_hmp. */
        String hmp(String commandLine) throws Exception {
            ObjectNode request = LibqtestLaunchTest.JSON.createObjectNode().put("execute", "human-monitor-command");
            request.putObject("arguments").put("command-line", commandLine);
            return execute(request.toString()).path("return").asText();
        }

        private JsonNode next() throws Exception {
            JsonNode message = m.read();
            if (message.isObject()) {
                ((ObjectNode) message).remove("timestamp");
                JsonNode data = message.get("data");
                // QEMU names a -drive's node itself ("#block123"), differently in every run
                if (data instanceof ObjectNode d && d.has("node-name") && d.get("node-name").asText().startsWith("#")) {
                    d.put("node-name", "#auto");
                }
            }
            log.text("qmp", message);
            return message;
        }
    }

    /** Runs a case on one launched machine; returns its log. */
    private static List<String> run(boolean ours, List<String> args, Case c) throws Exception {
        List<String> binary = ours ? List.of(ProcessTarget.findScript().toString()) : List.of(QemuTarget.BINARY);
        List<String> extra = new ArrayList<>(ours ? List.of("-m", "64M")
                : List.of("-nodefaults", "-bios", QemuTarget.haltBios().toString(), "-m", "64M"));
        extra.addAll(args);
        Launched m = LibqtestLaunchTest.launch(binary, extra, ours);
        Observations log = new Observations();
        String name = ours ? "ours" : "qemu";
        try (QtestClient qts = new QtestClient(name, Channels.newInputStream(m.qtest()),
                Channels.newOutputStream(m.qtest()), () -> { })) {
            Qmp qmp = new Qmp(m, log);
            m.read(); // the greeting, whose version differs
            qmp.execute("{\"execute\": \"qmp_capabilities\"}");
            c.run(new IdeDriver(qts, log), qmp);
        } finally {
            Exit exit = m.terminate();
            if (ours) {
                assertThat(exit.status()).as("our exit status on SIGTERM").isZero();
                assertThat(exit.stderr()).as("our stderr").isEmpty();
            }
        }
        return log.lines();
    }

    /** Runs a case on QEMU and on ours, each on a fresh copy of each image, and compares. */
    static void assertSame(String label, List<String> argsTemplate, Conformance.Image image, String config,
                                   Case c) throws Exception {
        QemuTarget.require();
        Path dir = Files.createTempDirectory("ide-test");
        try {
            List<List<String>> logs = new ArrayList<>();
            List<Path> images = new ArrayList<>();
            for (boolean ours : new boolean[] {false, true}) {
                Path img = dir.resolve((ours ? "ours" : "qemu") + ".img");
                Path img2 = dir.resolve((ours ? "ours" : "qemu") + "-2.img");
                image.create(img);
                image.create(img2);
                Path cfg = Files.writeString(dir.resolve("blkdebug.conf"), config);
                List<String> args = argsTemplate.stream().map(a -> a.replace("IMG2", img2.toString())
                        .replace("IMG", img.toString()).replace("CFG", cfg.toString())).toList();
                logs.add(run(ours, args, c));
                images.add(img);
            }
            Conformance.assertSameLog(new Conformance.Run("qemu", logs.get(0), images.get(0)),
                    new Conformance.Run("bin/qtest-machine under libqtest", logs.get(1), images.get(1)), label);
            Conformance.assertSameDisk(new Conformance.Run("qemu", logs.get(0), images.get(0)),
                    new Conformance.Run("bin/qtest-machine under libqtest", logs.get(1), images.get(1)), label);
        } finally {
            Conformance.deleteTree(dir);
        }
    }

    /** ide-test's make_dirty: a DMA write of sector 1, so that a flush has something to do. */
    private static void makeDirty(IdeDriver ide) {
        byte[] data = new byte[512];
        Arrays.fill(data, (byte) 0x5a);
        ide.qts.memwrite(BUF, data);
        ide.sendDmaRequest("make_dirty", CMD_WRITE_DMA, 1, 1, new int[][] {{(int) BUF, 512 | PRDT_EOT}});
    }

    /** FLUSH CACHE on device 0, and the status while it is in flight. */
    private static void startFlush(IdeDriver ide) {
        ide.ideOut(REG_DEVICE, 0);
        ide.ideOut(REG_COMMAND, CMD_FLUSH_CACHE);
        ide.log.hex("status in flight", ide.ideIn(REG_STATUS));
    }

    /** The end of ide-test's flush cases: device register, then status once BSY is clear. */
    private static void finishFlush(IdeDriver ide) {
        ide.log.hex("device", ide.ideIn(REG_DEVICE) & DEV);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        int status;
        while (((status = ide.ideIn(REG_STATUS)) & BSY) != 0) {
            assertThat(System.nanoTime()).as("BSY clears").isLessThan(deadline);
        }
        ide.log.hex("status", status);
        ide.log.flag("irq", ide.qts.irq(IDE_PRIMARY_IRQ));
    }

    @Test
    void flushRetryPci() throws Exception {
        assertSame("/ide/flush/retry_pci", List.of("-drive",
                "file=blkdebug:CFG:IMG,if=ide,cache=writeback,format=raw,rerror=stop,werror=stop"),
                Conformance.Image.blank(64 * MiB), io.guestdma.block.testing.BlkdebugScripts.RETRY_FLUSH,
                (ide, qmp) -> {
                    ide.setUp();
                    makeDirty(ide);
                    startFlush(ide);
                    qmp.awaitEvent("STOP");
                    qmp.execute("{\"execute\": \"query-status\"}");
                    ide.log.hex("status while stopped", ide.ideIn(REG_STATUS));
                    qmp.execute("{\"execute\": \"cont\"}");
                    finishFlush(ide);
                    qmp.execute("{\"execute\": \"query-status\"}");
                });
    }

    @Test
    void flushHeldAtABreakpoint() throws Exception {
        assertSame("/ide/flush", List.of("-drive", "file=blkdebug::IMG,if=ide,cache=writeback,format=raw"),
                Conformance.Image.blank(64 * MiB), "", (ide, qmp) -> {
                    ide.setUp();
                    makeDirty(ide);
                    ide.log.text("break", qmp.hmp("qemu-io ide0-hd0 \"break flush_to_os A\""));
                    startFlush(ide);
                    ide.log.hex("status still in flight", ide.ideIn(REG_STATUS));
                    ide.log.text("resume", qmp.hmp("qemu-io ide0-hd0 \"resume A\""));
                    finishFlush(ide);
                    ide.log.text("resume again", qmp.hmp("qemu-io ide0-hd0 \"resume A\""));
                    ide.log.text("unknown command", qmp.hmp("no-such-command"));
                });
    }

    @Test
    void flushWithoutDevicesAndOnAnEmptyCdromDrive() throws Exception {
        // QEMU completes these flushes in a bottom half: whether the status read right after the
        // command still shows BSY depends on its main loop's timing, so only the end is compared
        assertSame("/ide/flush/nodev", List.of(), Conformance.Image.blank(MiB), "", (ide, qmp) -> {
            ide.setUp();
            ide.ideOut(REG_DEVICE, 0);
            ide.ideOut(REG_COMMAND, CMD_FLUSH_CACHE);
            ide.log.hex("status", waitClear(ide, BSY));
            qmp.execute("{\"execute\": \"query-status\"}");
        });
        assertSame("/ide/flush/empty_drive", List.of("-device", "ide-cd,bus=ide.0"), Conformance.Image.blank(MiB), "",
                (ide, qmp) -> {
                    ide.setUp();
                    ide.ideOut(REG_DEVICE, 0);
                    ide.ideOut(REG_COMMAND, CMD_FLUSH_CACHE);
                    ide.log.hex("status", waitClear(ide, BSY));
                    ide.log.hex("error", ide.ideIn(REG_ERROR));
                    qmp.execute("{\"execute\": \"query-status\"}");
                });
    }

    @Test
    void diagnosticOnBlockdevDisks() throws Exception {
        assertSame("/ide/diagnostic", List.of("-blockdev", "driver=file,node-name=hda,filename=IMG",
                "-blockdev", "driver=file,node-name=hdb,filename=IMG2",
                "-device", "ide-hd,drive=hda,bus=ide.0,unit=0", "-device", "ide-hd,drive=hdb,bus=ide.0,unit=1"),
                Conformance.Image.blank(64 * MiB), "", (ide, qmp) -> {
                    ide.setUp();
                    ide.ideOut(REG_DEVICE, DEV);
                    ide.log.hex("device before", ide.ideIn(REG_DEVICE));
                    ide.ideOut(REG_COMMAND, 0x90);
                    ide.log.hex("device after DIAGNOSE", ide.ideIn(REG_DEVICE));
                    ide.log.hex("status", ide.ideIn(REG_STATUS));
                });
    }

    /** The CD-ROM command line of ide-test's cdrom cases. */
    private static final List<String> CDROM = List.of(
            "-drive", "if=none,file=IMG,media=cdrom,format=raw,id=sr0,index=0", "-device", "ide-cd,drive=sr0,bus=ide.0");

    /**
     * ide-test's cdrom_pio_impl: PACKET with a 5120-byte limit, READ(10) of nblocks from block 0,
     * then per DRQ block: wait for the interrupt, wait for BSY to clear (reading status), read the
     * block; then the completion interrupt and the final status.
     */
    private static Case cdromPio(int nblocks) {
        return (ide, qmp) -> {
            ide.setUp();
            ide.ideOut(REG_DEVICE, 0);
            ide.ideOut(REG_LBA_MIDDLE, BYTE_COUNT_LIMIT & 0xff);
            ide.ideOut(REG_LBA_HIGH, BYTE_COUNT_LIMIT >> 8);
            ide.ideOut(REG_COMMAND, AtapiDriver.CMD_PACKET);
            ide.log.hex("HP1 status", waitClear(ide, BSY));
            byte[] packet = AtapiDriver.read10(0, nblocks);
            for (int i = 0; i < packet.length; i += 2) {
                ide.qts.outw(IdeDriver.IDE_BASE, (packet[i] & 0xff) | (packet[i + 1] & 0xff) << 8);
            }
            int words = nblocks * 2048 / 2;
            int limit = BYTE_COUNT_LIMIT & ~1;
            byte[] rx = new byte[nblocks * 2048];
            for (int block = 0; block * (limit / 2) < words; block++) {
                ide.log.flag("HP3 irq", waitIrq(ide));
                ide.log.hex("HP2 status", waitClear(ide, BSY));
                int offset = block * (limit / 2);
                for (int j = 0; j < Math.min(limit / 2, words - offset); j++) {
                    int w = ide.qts.inw(IdeDriver.IDE_BASE);
                    rx[2 * (offset + j)] = (byte) w;
                    rx[2 * (offset + j) + 1] = (byte) (w >> 8);
                }
            }
            ide.log.flag("completion irq", waitIrq(ide));
            ide.log.hex("final status", waitClear(ide, IdeDriver.DRQ));
            ide.log.bytes("data", rx);
        };
    }

    private static int waitClear(IdeDriver ide, int flag) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        int data;
        while (((data = ide.ideIn(REG_STATUS)) & flag) != 0) {
            assertThat(System.nanoTime()).as("status bit 0x%x clears", flag).isLessThan(deadline);
        }
        return data;
    }

    /** ide-test's ide_wait_intr; libqtest's qtest_get_irq reads port 0 first to catch up on IRQ messages. */
    private static boolean waitIrq(IdeDriver ide) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (ide.qts.inb(0) >= 0 && !ide.qts.irq(IDE_PRIMARY_IRQ)) {
            assertThat(System.nanoTime()).as("the interrupt comes").isLessThan(deadline);
        }
        return true;
    }

    @Test
    void cdromPioSmallAndLarge() throws Exception {
        assertSame("/ide/cdrom/pio", CDROM, AtapiConformanceTest.DISC, "", cdromPio(1));
        assertSame("/ide/cdrom/pio_large", CDROM, AtapiConformanceTest.DISC, "", cdromPio(BYTE_COUNT_LIMIT * 4 / 2048));
    }

    @Test
    void cdromDma() throws Exception {
        assertSame("/ide/cdrom/dma", CDROM, AtapiConformanceTest.DISC, "", (ide, qmp) -> {
            ide.setUp();
            new AtapiDriver(ide).dma("READ(10) 1 block", AtapiDriver.read10(0, 1),
                    new int[][] {{(int) BUF, 2048 | PRDT_EOT}});
            ide.recordRam("block 0", BUF, 2048);
        });
    }
}
