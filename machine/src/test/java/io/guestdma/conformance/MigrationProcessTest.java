package io.guestdma.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import io.guestdma.block.testing.NbdServer;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Live migration between two {@code bin/qtest-machine} processes, as a user runs it: the
 * destination started with {@code -incoming unix:PATH}, the source told {@code migrate} over QMP,
 * both with the same IDE disk on shared storage (a qemu-nbd export, as a VMM would use network
 * storage). While RAM is being copied the source keeps its IDE controller reading the disk into
 * guest RAM by DMA, writing guest RAM to the disk by DMA, and the test writes RAM through qtest.
 * At the end the destination's whole RAM equals the source's (which stays stopped in
 * {@code postmigrate}), the destination runs and its disk reads give what the source wrote. The
 * machine's device sections ({@code PcMachine.deviceStates()}) travel with the stream, whatever
 * they are.
 */
class MigrationProcessTest {
    private static final int RAM_MIB = 16;
    private static final long PATTERN = 0x200000;
    private static final long READ_BUFFER = 0x400000;
    private static final int SECTORS = 64;

    private static JsonNode command(LibqtestLaunchTest.Launched m, String json, List<JsonNode> events) throws Exception {
        m.send(json);
        while (true) {
            JsonNode reply = m.read();
            if (reply.has("event")) {
                events.add(reply);
                continue;
            }
            return reply;
        }
    }

    /** One round of a test's load while the migration runs; {@code round} counts from 0. */
    private interface LoadRound {
        void run(int round) throws Exception;
    }

    /**
     * Starts the migration to {@code socket} at 8 MiB/s with a 100 ms downtime limit and runs
     * load rounds until it is active with less than 4 MiB of RAM to go (about half a second at
     * that limit), asserting that at least one round ran meanwhile. The upper 8 MiB of RAM (no
     * test's buffers or rings) are filled first: RAM left all zero goes as zero-page flags in no
     * time, and the migration was sometimes near its end before the first round.
     */
    private static void migrateUnderLoad(LibqtestLaunchTest.Launched source, QtestClient src, List<JsonNode> sourceEvents,
                                         Path socket, LoadRound load) throws Exception {
        src.memset(0x800000, 8 << 20, 0x5a);
        assertThat(command(source, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
                + "{\"max-bandwidth\": 8388608, \"downtime-limit\": 100}}", sourceEvents).has("return")).isTrue();
        assertThat(command(source, "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:" + socket + "\"}}",
                sourceEvents).has("return")).isTrue();
        int rounds = 0;
        while (true) {
            JsonNode info = command(source, "{\"execute\": \"query-migrate\"}", sourceEvents).path("return");
            assertThat(info.path("status").asText()).isIn("setup", "active");
            if (info.path("status").asText().equals("active") && info.path("ram").path("remaining").asLong() < (4 << 20)) {
                break;
            }
            load.run(rounds);
            rounds++;
        }
        assertThat(rounds).as("load rounds during the migration").isPositive();
    }

    private static JsonNode awaitEvent(LibqtestLaunchTest.Launched m, List<JsonNode> events, String name,
                                       String status) throws Exception {
        for (JsonNode e : events) {
            if (e.get("event").asText().equals(name) && (status == null || status.equals(e.path("data").path("status").asText()))) {
                return e;
            }
        }
        while (true) {
            JsonNode e = m.read();
            events.add(e);
            if (e.has("event") && e.get("event").asText().equals(name)
                    && (status == null || status.equals(e.path("data").path("status").asText()))) {
                return e;
            }
            // A failed migration sends no other MIGRATION event and the machine stays up: the
            // next read would wait for ever.
            boolean failed = e.path("event").asText().equals("MIGRATION")
                    && e.path("data").path("status").asText().equals("failed");
            assertThat(failed).as("waiting for %s %s, got %s", name, status, e).isFalse();
        }
    }

