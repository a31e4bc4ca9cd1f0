package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;

/**
 * BenchSuite's plan runs every case of the suite exactly once, and gives several forks to every
 * case a target reads.
 */
class BenchSuiteTest {
    private static final List<Class<?>> BENCHMARKS = List.of(IdeDmaBenchmark.class, IdeOverheadBenchmark.class,
            BlockPathBenchmark.class, MapBenchmark.class, BounceBenchmark.class, RegionLookupBenchmark.class,
            ThreadScalingBenchmark.class, DebugModeBenchmark.class, RingViewBenchmark.class, IommuMapBenchmark.class,
            DmaBlockIoBenchmark.class, NbdWriteBenchmark.class, VirtioBlkBenchmark.class,
            VirtioBlkWriteBenchmark.class, NetRxBenchmark.class, NetRxMapCopyBenchmark.class,
            NetLoopbackBenchmark.class, VhostUserBlkBenchmark.class, MigrationBenchmark.class,
            MigrationDowntimeBenchmark.class);

    /** One case: a benchmark method and one value for each of its class's parameters. */
    private record Case(String name, Map<String, String> params) {
    }

    @Test
    void thePlanRunsEveryCaseExactlyOnce() {
        List<Case> cases = cases();
        assertThat(cases).as("the suite's size, as bin/bench documents it").hasSize(79);
        for (Case c : cases) {
            List<BenchSuite.Batch> matching = BenchSuite.plan().stream().filter(b -> runs(b, c)).toList();
            assertThat(matching).as("batches that run %s", c).hasSize(1);
        }
    }

    @Test
    void everyCaseThatDecidesATargetGetsSeveralForks() {
        List<Case> deciding = List.of(
                new Case("io.guestdma.bench.IdeDmaBenchmark.write", Map.of("size", "64k", "path", "COPY")),
                new Case("io.guestdma.bench.IdeDmaBenchmark.write", Map.of("size", "64k", "path", "MAP_NATIVE")),
                new Case("io.guestdma.bench.IdeDmaBenchmark.write", Map.of("size", "1m", "path", "COPY")),
                new Case("io.guestdma.bench.IdeDmaBenchmark.write", Map.of("size", "1m", "path", "MAP_NATIVE")),
                new Case("io.guestdma.bench.MapBenchmark.mapUnmapRam", Map.of("size", "64k")),
                new Case("io.guestdma.bench.MapBenchmark.copyRead", Map.of("size", "64k")),
                new Case("io.guestdma.bench.RegionLookupBenchmark.mapUnmap", Map.of("regions", "1")),
                new Case("io.guestdma.bench.RegionLookupBenchmark.mapUnmap", Map.of("regions", "10000")),
                new Case("io.guestdma.bench.ThreadScalingBenchmark.oneThread", Map.of()),
                new Case("io.guestdma.bench.ThreadScalingBenchmark.twoThreads", Map.of()),
                new Case("io.guestdma.bench.ThreadScalingBenchmark.cpuOnlyOneThread", Map.of()),
                new Case("io.guestdma.bench.ThreadScalingBenchmark.cpuOnlyTwoThreads", Map.of()),
                new Case("io.guestdma.bench.RingViewBenchmark.acquireThroughView", Map.of()),
                new Case("io.guestdma.bench.RingViewBenchmark.acquireRaw", Map.of()),
                new Case("io.guestdma.bench.IommuMapBenchmark.mapUnmapPlain", Map.of()),
                new Case("io.guestdma.bench.IommuMapBenchmark.mapUnmapIommu", Map.of()),
                new Case("io.guestdma.bench.DmaBlockIoBenchmark.write", Map.of()),
                new Case("io.guestdma.bench.VhostUserBlkBenchmark.read4kQd32", Map.of()),
                new Case("io.guestdma.bench.IdeOverheadBenchmark.write", Map.of("size", "64k", "mode", "MAP")),
                new Case("io.guestdma.bench.NbdWriteBenchmark.writeQd1", Map.of()),
                new Case("io.guestdma.bench.NbdWriteBenchmark.writeQd16", Map.of()),
                new Case("io.guestdma.bench.VirtioBlkBenchmark.read4kQd32Null", Map.of()),
                new Case("io.guestdma.bench.VirtioBlkBenchmark.read4kQd32Native", Map.of()),
                new Case("io.guestdma.bench.VirtioBlkBenchmark.oneQueue", Map.of()),
                new Case("io.guestdma.bench.VirtioBlkBenchmark.twoQueues", Map.of()),
                new Case("io.guestdma.bench.VirtioBlkWriteBenchmark.write64kQd1", Map.of("path", "MAP_NATIVE")),
                new Case("io.guestdma.bench.VirtioBlkWriteBenchmark.write64kQd1", Map.of("path", "COPY")),
                new Case("io.guestdma.bench.NetRxBenchmark.rx64b", Map.of("bufferBytes", "2048")),
                new Case("io.guestdma.bench.NetRxBenchmark.rx64b", Map.of("bufferBytes", "65536")),
                new Case("io.guestdma.bench.NetRxMapCopyBenchmark.rx9000b", Map.of("path", "MAP")),
                new Case("io.guestdma.bench.NetRxMapCopyBenchmark.rx9000b", Map.of("path", "COPY")),
                new Case("io.guestdma.bench.NetLoopbackBenchmark.txRx1514b", Map.of()),
                new Case("io.guestdma.bench.MigrationBenchmark.migrateRam", Map.of()),
                new Case("io.guestdma.bench.MigrationBenchmark.rawBulk", Map.of()),
                new Case("io.guestdma.bench.MigrationDowntimeBenchmark.switchover", Map.of()));
        for (Case c : deciding) {
            assertThat(BenchSuite.plan().stream().filter(b -> runs(b, c)).toList())
                    .as("the batch of %s", c).singleElement().matches(BenchSuite.Batch::deciding, "deciding");
        }
        assertThat(BenchSuite.plan().stream().filter(BenchSuite.Batch::deciding).count()).isPositive();
        assertThat(cases().stream().filter(c -> BenchSuite.plan().stream().anyMatch(b -> b.deciding() && runs(b, c))))
                .as("only those: forks elsewhere would push the full suite past 15 minutes").hasSize(deciding.size());
        assertThat(BenchSuite.DECIDING_FORKS).isGreaterThanOrEqualTo(3);
        assertThat(BenchSuite.DECIDING_FORKS_QUICK).isGreaterThanOrEqualTo(2);
    }

