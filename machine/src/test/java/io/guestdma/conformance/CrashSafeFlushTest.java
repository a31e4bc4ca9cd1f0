package io.guestdma.conformance;

import static io.guestdma.conformance.IdeDriver.*;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Crash safety of FLUSH CACHE: a guest writes through the real {@code bin/qtest-machine} (a child
 * JVM), issues FLUSH CACHE, and the moment the flush completes the machine is killed with SIGKILL
 * (no shutdown hook, no finally block runs). The image must hold every byte the guest had written
 * and seen acknowledged before the flush: nothing may wait in a user-space buffer once a flush is
 * acknowledged. Run for both backends and both DMA modes, with writes big enough to take several
 * chunks.
 */
class CrashSafeFlushTest {
    private static final int SECTORS = 4096; // 2 MiB image
    private static final long DATA = 0x200000; // clear of the driver's PRD table at 0x100000

    @ParameterizedTest(name = "drive options '{0}'")
    @ValueSource(strings = {"", ",backend=native", ",dma=copy", ",backend=native,dma=copy"})
    void everyAcknowledgedByteSurvivesSigkillAfterFlush(String options, @TempDir Path dir) throws Exception {
        Path image = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(SECTORS * 512L);
        }
        Path stderr = dir.resolve("stderr.txt");
        Process process = new ProcessTarget().launch(List.of("-m", "64M", "-drive",
                "file=" + image + ",if=ide,format=raw" + options), stderr);
        byte[] expected = new byte[SECTORS * 512];
        Random random = new Random(options.hashCode());
        try {
            QtestClient qts = new QtestClient("bin/qtest-machine", process.getInputStream(), process.getOutputStream(),
                    () -> { });
            IdeDriver ide = new IdeDriver(qts, new Observations());
            ide.setUp();
            // Three writes at different places, each acknowledged (INTR, status clean) before the next.
            long[][] writes = {{0, 256}, {1000, 200}, {SECTORS - 300, 300}};
            for (long[] w : writes) {
                int bytes = (int) w[1] * 512;
                byte[] data = new byte[bytes];
                random.nextBytes(data);
                qts.memwrite(DATA, data);
                int[][] prdt = new int[(bytes + 0xffff) / 0x10000][];
                for (int i = 0; i < prdt.length; i++) {
                    int n = Math.min(0x10000, bytes - i * 0x10000);
                    prdt[i] = new int[] {(int) (DATA + i * 0x10000L), (n & 0xffff) | (i == prdt.length - 1 ? PRDT_EOT : 0)};
                }
                int cmd = w[1] > 256 ? CMD_WRITE_DMA_EXT : CMD_WRITE_DMA;
                int bm = ide.sendDmaRequest("write", cmd, w[0], (int) w[1], prdt);
                assertThat(bm & (BM_ACTIVE | BM_INTR)).as("write acknowledged").isEqualTo(BM_INTR);
                assertThat(ide.ideIn(REG_STATUS) & (BSY | DRQ | ERR)).isZero();
                System.arraycopy(data, 0, expected, (int) w[0] * 512, bytes);
            }
            ide.ideOut(REG_DEVICE, 0);
            ide.ideOut(REG_COMMAND, CMD_FLUSH_CACHE);
            int status = ide.waitNotBusy();
            assertThat(status & (BSY | DRQ | ERR)).as("flush acknowledged").isZero();
        } finally {
            process.destroyForcibly(); // SIGKILL on Linux
            assertThat(process.waitFor(20, TimeUnit.SECONDS)).isTrue();
        }
        assertThat(process.exitValue()).as("killed by SIGKILL").isEqualTo(128 + 9);
        assertThat(Files.readString(stderr)).as("the machine complained on stderr").isEmpty();
        assertThat(Files.readAllBytes(image)).as("image after SIGKILL").isEqualTo(expected);
    }
}