    private static QtestClient qtest(String name, LibqtestLaunchTest.Launched m) throws Exception {
        return new QtestClient(name, Channels.newInputStream(m.qtest()), Channels.newOutputStream(m.qtest()), () -> { });
    }

    /** A case on a source and a destination machine over one qemu-nbd disk, both past the QMP handshake. */
    @FunctionalInterface
    private interface PairBody {
        void run(Path socket, byte[] disk, LibqtestLaunchTest.Launched source, LibqtestLaunchTest.Launched destination,
                 QtestClient src, QtestClient dst, List<JsonNode> sourceEvents, List<JsonNode> destinationEvents)
                throws Exception;
    }

    /**
     * Runs a case on two bin/qtest-machine processes (the second waiting with {@code -incoming})
     * sharing a random 8 MiB disk through qemu-nbd; afterwards both must exit with status 0 and
     * the image must equal the case's model of it ({@code p.disk()}).
     *
     * @param devices the device options for the NBD URI of the shared disk
     */
    private static void withPair(String name, long seed, java.util.function.Function<String, List<String>> devices,
                                 PairBody body) throws Exception {
        Path dir = Files.createTempDirectory(name);
        Path image = dir.resolve("disk.img");
        byte[] disk = new byte[8 << 20];
        new Random(seed).nextBytes(disk);
        Files.write(image, disk);
        Path socket = dir.resolve("migrate.sock");
        List<String> binary = List.of(ProcessTarget.findScript().toString());
        try (NbdServer nbd = NbdServer.qemuNbd(image, dir, "shared")) {
            List<String> sourceArgs = new ArrayList<>(List.of("-m", RAM_MIB + "M"));
            sourceArgs.addAll(devices.apply(nbd.address().toString()));
            List<String> destinationArgs = new ArrayList<>(sourceArgs);
            destinationArgs.addAll(List.of("-incoming", "unix:" + socket));
            LibqtestLaunchTest.Launched source = LibqtestLaunchTest.launch(binary, sourceArgs, true);
            LibqtestLaunchTest.Launched destination = LibqtestLaunchTest.launch(binary, destinationArgs, true);
            try (QtestClient src = qtest("source", source); QtestClient dst = qtest("destination", destination)) {
                for (LibqtestLaunchTest.Launched m : List.of(source, destination)) {
                    m.read();
                    assertThat(command(m, "{\"execute\": \"qmp_capabilities\"}", new ArrayList<>()).has("return")).isTrue();
                }
                body.run(socket, disk, source, destination, src, dst, new ArrayList<>(), new ArrayList<>());
            } finally {
                assertThat(destination.terminate().status()).isZero();
                assertThat(source.terminate().status()).isZero();
            }
            assertThat(Files.readAllBytes(image)).as("the image holds every write").isEqualTo(disk);
        } finally {
            Conformance.deleteTree(dir);
        }
    }