    @Test
    void quickRunsEveryCaseSummaryJsonReads_andNotTheReportOnlyOnes(@TempDir Path dir) throws Exception {
        List<Case> cases = cases();
        List<Case> quick = cases.stream().filter(c -> BenchSuite.plan().stream().anyMatch(b -> b.inQuick() && runs(b, c)))
                .toList();
        List<JmhResults.Result> results = new ArrayList<>();
        for (Case c : quick) {
            String simple = c.name().substring("io.guestdma.bench.".length());
            results.add(new JmhResults.Result(simple, c.params(), 1, 1000, 1, "ops/s", OptionalDouble.of(0),
                    List.of(1000.0, 1000.0), List.of(0.0, 0.0)));
        }
        // The qemu-img reference and the guest's fio come from outside JMH: given here as measured.
        BenchReport.write(new BenchReport(new JmhResults(results), new CReference.NotMeasured("test"),
                Map.of(1, List.of(1000.0), 16, List.of(1000.0)),
                Map.of(VhostUserGuestBench.RANDREAD, List.of(1.0), VhostUserGuestBench.SEQWRITE, List.of(1.0))),
                dir, "", Optional.empty());
        String summary = Files.readString(dir.resolve("summary.json"));
        assertThat(summary).as("every key measured by the --quick cases alone").doesNotContain("null");
        assertThat(quick.size()).as("--quick leaves the report-only cases out").isLessThan(cases.size());
    }

    /** Whether JMH, given the batch's include pattern and parameters, runs the case. */
    private static boolean runs(BenchSuite.Batch batch, Case c) {
        if (!Pattern.compile(batch.include()).matcher(c.name()).find()) {
            return false;
        }
        for (Map.Entry<String, List<String>> p : batch.params().entrySet()) {
            String value = c.params().get(p.getKey());
            if (value != null && !p.getValue().contains(value)) {
                return false;
            }
        }
        return true;
    }

    private static List<Case> cases() {
        List<Case> cases = new ArrayList<>();
        for (Class<?> type : BENCHMARKS) {
            Map<String, String[]> params = new LinkedHashMap<>();
            for (Field f : type.getFields()) {
                Param p = f.getAnnotation(Param.class);
                if (p != null) {
                    params.put(f.getName(), p.value());
                }
            }
            for (Method m : type.getMethods()) {
                if (m.isAnnotationPresent(Benchmark.class)) {
                    expand(type.getName() + "." + m.getName(), new ArrayList<>(params.entrySet()), 0, new LinkedHashMap<>(), cases);
                }
            }
        }
        return cases;
    }

    private static void expand(String name, List<Map.Entry<String, String[]>> params, int i, Map<String, String> chosen,
                               List<Case> out) {
        if (i == params.size()) {
            out.add(new Case(name, Map.copyOf(chosen)));
            return;
        }
        for (String v : params.get(i).getValue()) {
            chosen.put(params.get(i).getKey(), v);
            expand(name, params, i + 1, chosen, out);
        }
        chosen.remove(params.get(i).getKey());
    }
}
