package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatFactory;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * The suite runs and the report is produced from what it measured: one short JMH run of a few
 * cases in a forked JVM (with the benchmarks' own fork options), then the report over the results
 * JMH's API returned. No timing is asserted.
 */
class BenchSuiteSmokeTest {

    @Test
    void aShortRunProducesEveryOutput(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("results.json");
        Options options = new OptionsBuilder()
                .include("IdeDmaBenchmark.write")
                .include("\\.MapBenchmark\\.")
                .param("size", "64k")
                .param("path", "COPY", "MAP_NATIVE")
                .forks(1)
                .jvmArgsAppend("--sun-misc-unsafe-memory-access=allow")
                .warmupIterations(0)
                .measurementIterations(1)
                .measurementTime(TimeValue.milliseconds(100))
                .resultFormat(ResultFormatType.JSON)
                .result(json.toString())
                .build();
        // On a shared machine another JMH run may hold JMH's lock: wait for it as bin/bench does.
        Collection<RunResult> runs = BenchSuite.runWhenFree(options);
        assertThat(runs).hasSize(4);
        assertThat(json).as("JMH writes its own JSON").isNotEmptyFile();

        CReference c = CReference.measure(dir, 0.05);
        BenchReport.write(new BenchReport(JmhResults.of(runs), c), dir, "smoke", Optional.of(json.toString()));

        assertThat(dir.resolve("throughput.png")).isNotEmptyFile();
        assertThat(Files.readAllBytes(dir.resolve("throughput.png"))).startsWith(0x89, 'P', 'N', 'G');
        String report = Files.readString(dir.resolve("report.md"));
        assertThat(report).contains("## Machine", "CPU", "kernel", "JDK", "IDE WRITE DMA 64k (16 pieces)", "Targets");
        Map<String, Object> summary = BenchReportTest.summary(dir);
        assertThat(summary).containsOnlyKeys("ide_write_64k_16prd", "ide_write_1m_64prd", "ide_read_64k_16prd",
                "alloc_bytes_per_op", "map_unmap_64k_over_copy_64k", "lookup_10000_over_1", "two_thread_scaling",
                "two_thread_scaling_over_control", "map_unmap_64k_over_copy_64k_spread", "lookup_10000_over_1_spread",
                "two_thread_scaling_spread", "two_thread_scaling_over_control_spread",
                "ring_index_acquire_load_over_raw", "ring_index_acquire_load_over_raw_spread",
                "map_unmap_iommu_64k_over_plain", "map_unmap_iommu_64k_over_plain_spread",
                "dma_blk_io_overhead_over_ide_engine", "dma_blk_io_overhead_over_ide_engine_spread",
                "virtio_blk_read_4k_qd32_iops", "virtio_blk_read_4k_qd32_iops_spread",
                "virtio_blk_mq_scaling", "virtio_blk_mq_scaling_spread",
                "virtio_blk_mq_scaling_over_control", "virtio_blk_mq_scaling_over_control_spread",
                "virtio_blk_alloc_bytes_per_request", "virtio_blk_alloc_bytes_per_request_spread",
                "virtio_blk_write_64k_qd1_map_over_copy", "virtio_blk_write_64k_qd1_map_over_copy_spread",
                "net_rx_64b_frame_in_64k_buffer_over_2k_buffer", "net_rx_64b_frame_in_64k_buffer_over_2k_buffer_spread",
                "net_rx_9000b_map_over_copy", "net_rx_9000b_map_over_copy_spread",
                "net_tx_rx_alloc_bytes_per_frame", "net_tx_rx_alloc_bytes_per_frame_spread",
                "nbd_write_64k_qd1_vs_qemu_img_bench", "nbd_write_64k_qd1_vs_qemu_img_bench_spread",
                "nbd_write_64k_qd16_vs_qemu_img_bench", "nbd_write_64k_qd16_vs_qemu_img_bench_spread",
                "nbd_write_64k_alloc_bytes_per_op", "nbd_write_64k_alloc_bytes_per_op_spread",
                "nbd_write_64k_qd16_alloc_bytes_per_op", "nbd_write_64k_qd16_alloc_bytes_per_op_spread",
                "qemu_img_bench_write_64k_qd1_ops_per_s", "qemu_img_bench_write_64k_qd1_ops_per_s_spread",
                "qemu_img_bench_write_64k_qd16_ops_per_s", "qemu_img_bench_write_64k_qd16_ops_per_s_spread",
                "vhost_user_blk_guest_randread_4k_qd32_vs_qsd", "vhost_user_blk_guest_randread_4k_qd32_vs_qsd_spread",
                "vhost_user_blk_guest_seqwrite_64k_qd1_vs_qsd", "vhost_user_blk_guest_seqwrite_64k_qd1_vs_qsd_spread",
                "vhost_user_blk_alloc_bytes_per_request", "vhost_user_blk_alloc_bytes_per_request_spread",
                "migration_ram_throughput_over_socket", "migration_ram_throughput_over_socket_spread",
                "migration_downtime_ms_1g_idle", "migration_downtime_ms_1g_idle_spread",
                "migration_alloc_bytes_per_page", "migration_alloc_bytes_per_page_spread");
        @SuppressWarnings("unchecked")
        Map<String, Object> write64k = (Map<String, Object>) summary.get("ide_write_64k_16prd");
        assertThat(write64k).containsOnlyKeys("copy_ops_s", "map_filechannel_ops_s", "map_native_ops_s", "map_over_copy",
                "copy_ops_s_spread", "map_filechannel_ops_s_spread", "map_native_ops_s_spread", "map_over_copy_spread");
        assertThat((Double) write64k.get("copy_ops_s")).isPositive();
        assertThat((Double) write64k.get("map_native_ops_s")).isPositive();
        assertThat(write64k.get("map_filechannel_ops_s")).as("not run: null, not a made-up number").isNull();
        assertThat((Double) summary.get("map_unmap_64k_over_copy_64k")).isPositive();
        assertThat(summary.get("two_thread_scaling")).isNull();
    }

    @Test
    void aDecidingBatchRunsInRoundsAndEachCaseGetsOneForkPerRound(@TempDir Path dir) throws Exception {
        BenchSuite.Batch batch = new BenchSuite.Batch("MapBenchmark\\.mapUnmapRam|MapBenchmark\\.copyRead",
                Map.of("size", List.of("4k")), BenchSuite.Role.DECIDING, BenchSuite.Pace.LOCAL);
        Map<Integer, List<Double>> qemuImg = new HashMap<>();

        List<RunResult> merged = BenchSuite.run(List.of(batch), 2, qemuImg);

        assertThat(merged).hasSize(2);
        for (RunResult run : merged) {
            assertThat(run.getBenchmarkResults()).as("one fork per round").hasSize(2);
            assertThat(run.getParams().getForks()).as("JMH's JSON tells the forks").isEqualTo(2);
            assertThat(run.getParams().getParam("size")).isEqualTo("4k");
        }
        JmhResults results = JmhResults.of(merged);
        assertThat(results.find("MapBenchmark.copyRead", "size", "4k").orElseThrow().forkScores()).hasSize(2)
                .allSatisfy(score -> assertThat(score).isPositive());
        assertThat(qemuImg).as("no qemu-img reference for this batch").isEmpty();
        Path json = dir.resolve("results.json");
        ResultFormatFactory.getInstance(ResultFormatType.JSON, json.toString()).writeOut(merged);
        assertThat(Files.readString(json)).contains("\"forks\" : 2");
    }
}