    @Test
    void migrateWithIdeDmaLoadLeavesTheDestinationRamAndDiskEqualAndRunning() throws Exception {
        withPair("migration-process", 19, nbd -> List.of("-drive", "file=" + nbd + ",if=ide,format=raw"),
                (socket, disk, source, destination, src, dst, sourceEvents, destinationEvents) -> {
                assertThat(command(destination, "{\"execute\": \"query-status\"}", destinationEvents)
                        .path("return").path("status").asText()).isEqualTo("inmigrate");

                // Guest RAM mostly non-zero, so that pass 1 takes a while at the bandwidth limit.
                src.memset(0x100000, (RAM_MIB - 2) << 20, 0x5a);
                IdeDriver ide = new IdeDriver(src, new Observations());
                ide.setUp();
                assertThat(command(source, "{\"execute\": \"query-migrate\"}", sourceEvents).path("return").size())
                        .as("nothing before the first migration, as QEMU").isZero();
                assertThat(command(source, "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"x-bogus\": 1}}",
                        sourceEvents).path("error").path("desc").asText()).isEqualTo("Parameter 'x-bogus' is unexpected");
                // Load while the switchover is far: DMA writes to the disk, DMA reads into RAM,
                // qtest writes to RAM. It stops while more than 4 MiB remain (half a second at the limit).
                Random random = new Random(7);
                migrateUnderLoad(source, src, sourceEvents, socket, round -> {
                    byte[] pattern = new byte[SECTORS * 512];
                    random.nextBytes(pattern);
                    src.memwrite(PATTERN, pattern);
                    int sector = random.nextInt(1000);
                    int status = ide.sendDmaRequest("write", IdeDriver.CMD_WRITE_DMA, sector, SECTORS,
                            new int[][] {{(int) PATTERN, SECTORS * 512 | IdeDriver.PRDT_EOT}});
                    assertThat(status & IdeDriver.BM_INTR).isNotZero();
                    System.arraycopy(pattern, 0, disk, sector * 512, pattern.length);
                    int from = random.nextInt(2000);
                    status = ide.sendDmaRequest("read", IdeDriver.CMD_READ_DMA, from, SECTORS,
                            new int[][] {{(int) READ_BUFFER + round % 16 * 4096, SECTORS * 512 | IdeDriver.PRDT_EOT}});
                    assertThat(status & IdeDriver.BM_INTR).isNotZero();
                    src.memwrite(0x800000 + random.nextInt(1 << 20), new byte[] {(byte) random.nextInt(), 1, 2, 3});
                    // A round trip: the posted write is applied before the next look at the migration.
                    src.memread(0, 1);
                });

                JsonNode completed = awaitEvent(source, sourceEvents, "MIGRATION", "completed");
                assertThat(completed).isNotNull();
                assertThat(sourceEvents.stream().map(e -> e.get("event").asText()))
                        .contains("MIGRATION_PASS", "STOP").doesNotContain("RESUME");
                awaitEvent(destination, destinationEvents, "RESUME", null);
                JsonNode info = command(source, "{\"execute\": \"query-migrate\"}", sourceEvents).path("return");
                assertThat(info.path("status").asText()).isEqualTo("completed");
                assertThat(info.path("ram").path("total").asLong()).isGreaterThanOrEqualTo((RAM_MIB - 1L) << 20);
                assertThat(info.has("downtime")).isTrue();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                String sourceState;
                do {
                    sourceState = command(source, "{\"execute\": \"query-status\"}", sourceEvents)
                            .path("return").path("status").asText();
                } while (!sourceState.equals("postmigrate") && System.nanoTime() < deadline);
                assertThat(sourceState).isEqualTo("postmigrate");
                assertThat(command(destination, "{\"execute\": \"query-status\"}", destinationEvents)
                        .path("return").path("status").asText()).isEqualTo("running");

                for (long at = 0; at < (long) RAM_MIB << 20; at += 1 << 20) {
                    assertThat(dst.memread(at, 1 << 20)).as("RAM at 0x%x", at).isEqualTo(src.memread(at, 1 << 20));
                }

                // The destination goes on: its IDE reads what the source wrote to the shared disk.
                IdeDriver next = new IdeDriver(dst, new Observations());
                next.setUp();
                for (int sector = 0; sector < 1100; sector += SECTORS) {
                    int status = next.sendDmaRequest("verify", IdeDriver.CMD_READ_DMA, sector, SECTORS,
                            new int[][] {{(int) READ_BUFFER, SECTORS * 512 | IdeDriver.PRDT_EOT}});
                    assertThat(status & IdeDriver.BM_INTR).isNotZero();
                    assertThat(dst.memread(READ_BUFFER, SECTORS * 512)).as("sector %d", sector)
                            .isEqualTo(java.util.Arrays.copyOfRange(disk, sector * 512, (sector + SECTORS) * 512));
                }
        });
    }

