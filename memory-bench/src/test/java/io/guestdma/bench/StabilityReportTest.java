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

    @Test
    void againstAFullRun_eachKeyShowsTheFurthestQuickRunFromIt(@TempDir Path dir) throws Exception {
        Path full = Files.createDirectories(dir.resolve("full"));
        Files.writeString(full.resolve("summary.json"), """
                {"two_thread_scaling": 2.0, "two_thread_scaling_spread": {"min": 1.7, "max": 2.4, "forks": 5},
                 "lookup_10000_over_1": 1.0, "lookup_10000_over_1_spread": {"min": 0.98, "max": 1.02, "forks": 5},
                 "nbd_write_64k_qd16_vs_qemu_img_bench": null,
                 "migration_downtime_ms_1g_idle": 3.0, "migration_downtime_ms_1g_idle_spread": {"min": 3.0, "max": 3.0, "forks": 1},
                 "virtio_blk_alloc_bytes_per_request": 0.01, "nbd_write_64k_alloc_bytes_per_op": 0.5}
                """);
        String[][] quick = {{"1.9", "0.95"}, {"2.3", "1.05"}};
        String[] args = {dir.toString(), "--against", full.toString(), null, null};
        for (int i = 0; i < 2; i++) {
            Path run = Files.createDirectories(dir.resolve("run-" + (i + 1)));
            Files.writeString(run.resolve("summary.json"), """
                    {"two_thread_scaling": %s, "lookup_10000_over_1": %s, "nbd_write_64k_qd16_vs_qemu_img_bench": 0.9,
                     "migration_downtime_ms_1g_idle": 3.1,
                     "virtio_blk_alloc_bytes_per_request": 0.05, "nbd_write_64k_alloc_bytes_per_op": %s}
                    """.formatted(quick[i][0], quick[i][1], i == 0 ? "0.4" : "3.5"));
            args[i + 3] = run.toString();
        }
        StabilityReport.main(args);

        String md = Files.readString(dir.resolve("stability.md"));
        assertThat(md).contains("2 runs of `bin/bench --quick`", "\"off full\"")
                .containsPattern("\\| key +\\| run 1 \\| run 2 \\| +min \\| +max \\| spread \\| +full \\| +off full \\|"
                        + " +full's forks \\| in them \\|")
                .as("2.3 is 15% over 2.0: marked, yet inside the full run's forks (1.7 to 2.4)").containsPattern(
                        "\\| two_thread_scaling +\\|.*\\| +2\\.000 \\| +\\+15\\.0% ! \\| +1\\.700 - 2\\.400 \\| +yes \\|")
                .as("within 10%: not marked, yet outside the full run's narrow forks").containsPattern(
                        "\\| lookup_10000_over_1 +\\|.*\\| +1\\.000 \\| +[-+]5\\.0% \\| +0\\.980 - 1\\.020 \\| +no \\|")
                .as("one fork in the full run: no range to be in").containsPattern(
                        "\\| migration_downtime_ms_1g_idle +\\|.*\\| +3\\.000 \\| +\\+3\\.3% \\| +- \\| +- \\|")
                .as("not in the full run").containsPattern(
                        "\\| nbd_write_64k_qd16_vs_qemu_img_bench +\\|.*\\| +- \\| +- \\| +- \\| +- \\|")
                .as("allocation: the largest run, against 1 B").containsPattern(
                        "\\| virtio_blk_alloc_bytes_per_request +\\|.*\\| +0\\.010 \\| +max 0\\.050 B \\|")
                .containsPattern("\\| nbd_write_64k_alloc_bytes_per_op +\\|.*\\| +0\\.500 \\| +max 3\\.500 B ! \\|");
    }
}
