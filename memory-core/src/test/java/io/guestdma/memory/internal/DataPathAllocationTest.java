package io.guestdma.memory.internal;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The data-path system calls allocate nothing whatever the JIT decides. A downcall linked with
 * errno capture allocates 40 bytes per call unless C2's escape analysis removes it, so this runs
 * {@link DataPathAllocationProbe} in a JVM with escape analysis switched off, where a data-path call
 * whose fast path captures errno again shows its allocation on every call. The probe's capturing
 * control call proves that JVM does see that allocation, so the test cannot pass vacuously.
 */
class DataPathAllocationTest {

    @Test
    void dataPathCallsAllocateNothingEvenWithoutEscapeAnalysis(@TempDir Path dir) throws IOException, InterruptedException {
        Map<String, Double> perCall = probe(dir.resolve("probe.img"), dir.resolve("probe.out"), false);

        assertThat(perCall.get("control_capturing_lseek"))
                .as("a downcall with errno capture allocates in this JVM (else the check below proves nothing)")
                .isGreaterThanOrEqualTo(16.0);
        for (String call : List.of("pwritev", "preadv", "pwrite", "pread", "writev", "readv", "read")) {
            assertThat(perCall.get(call)).as("heap bytes per %s call", call).isLessThan(1.0);
        }
    }

    /**
     * The JDK builds a handle's customized invoker (a hidden class, tens of KB of heap) at its
     * 128th invocation from interpreted or C1 code, at a moment the JIT decides; Posix has the
     * data-path handles customized when it is initialized. In an interpreted JVM the first 300
     * calls of each allocate nothing, while a handle Posix leaves alone (getpagesize) allocates
     * its customization there.
     */
    @Test
    void dataPathHandlesAreCustomizedBeforeTheirFirstCall(@TempDir Path dir) throws IOException, InterruptedException {
        Map<String, Double> total = probe(dir.resolve("probe.img"), dir.resolve("probe.out"), true);

        assertThat(total.get("control_uncustomized_getpagesize"))
                .as("a handle invoked 300 times from the interpreter is customized, allocating (else the check below proves nothing)")
                .isGreaterThanOrEqualTo(4096.0);
        for (String call : List.of("pwritev", "preadv", "pwrite", "pread", "writev", "readv", "read")) {
            assertThat(total.get(call)).as("heap bytes of the first 300 %s calls", call).isLessThan(1024.0);
        }
    }

    /**
     * Runs the probe in its own JVM without escape analysis.
     *
     * @param firstCalls whether to measure the first calls in an interpreted JVM instead of calls
     *                   after a warm-up
     */
    private static Map<String, Double> probe(Path file, Path log, boolean firstCalls) throws IOException, InterruptedException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        List<String> command = new ArrayList<>(List.of(java.toString(), "--enable-native-access=ALL-UNNAMED",
                "-XX:-DoEscapeAnalysis", "-Xmx64m", "-cp", System.getProperty("java.class.path")));
        if (firstCalls) {
            command.add("-Xint");
        }
        command.addAll(List.of(DataPathAllocationProbe.class.getName(), file.toString()));
        if (firstCalls) {
            command.add("first-calls");
        }
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            boolean finished = p.waitFor(120, TimeUnit.SECONDS);
            String output = Files.readString(log, StandardCharsets.UTF_8);
            assertThat(finished).as("probe finished within 2 minutes; output so far:%n%s", output).isTrue();
            assertThat(p.exitValue()).as("probe exit status; output:%n%s", output).isZero();
            Map<String, Double> perCall = new HashMap<>();
            for (String line : output.strip().split("\n")) {
                String[] kv = line.split("=", 2);
                if (kv.length == 2) {
                    perCall.put(kv[0].strip(), Double.parseDouble(kv[1].strip()));
                }
            }
            assertThat(perCall).as("probe output:%n%s", output)
                    .containsKeys("pwritev", "preadv", "pwrite", "pread", "writev", "readv", "read");
            return perCall;
        } finally {
            p.destroyForcibly();
        }
    }
}
