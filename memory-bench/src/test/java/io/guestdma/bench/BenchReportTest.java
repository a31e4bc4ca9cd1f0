package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The report's arithmetic, from a hand-written JMH result file. */
class BenchReportTest {

    /** A JMH result entry whose forks scored {@code forks} (two equal iterations each). */
    private static String entry(String method, String params, String mode, double[] forks, String unit, double[] alloc) {
        String secondary = alloc == null ? "{}"
                : "{\"gc.alloc.rate.norm\": {\"score\": " + mean(alloc) + ", \"scoreError\": \"NaN\", \"scoreUnit\": \"B/op\","
                        + " \"rawData\": " + raw(alloc) + "}}";
        return """
                {"benchmark": "io.guestdma.bench.%s", "mode": "%s", "threads": 1, "forks": %d,
                 "params": {%s},
                 "primaryMetric": {"score": %s, "scoreError": 1.5, "scoreUnit": "%s", "rawData": %s},
                 "secondaryMetrics": %s}""".formatted(method, mode, forks.length, params, mean(forks), unit, raw(forks), secondary);
    }

    private static String entry(String method, String params, String mode, double score, String unit, Double alloc) {
        return entry(method, params, mode, new double[] {score}, unit, alloc == null ? null : new double[] {alloc});
    }

    /** Each fork as two iterations of its score. */
    private static String raw(double[] forks) {
        StringBuilder sb = new StringBuilder("[");
        for (double f : forks) {
            sb.append(sb.length() > 1 ? ", " : "").append("[").append(f).append(", ").append(f).append("]");
        }
        return sb.append("]").toString();
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
        String json = "[" + String.join(",", List.of(
                entry("IdeDmaBenchmark.write", "\"path\": \"COPY\", \"size\": \"64k\"", "thrpt", 100000, "ops/s", 1200.0),
                entry("IdeDmaBenchmark.write", "\"path\": \"MAP_FILECHANNEL\", \"size\": \"64k\"", "thrpt", 120000, "ops/s", 640.0),
                entry("IdeDmaBenchmark.write", "\"path\": \"MAP_NATIVE\", \"size\": \"64k\"", "thrpt", 160000, "ops/s", 0.5),
                entry("MapBenchmark.mapUnmapRam", "\"size\": \"64k\"", "thrpt", 9e7, "ops/s", 0.001),
                entry("MapBenchmark.copyRead", "\"size\": \"64k\"", "thrpt", 6e5, "ops/s", 72.0),
                entry("RegionLookupBenchmark.mapUnmap", "\"regions\": \"1\"", "avgt", 10, "ns/op", 0.0),
                entry("RegionLookupBenchmark.mapUnmap", "\"regions\": \"10000\"", "avgt", 14, "ns/op", 0.0),
                entry("ThreadScalingBenchmark.oneThread", "", "thrpt", 1e8, "ops/s", 0.0),
                entry("ThreadScalingBenchmark.twoThreads", "", "thrpt", 1.9e8, "ops/s", 0.0))) + "]";
        Path file = dir.resolve("results.json");
        Files.writeString(file, json);
        BenchReport.main(new String[] {file.toString(), dir.toString()});

        @SuppressWarnings("unchecked")
        Map<String, Object> summary = (Map<String, Object>) Json.parse(Files.readString(dir.resolve("summary.json")));
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
        String json = "[" + String.join(",", List.of(
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
                entry("ThreadScalingBenchmark.cpuOnlyTwoThreads", "", "thrpt", new double[] {1.6e9, 2e9}, "ops/s", null)))
                + "]";
        Path file = dir.resolve("results.json");
        Files.writeString(file, json);
        BenchReport.main(new String[] {file.toString(), dir.toString()});

        Map<String, Object> summary = map(Json.parse(Files.readString(dir.resolve("summary.json"))));
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
                .containsPattern("\\| alloc ide_write_64k_native, B/op \\(spread max: worst fork\\) +\\| +0\\.3 \\| +0\\.0 - 40\\.5 \\(3 forks\\) \\| +<= 16 \\| +not decided \\|")
                .containsPattern("\\| two_thread_scaling_over_control +\\| +0\\.94 \\| +0\\.94 - 0\\.95 \\(2 forks\\) \\| +>= 0\\.95 \\| +not decided \\|")
                .containsPattern("\\| two_thread_scaling +\\| +1\\.70 \\| +1\\.50 - 1\\.90 \\(2 forks\\) \\| +>= 1\\.8 \\| +not decided \\|")
                .contains("1.60x (1.40-1.90)");
    }

    @Test
    void jsonParserReadsJmhOutputAndRejectsGarbageWithAnOffset() {
        Map<String, Object> expected = new LinkedHashMap<>();
        expected.put("a", List.of(1.0, 2500.0, -3.0));
        expected.put("b", "x\"A");
        expected.put("c", null);
        expected.put("d", true);
        assertThat(Json.parse(" {\"a\": [1, 2.5e3, -3], \"b\": \"x\\\"\\u0041\", \"c\": null, \"d\": true} "))
                .isEqualTo(expected);
        assertThatThrownBy(() -> Json.parse("{\"a\": }")).hasMessageContaining("offset 6");
        assertThatThrownBy(() -> Json.parse("[1, 2")).hasMessageContaining("unexpected end");
        assertThatThrownBy(() -> Json.parse("{} x")).hasMessageContaining("trailing");
    }
}
