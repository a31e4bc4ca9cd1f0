package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.guestdma.bench.JmhResults.Result;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The report's arithmetic, from hand-made results, and what it says about the C reference. */
class BenchReportTest {

    /** A result whose forks scored {@code forks} and allocated {@code alloc} B/op (null: no gc profiler). */
    private static Result entry(String method, String params, String mode, double[] forks, String unit, double[] alloc) {
        Map<String, String> p = new TreeMap<>();
        Matcher m = Pattern.compile("\"(\\w+)\": \"([^\"]*)\"").matcher(params);
        while (m.find()) {
            p.put(m.group(1), m.group(2));
        }
        return new Result(method, p, 1, mean(forks), 1.5, unit,
                alloc == null ? OptionalDouble.empty() : OptionalDouble.of(mean(alloc)),
                Arrays.stream(forks).boxed().toList(), alloc == null ? List.of() : Arrays.stream(alloc).boxed().toList());
    }

    private static Result entry(String method, String params, String mode, double score, String unit, Double alloc) {
        return entry(method, params, mode, new double[] {score}, unit, alloc == null ? null : new double[] {alloc});
    }

    /** Writes the report of {@code results} into {@code dir}, without a C reference, and reads its summary. */
    private static Map<String, Object> report(Path dir, Result... results) throws Exception {
        BenchReport.write(new BenchReport(new JmhResults(List.of(results)), new CReference.NotMeasured("test")), dir, "",
                Optional.empty());
        return summary(dir);
    }

    static Map<String, Object> summary(Path dir) throws Exception {
        return map(SummaryJson.read(Files.readString(dir.resolve("summary.json"))));
    }

    private static double mean(double[] v) {
        double sum = 0;
        for (double x : v) {
            sum += x;
        }
        return sum / v.length;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object o) {
        return (Map<String, Object>) o;
    }

    @Test
    void summaryRatiosFollowTheirDefinitions(@TempDir Path dir) throws Exception {
        Map<String, Object> summary = report(dir,
                entry("IdeDmaBenchmark.write", "\"path\": \"COPY\", \"size\": \"64k\"", "thrpt", 100000, "ops/s", 1200.0),
                entry("IdeDmaBenchmark.write", "\"path\": \"MAP_FILECHANNEL\", \"size\": \"64k\"", "thrpt", 120000, "ops/s", 640.0),
                entry("IdeDmaBenchmark.write", "\"path\": \"MAP_NATIVE\", \"size\": \"64k\"", "thrpt", 160000, "ops/s", 0.5),
                entry("MapBenchmark.mapUnmapRam", "\"size\": \"64k\"", "thrpt", 9e7, "ops/s", 0.001),
                entry("MapBenchmark.copyRead", "\"size\": \"64k\"", "thrpt", 6e5, "ops/s", 72.0),
                entry("RegionLookupBenchmark.mapUnmap", "\"regions\": \"1\"", "avgt", 10, "ns/op", 0.0),
                entry("RegionLookupBenchmark.mapUnmap", "\"regions\": \"10000\"", "avgt", 14, "ns/op", 0.0),
                entry("ThreadScalingBenchmark.oneThread", "", "thrpt", 1e8, "ops/s", 0.0),
                entry("ThreadScalingBenchmark.twoThreads", "", "thrpt", 1.9e8, "ops/s", 0.0));
        @SuppressWarnings("unchecked")
        Map<String, Object> w = (Map<String, Object>) summary.get("ide_write_64k_16prd");
        assertThat((Double) w.get("copy_ops_s")).isEqualTo(100000.0);
        assertThat((Double) w.get("map_filechannel_ops_s")).isEqualTo(120000.0);
        assertThat((Double) w.get("map_over_copy")).isCloseTo(1.6, within(1e-9));
        @SuppressWarnings("unchecked")
        Map<String, Object> notRun = (Map<String, Object>) summary.get("ide_write_1m_64prd");
        assertThat(notRun).containsOnlyKeys("copy_ops_s", "map_filechannel_ops_s", "map_native_ops_s", "map_over_copy",
                "copy_ops_s_spread", "map_filechannel_ops_s_spread", "map_native_ops_s_spread", "map_over_copy_spread");
        assertThat(notRun.values()).as("missing cases are null, never made up").containsOnlyNulls();
        @SuppressWarnings("unchecked")
        Map<String, Object> alloc = (Map<String, Object>) summary.get("alloc_bytes_per_op");
        assertThat((Double) alloc.get("ide_write_64k_native")).isEqualTo(0.5);
        assertThat((Double) alloc.get("ide_write_64k_filechannel")).isEqualTo(640.0);
        assertThat((Double) summary.get("map_unmap_64k_over_copy_64k")).isCloseTo(150.0, within(1e-9));
        assertThat((Double) summary.get("lookup_10000_over_1")).as("time ratio, not rate ratio").isCloseTo(1.4, within(1e-9));
        assertThat((Double) summary.get("two_thread_scaling")).isCloseTo(1.9, within(1e-9));

        String report = Files.readString(dir.resolve("report.md"));
        assertThat(report).containsPattern("\\| ide_write_64k_16prd map/copy +\\| +1\\.60 \\| +1 fork \\| +>= 1\\.5 \\| +yes \\|")
                .containsPattern("\\| lookup_10000_over_1 +\\| +1\\.40 \\|");
        assertThat(report).containsPattern("\\| ide_write_1m_64prd map/copy +\\| +- \\| +- \\| +>= 1\\.65 \\| +not run \\|");
    }

