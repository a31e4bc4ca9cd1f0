package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kick thread's downcalls (eventfd write and read, poll) are customized by the JDK when
 * {@code Linux} is initialized, not at their 128th call from interpreted or C1 code, whose moment
 * depends on the JIT (a hidden class, tens of KB of heap, in the middle of serving requests). In an
 * interpreted JVM, where every call counts, their first 300 calls allocate nothing.
 */
class EventfdCustomizationTest {
    @Test
    void theKickPathsFirstCallsAllocateNothing(@TempDir Path dir) throws IOException, InterruptedException {
        Path log = dir.resolve("probe.out");
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-Xint", "-Xmx64m", "-cp", System.getProperty("java.class.path"),
                EventfdCustomizationProbe.class.getName())
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            boolean finished = p.waitFor(120, TimeUnit.SECONDS);
            String output = Files.readString(log, StandardCharsets.UTF_8);
            assertThat(finished).as("probe finished within 2 minutes; output so far:%n%s", output).isTrue();
            assertThat(p.exitValue()).as("probe exit status; output:%n%s", output).isZero();
            String line = output.lines().filter(l -> l.startsWith("kick=")).findFirst().orElseThrow(
                    () -> new AssertionError("no kick= line in the probe's output:\n" + output));
            assertThat(Long.parseLong(line.substring(5))).as("heap bytes of 300 signal/poll/drain rounds").isLessThan(1024);
        } finally {
            p.destroyForcibly();
        }
    }
}
