package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** bin/bench --stability's comparison of runs, from hand-written summaries. */
class StabilityReportTest {

    @Test
    void keysAreComparedAcrossRunsWithoutTheirWithinRunSpread(@TempDir Path dir) throws Exception {
        String[] ratios = {"1.6", "1.8", "2.0"};
        String[] args = new String[4];
        args[0] = dir.toString();
        for (int i = 0; i < 3; i++) {
            Path run = Files.createDirectories(dir.resolve("run-" + (i + 1)));
            Files.writeString(run.resolve("summary.json"), """
                    {"ide_write_64k_16prd": {"map_over_copy": %s, "map_over_copy_spread": {"min": 1, "max": 3, "forks": 2}},
                     "alloc_bytes_per_op": {"ide_write_64k_native": 0, "ide_write_64k_native_worst_fork": %s},
                     "lookup_10000_over_1": null}
                    """.formatted(ratios[i], i == 2 ? "40.5" : "0"));
            args[i + 1] = run.toString();
        }
        StabilityReport.main(args);

        String md = Files.readString(dir.resolve("stability.md"));
        assertThat(md).contains("3 runs of `bin/bench --quick`", "## Machine")
                .containsPattern("\\| ide_write_64k_16prd\\.map_over_copy +\\| +1\\.600 \\| +1\\.800 \\| +2\\.000 \\| +1\\.600 \\| +2\\.000 \\| +22\\.2% \\|")
                .containsPattern("\\| alloc_bytes_per_op\\.ide_write_64k_native_worst_fork +\\| +0\\.000 \\| +0\\.000 \\| +40\\.500 \\|")
                .containsPattern("\\| lookup_10000_over_1 +\\| +- \\| +- \\| +- \\| +- \\| +- \\| +- \\|")
                .doesNotContain("_spread");
        assertThat(StabilityReport.flatten(Map.of("a", Map.of("b", 1.0)))).containsExactly(Map.entry("a.b", 1.0));
        assertThat(List.of(md.split("\n"))).filteredOn(l -> l.startsWith("| alloc_bytes_per_op.ide_write_64k_native "))
                .singleElement().asString().endsWith("- |");
    }
}