    @Test
    void forkedKeysReportTheMedianTheSpreadAndWhetherTheTargetIsDecided(@TempDir Path dir) throws Exception {
        Map<String, Object> summary = report(dir,
                entry("IdeDmaBenchmark.write", "\"path\": \"COPY\", \"size\": \"64k\"", "thrpt",
                        new double[] {100000, 100000, 100000}, "ops/s", new double[] {1200, 1210, 1190}),
                entry("IdeDmaBenchmark.write", "\"path\": \"MAP_NATIVE\", \"size\": \"64k\"", "thrpt",
                        new double[] {160000, 140000, 190000}, "ops/s", new double[] {0.0, 40.5, 0.25}),
                entry("IdeDmaBenchmark.write", "\"path\": \"COPY\", \"size\": \"1m\"", "thrpt",
                        new double[] {1000, 1000, 1000}, "ops/s", null),
                entry("IdeDmaBenchmark.write", "\"path\": \"MAP_NATIVE\", \"size\": \"1m\"", "thrpt",
                        new double[] {1700, 1800, 1900}, "ops/s", null),
                entry("ThreadScalingBenchmark.oneThread", "", "thrpt", new double[] {1e8, 1e8}, "ops/s", null),
                entry("ThreadScalingBenchmark.twoThreads", "", "thrpt", new double[] {1.5e8, 1.9e8}, "ops/s", null),
                entry("ThreadScalingBenchmark.cpuOnlyOneThread", "", "thrpt", new double[] {1e9, 1e9}, "ops/s", null),
                entry("ThreadScalingBenchmark.cpuOnlyTwoThreads", "", "thrpt", new double[] {1.6e9, 2e9}, "ops/s", null));
        Map<String, Object> w = map(summary.get("ide_write_64k_16prd"));
        assertThat((Double) w.get("map_over_copy")).as("median of the per-fork ratios").isCloseTo(1.6, within(1e-9));
        assertThat(map(w.get("map_over_copy_spread"))).containsEntry("min", 1.4).containsEntry("max", 1.9)
                .containsEntry("forks", 3.0);
        assertThat((Double) w.get("map_native_ops_s")).isEqualTo(160000.0);
        assertThat(map(w.get("copy_ops_s_spread"))).containsEntry("forks", 3.0);
        Map<String, Object> alloc = map(summary.get("alloc_bytes_per_op"));
        assertThat((Double) alloc.get("ide_write_64k_native")).as("median fork").isEqualTo(0.25);
        assertThat((Double) alloc.get("ide_write_64k_native_worst_fork")).isEqualTo(40.5);
        assertThat(map(alloc.get("ide_write_64k_native_spread"))).containsEntry("min", 0.0).containsEntry("max", 40.5);
        assertThat((Double) summary.get("two_thread_scaling")).isCloseTo(1.7, within(1e-9));
        assertThat((Double) summary.get("two_thread_scaling_over_control"))
                .as("fork by fork: 1.5/1.6 and 1.9/2.0").isCloseTo((1.5 / 1.6 + 1.9 / 2.0) / 2, within(1e-9));
        assertThat(summary.get("lookup_10000_over_1")).isNull();
        assertThat(summary.get("lookup_10000_over_1_spread")).as("not run: no spread either").isNull();

        String report = Files.readString(dir.resolve("report.md"));
        assertThat(report)
                .as("1.4 - 1.9 straddles 1.5")
                .containsPattern("\\| ide_write_64k_16prd map/copy +\\| +1\\.60 \\| +1\\.40 - 1\\.90 \\(3 forks\\) \\| +>= 1\\.5 \\| +not decided \\|")
                .as("every fork of 1.7 - 1.9 meets 1.65")
                .containsPattern("\\| ide_write_1m_64prd map/copy +\\| +1\\.80 \\| +1\\.70 - 1\\.90 \\(3 forks\\) \\| +>= 1\\.65 \\| +yes \\|")
                .as("the worst fork decides an allocation target too")
                .containsPattern("\\| alloc ide_write_64k_native, B/op \\(spread max: worst fork\\) +\\| +0\\.25 \\| +0\\.00 - 40\\.50 \\(3 forks\\) \\| +<= 1 \\| +not decided \\|")
                .containsPattern("\\| two_thread_scaling_over_control +\\| +0\\.94 \\| +0\\.94 - 0\\.95 \\(2 forks\\) \\| +>= 0\\.95 \\| +not decided \\|")
                .containsPattern("\\| two_thread_scaling +\\| +1\\.70 \\| +1\\.50 - 1\\.90 \\(2 forks\\) \\| +>= 1\\.8 \\| +not decided \\|")
                .contains("1.60x (1.40-1.90)");
    }

