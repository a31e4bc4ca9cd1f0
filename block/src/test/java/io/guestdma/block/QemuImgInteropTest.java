package io.guestdma.block;

import io.guestdma.memory.IoVector;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;
import static org.assertj.core.api.Assumptions.assumeThat;

/** Images made by qemu-img work, and what we write is what qemu-img sees. */
class QemuImgInteropTest {
    @TempDir
    Path dir;

    private static String qemuImg() {
        for (String p : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            Path candidate = Path.of(p, "qemu-img");
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        String why = "qemu-img not found (apt-get install qemu-utils)";
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail(why + "; CI must have it (bin/test installs it)");
        }
        assumeThat(false).as(why).isTrue();
        return null;
    }

    private static String run(String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        List<String> cmd = new ArrayList<>(List.of(command));
        assertThat(p.exitValue()).as("%s printed: %s", cmd, out).isZero();
        return out;
    }

    @ParameterizedTest
    @EnumSource(BlockBackendContractTest.Kind.class)
    void writesIntoAQemuImgImageMatchAReferenceByteForByte(BlockBackendContractTest.Kind kind) throws Exception {
        String qemuImg = qemuImg();
        Path img = dir.resolve("qemu.img");
        run(qemuImg, "create", "-q", "-f", "raw", img.toString(), "4M");
        byte[] reference = new byte[4 << 20];
        Random random = new Random(77);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            assertThat(disk.size()).isEqualTo(4 << 20);
            for (int i = 0; i < 40; i++) {
                int sectors = 1 + random.nextInt(128);
                long lba = random.nextInt((4 << 20) / 512 - sectors);
                IoVector iov = new IoVector();
                for (int s = 0; s < sectors; s++) {
                    iov.add(arena.allocate(512));
                }
                byte[] data = new byte[sectors * 512];
                random.nextBytes(data);
                iov.copyFrom(0, data, 0, data.length);
                disk.writev(lba * 512, iov);
                System.arraycopy(data, 0, reference, (int) (lba * 512), data.length);
            }
            disk.discard(0, 4096);
            java.util.Arrays.fill(reference, 0, 4096, (byte) 0);
            disk.flush();
        }
        Path ref = dir.resolve("reference.raw");
        Files.write(ref, reference);
        String out = run(qemuImg, "compare", "-f", "raw", "-F", "raw", img.toString(), ref.toString());
        assertThat(out).contains("Images are identical");
        assertThat(run(qemuImg, "info", "--output=json", img.toString())).contains("\"format\": \"raw\"");
    }
}
