package io.guestdma.memory;

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
 * Map and unmap of RAM allocate nothing once C2 has compiled the device code that calls them,
 * through the root and through a device address space alike. That rests on C2 inlining
 * {@link GuestMemory#map} (and {@link DeviceAddressSpace#map} around it) into the caller and then
 * scalar-replacing the mapping and its segment; C2 refuses to inline a method already compiled to
 * more than InlineSmallCode (2500) bytes of machine code, so this guards the size of the map path as
 * much as its allocations. The probe runs in a fresh JVM with default flags, and once more with
 * escape analysis off: there the same loop must allocate, or the check proves nothing.
 */
class MapAllocationTest {

    @Test
    void mapAndUnmapOfRamAllocateNothingThroughTheRootADeviceSpaceOrAPacket(@TempDir Path dir) throws Exception {
        Map<String, Double> withEscapeAnalysis = probe(dir.resolve("ea.out"));
        Map<String, Double> without = probe(dir.resolve("no-ea.out"), "-XX:-DoEscapeAnalysis");

        assertThat(without.get("root")).as("without escape analysis a mapping is allocated (control)")
                .isGreaterThanOrEqualTo(48.0);
        // A mapping and its segment are 112 bytes; a late recompilation during the measurement can
        // leave a few thousand of 200 000 operations allocating, which must not fail the check.
        assertThat(withEscapeAnalysis.get("root")).as("heap bytes per map+unmap through the root").isLessThan(8.0);
        assertThat(withEscapeAnalysis.get("device")).as("heap bytes per map+unmap through a device space")
                .isLessThan(8.0);
        // A packet's RAM pieces are windows in its vector: no mapping, no slice, whichever buffers.
        assertThat(withEscapeAnalysis.get("packet")).as("heap bytes per 3-piece packet through a device space")
                .isLessThan(8.0);
    }

    private static Map<String, Double> probe(Path log, String... flags) throws IOException, InterruptedException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        List<String> command = new ArrayList<>(List.of(java.toString(),
                "--enable-native-access=ALL-UNNAMED", "-Xmx64m"));
        command.addAll(List.of(flags));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), MapAllocationProbe.class.getName()));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            boolean finished = p.waitFor(120, TimeUnit.SECONDS);
            String output = Files.readString(log, StandardCharsets.UTF_8);
            assertThat(finished).as("probe finished within 2 minutes; output so far:%n%s", output).isTrue();
            assertThat(p.exitValue()).as("probe exit status; output:%n%s", output).isZero();
            Map<String, Double> perOp = new HashMap<>();
            for (String line : output.strip().split("\n")) {
                String[] kv = line.split("=", 2);
                if (kv.length == 2 && !kv[0].equals("sink")) {
                    perOp.put(kv[0].strip(), Double.parseDouble(kv[1].strip()));
                }
            }
            assertThat(perOp).as("probe output:%n%s", output).containsKeys("root", "device", "packet");
            return perOp;
        } finally {
            p.destroyForcibly();
        }
    }
}