    private static Result[] sample() {
        return new Result[] {
                entry("IdeDmaBenchmark.write", "\"path\": \"COPY\", \"size\": \"64k\"", "thrpt", 100000, "ops/s", 1200.0),
                entry("IdeDmaBenchmark.write", "\"path\": \"MAP_NATIVE\", \"size\": \"64k\"", "thrpt", 160000, "ops/s", 0.5)};
    }

    @Test
    void aMeasuredCReferenceIsTheLimitLineAndSetsTheTarget(@TempDir Path dir) throws Exception {
        CReference c = new CReference.Measured(Map.of("write.64k", 125000.0, "read.64k", 250000.0), "/usr/bin/cc");
        BenchReport.write(new BenchReport(new JmhResults(List.of(sample())), c), dir, "", Optional.empty());

        String report = Files.readString(dir.resolve("report.md"));
        assertThat(report).contains("measured on this machine", "built with /usr/bin/cc")
                .containsPattern("\\| IDE WRITE DMA 64k \\(16 pieces\\) +\\| +125,000 \\| +8\\.0 \\| +160,000 \\| +1\\.28x \\|")
                .as("the 64 KiB target is measured against this machine's C figure, 8.0 us")
                .containsPattern("\\| ide_write_64k_16prd native, us/op \\(C pwritev here: 8\\.00\\) +\\| +6\\.25 \\|.*\\| +<= 8\\.89 \\| +yes \\|");
    }

