package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ScratchDirectoryTest {
    @Test
    void deleteRemovesTheTreeAndToleratesWhatIsGone() throws Exception {
        Path dir = ScratchDirectory.create("guestdma-scratch-test");
        Files.writeString(Files.createDirectories(dir.resolve("a/b")).resolve("c"), "x");
        ScratchDirectory.delete(dir);
        assertThat(dir).doesNotExist();
        ScratchDirectory.delete(dir);
        ScratchDirectory.delete(null);
    }

    /**
     * A bench stopped by SIGTERM mid-run (its images in /dev/shm, a qemu-nbd or QEMU still running)
     * leaves neither: the directory would otherwise hold its images in RAM until reboot.
     */
    @Test
    void aJvmStoppedBySigtermStopsItsChildrenAndDeletesItsDirectories() throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process probe = new ProcessBuilder(List.of(java.toString(), "-cp", System.getProperty("java.class.path"),
                ScratchDirectoryProbe.class.getName())).redirectErrorStream(true).start();
        try {
            Map<String, String> said = new HashMap<>();
            try (BufferedReader out = new BufferedReader(new InputStreamReader(probe.getInputStream(),
                    StandardCharsets.UTF_8))) {
                String line;
                while (said.size() < 2 && (line = out.readLine()) != null) {
                    String[] kv = line.split("=", 2);
                    if (kv.length == 2) {
                        said.put(kv[0], kv[1]);
                    }
                }
                assertThat(said).as("the probe's dir= and child= lines").containsKeys("dir", "child");
                Path dir = Path.of(said.get("dir"));
                ProcessHandle child = ProcessHandle.of(Long.parseLong(said.get("child"))).orElseThrow();
                assertThat(dir.resolve("sub/image")).exists();

                probe.destroy(); // SIGTERM
                assertThat(probe.waitFor(30, TimeUnit.SECONDS)).as("the probe stopped").isTrue();
                assertThat(child.onExit().get(10, TimeUnit.SECONDS).isAlive()).as("its child process").isFalse();
                assertThat(dir).as("its scratch directory").doesNotExist();
            }
        } finally {
            probe.destroyForcibly();
        }
    }
}