    /** One virtio-blk request of 4 KiB at {@code sector}, waited for; returns the status byte. */
    private static int virtioRequest(VirtioDriver d, int type, long sector, long buffer) {
        VirtioBlkConformanceTest.header(d, type, sector);
        d.c.memset(VirtioBlkConformanceTest.STATUS, 1, 0x55);
        int before = d.usedIdx();
        d.offer(d.place(VirtioBlkConformanceTest.chain(new VirtioDriver.Buf(buffer, 4096, type == 0))));
        d.kick();
        assertThat(d.await((before + 1) & 0xffff)).as("request done").isTrue();
        return (int) d.read(VirtioBlkConformanceTest.STATUS, 1);
    }

    @Test
    void migrateWithVirtioBlkLoadLeavesTheDestinationRamAndDiskEqualAndItsQueueGoesOn() throws Exception {
        withPair("migration-process-virtio", 23, nbd -> List.of("-drive", "file=" + nbd + ",if=none,id=v0,format=raw",
                "-device", "virtio-blk-pci,drive=v0,addr=04.0"),
                (socket, disk, source, destination, src, dst, sourceEvents, destinationEvents) -> {
                src.memset(0x100000, (RAM_MIB - 2) << 20, 0x3c);
                VirtioDriver d = new VirtioDriver(src);
                d.plugIn(true);
                d.start(VirtioBlkConformanceTest.FEATURES, 16);
                // virtio-blk writes to the disk and reads into RAM while pages go out
                Random random = new Random(29);
                migrateUnderLoad(source, src, sourceEvents, socket, round -> {
                    byte[] pattern = new byte[4096];
                    random.nextBytes(pattern);
                    src.memwrite(VirtioBlkConformanceTest.DATA, pattern);
                    int sector = random.nextInt(2000) & ~7;
                    assertThat(virtioRequest(d, 1, sector, VirtioBlkConformanceTest.DATA)).isZero();
                    System.arraycopy(pattern, 0, disk, sector * 512, pattern.length);
                    assertThat(virtioRequest(d, 0, random.nextInt(4000) & ~7,
                            READ_BUFFER + round % 32 * 4096L)).isZero();
                });

                assertThat(awaitEvent(source, sourceEvents, "MIGRATION", "completed")).isNotNull();
                awaitEvent(destination, destinationEvents, "RESUME", null);
                for (long at = 0; at < (long) RAM_MIB << 20; at += 1 << 20) {
                    assertThat(dst.memread(at, 1 << 20)).as("RAM at 0x%x", at).isEqualTo(src.memread(at, 1 << 20));
                }

                // The destination's queue goes on where the source's stopped: reads see every write.
                VirtioDriver next = d.movedTo(dst);
                for (int sector = 0; sector < 2000; sector += 8 * 25) {
                    assertThat(virtioRequest(next, 0, sector, READ_BUFFER)).isZero();
                    assertThat(dst.memread(READ_BUFFER, 4096)).as("sector %d", sector)
                            .isEqualTo(java.util.Arrays.copyOfRange(disk, sector * 512, sector * 512 + 4096));
                }
                byte[] last = new byte[4096];
                random.nextBytes(last);
                dst.memwrite(VirtioBlkConformanceTest.DATA, last);
                assertThat(virtioRequest(next, 1, 4000, VirtioBlkConformanceTest.DATA)).isZero();
                System.arraycopy(last, 0, disk, 4000 * 512, last.length);
        });
    }

    @Test
    void aDestinationGivenAGarbageStreamExitsWithStatusOneAndNeverRuns() throws Exception {
        Path dir = Files.createTempDirectory("migration-refused");
        Path garbage = dir.resolve("garbage.mig");
        Files.write(garbage, "GDMIGRAT but not really a stream".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        Path stderr = dir.resolve("stderr.txt");
        try {
            Process p = new ProcessTarget().launch(List.of("-m", "16M", "-incoming", "file:" + garbage), stderr);
            assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(p.exitValue()).isEqualTo(1);
            assertThat(Files.readString(stderr)).startsWith("qtest-machine: load of migration failed: migration stream");
        } finally {
            Conformance.deleteTree(dir);
        }
    }
}