    @Test
    void withoutACReferenceTheReportSaysSoAndWhy(@TempDir Path dir) throws Exception {
        CReference c = new CReference.NotMeasured("no C compiler found (looked for cc, gcc, clang on the PATH)");
        BenchReport.write(new BenchReport(new JmhResults(List.of(sample())), c), dir, "", Optional.empty());

        String report = Files.readString(dir.resolve("report.md"));
        assertThat(report).contains("C reference: not measured on this machine, no C compiler found",
                        "The C reference was NOT measured on this machine")
                .containsPattern("ide_write_64k_16prd native, us/op \\(C pwritev, benchmark issue: 7\\.60\\)");
        assertThat(dir.resolve("throughput.png")).isNotEmptyFile();
    }

    @Test
    void theGuestRatiosAreKeysWithTheirSpread_andTargets(@TempDir Path dir) throws Exception {
        Map<String, List<Double>> guest = Map.of(VhostUserGuestBench.RANDREAD, List.of(0.9, 1.2, 1.1),
                VhostUserGuestBench.SEQWRITE, List.of(1.3, 1.1));
        BenchReport.write(new BenchReport(new JmhResults(List.of(sample())), new CReference.NotMeasured("test"), Map.of(),
                guest), dir, "", Optional.empty());

        Map<String, Object> summary = summary(dir);
        assertThat(summary.get(VhostUserGuestBench.RANDREAD)).as("the median round").isEqualTo(1.1);
        assertThat(map(summary.get(VhostUserGuestBench.RANDREAD + "_spread")))
                .containsEntry("min", 0.9).containsEntry("max", 1.2).containsEntry("forks", 3.0);
        assertThat(summary.get(VhostUserGuestBench.SEQWRITE)).isEqualTo(1.2);
        assertThat(summary.get("vhost_user_blk_alloc_bytes_per_request")).as("not run: null").isNull();
        assertThat(Files.readString(dir.resolve("report.md")))
                .containsPattern("\\| vhost_user_blk_guest_randread_4k_qd32_vs_qsd \\(spread: rounds in one boot\\) +\\| +1\\.10 \\|.*"
                        + "\\| +>= 1\\.0 \\| +not decided \\|")
                .containsPattern("\\| vhost_user_blk_guest_seqwrite_64k_qd1_vs_qsd \\(spread: rounds in one boot\\) +\\| +1\\.20 \\|.*"
                        + "\\| +>= 1\\.0 \\| +yes \\|");
    }

    @Test
    void nbdRatiosPairEachForkWithItsOwnRoundsQemuImgRun_orDivideByTheMedianRun(@TempDir Path dir) throws Exception {
        Result qd1 = entry("NbdWriteBenchmark.writeQd1", "", "thrpt", new double[] {20_000, 30_000}, "ops/s",
                new double[] {0.3, 0.4});
        Result qd16 = entry("NbdWriteBenchmark.writeQd16", "", "thrpt", new double[] {24_000, 26_000}, "ops/s",
                new double[] {0.3, 0.3});
        // Depth 1: one run per round, so fork i over run i. Depth 16: three runs after JMH, so the median.
        BenchReport.write(new BenchReport(new JmhResults(List.of(qd1, qd16)), new CReference.NotMeasured("test"),
                Map.of(1, List.of(10_000.0, 20_000.0), 16, List.of(10_000.0, 20_000.0, 40_000.0)), Map.of()),
                dir, "", Optional.empty());

        Map<String, Object> summary = summary(dir);
        assertThat(map(summary.get("nbd_write_64k_qd1_vs_qemu_img_bench_spread")))
                .as("2.0 and 1.5, not 20 000 and 30 000 over the median 15 000 (1.33 and 2.0)")
                .containsEntry("min", 1.5).containsEntry("max", 2.0);
        assertThat(summary.get("nbd_write_64k_qd1_vs_qemu_img_bench")).isEqualTo(1.75);
        assertThat(map(summary.get("nbd_write_64k_qd16_vs_qemu_img_bench_spread")))
                .containsEntry("min", 1.2).containsEntry("max", 1.3);
    }
}
