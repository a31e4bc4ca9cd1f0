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

    private static String entry(String method, String params, String mode, double score, String unit, Double alloc) {
        String secondary = alloc == null ? "{}"
                : "{\"gc.alloc.rate.norm\": {\"score\": " + alloc + ", \"scoreError\": \"NaN\", \"scoreUnit\": \"B/op\"}}";
        return """
                {"benchmark": "io.guestdma.bench.%s", "mode": "%s", "threads": 1, "forks": 1,
                 "params": {%s},
                 "primaryMetric": {"score": %s, "scoreError": 1.5, "scoreUnit": "%s", "rawData": [[1.0]]},
                 "secondaryMetrics": %s}""".formatted(method, mode, params, score, unit, secondary);
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
        assertThat(notRun).containsOnlyKeys("copy_ops_s", "map_filechannel_ops_s", "map_native_ops_s", "map_over_copy");
        assertThat(notRun.values()).as("missing cases are null, never made up").containsOnlyNulls();
        @SuppressWarnings("unchecked")
        Map<String, Object> alloc = (Map<String, Object>) summary.get("alloc_bytes_per_op");
        assertThat((Double) alloc.get("ide_write_64k_native")).isEqualTo(0.5);
        assertThat((Double) alloc.get("ide_write_64k_filechannel")).isEqualTo(640.0);
        assertThat((Double) summary.get("map_unmap_64k_over_copy_64k")).isCloseTo(150.0, within(1e-9));
        assertThat((Double) summary.get("lookup_10000_over_1")).as("time ratio, not rate ratio").isCloseTo(1.4, within(1e-9));
        assertThat((Double) summary.get("two_thread_scaling")).isCloseTo(1.9, within(1e-9));

        String report = Files.readString(dir.resolve("report.md"));
        assertThat(report).containsPattern("\\| ide_write_64k_16prd map/copy +\\| +1\\.60 \\| +>= 1\\.5 \\| +yes \\|")
                .containsPattern("\\| lookup_10000_over_1 +\\| +1\\.40 \\|");
        assertThat(report).containsPattern("\\| ide_write_1m_64prd map/copy +\\| +- \\| +>= 1\\.65 \\| +not run \\|");
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
