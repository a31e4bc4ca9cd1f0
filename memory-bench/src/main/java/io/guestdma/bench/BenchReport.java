package io.guestdma.bench;

import io.guestdma.bench.JmhResults.Result;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.function.DoublePredicate;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.style.Styler;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;

/**
 * Turns JMH's results into what {@code bin/bench} shows: a table on standard output,
 * {@code report.md} (the tables, the targets and the machine), {@code throughput.png} (copy against
 * map per size, IDE DMA write and read, with the C reference measured on the same machine) and
 * {@code summary.json} (fixed keys for tools).
 *
 * <p>The results come from JMH's Java API ({@link Runner#run()}): {@link BenchSuite} runs the
 * suite, and {@link #main} runs JMH with a command line of its own
 * ({@code BenchReport <output directory> [JMH arguments]}, which is what {@code bin/bench -- ...}
 * does; JMH writes its JSON file itself when the arguments ask for one). Benchmarks missing from
 * the results (a partial run) show as "-" in the tables and {@code null} in the summary. The
 * system property {@code guestdma.bench.cSeconds} sets the C reference's time per case (default
 * 1 s).
 */
public final class BenchReport {
    /** C reference from the benchmark issue: pwritev of 64 KiB in 16 pieces from guest RAM, µs. */
    static final double C_PWRITEV_64K_US = 7.6;

    private static final String[] SIZES = {"4k", "64k", "1m"};
    private static final String[] PATHS = {"COPY", "MAP_FILECHANNEL", "MAP_NATIVE"};

    private final JmhResults results;
    private final CReference c;
    /** qemu-img bench's 64 KiB writes per second against a qemu-nbd export, by queue depth, one per run. */
    private final Map<Integer, List<Double>> qemuImg;
    /** fio in a Linux guest, ours over qemu-storage-daemon: {@link VhostUserGuestBench}'s keys to their ratios. */
    private final Map<String, List<Double>> vhostGuest;

    BenchReport(JmhResults results, CReference c) {
        this(results, c, Map.of());
    }

    BenchReport(JmhResults results, CReference c, Map<Integer, List<Double>> qemuImg) {
        this(results, c, qemuImg, Map.of());
    }

    BenchReport(JmhResults results, CReference c, Map<Integer, List<Double>> qemuImg,
                Map<String, List<Double>> vhostGuest) {
        this.results = results;
        this.c = c;
        this.qemuImg = Map.copyOf(qemuImg);
        this.vhostGuest = Map.copyOf(vhostGuest);
    }

    /**
     * Runs JMH with the given command line and writes the report of what it returns.
     *
     * @param args the output directory, then JMH's command-line arguments
     * @throws IOException if a report file cannot be written
     */
    public static void main(String[] args) throws IOException {
        if (args.length < 1) {
            System.err.println("usage: BenchReport <output directory> [JMH arguments]");
            System.exit(2);
        }
        Path out = Path.of(args[0]);
        String[] jmhArgs = Arrays.copyOfRange(args, 1, args.length);
        CommandLineOptions options;
        try {
            options = new CommandLineOptions(jmhArgs);
        } catch (CommandLineOptionException e) {
            System.err.println("BenchReport: bad JMH arguments: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (options.shouldHelp() || options.shouldList() || options.shouldListWithParams()
                || options.shouldListProfilers() || options.shouldListResultFormats()) {
            org.openjdk.jmh.Main.main(jmhArgs);
            return;
        }
        Collection<RunResult> runs;
        try {
            runs = BenchSuite.runWhenFree(options);
        } catch (RunnerException e) {
            System.err.println("BenchReport: JMH failed: " + e.getMessage());
            System.exit(1);
            return;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            System.exit(1);
            return;
        }
        if (runs.isEmpty()) {
            System.err.println("BenchReport: JMH returned no results (no benchmark matched, or every one failed)");
            System.exit(1);
        }
        write(JmhResults.of(runs), out, String.join(" ", jmhArgs), Optional.ofNullable(options.getResult().orElse(null)));
    }

    /**
     * Measures the C reference and writes {@code summary.json}, {@code throughput.png} and
     * {@code report.md} into {@code out}, and prints the tables.
     *
     * @param results    the results to report
     * @param out        the output directory, created if missing
     * @param command    how JMH was run, for the report
     * @param resultFile the JSON file JMH wrote, if it wrote one
     * @throws IOException if a file cannot be written
     */
    static void write(JmhResults results, Path out, String command, Optional<String> resultFile) throws IOException {
        write(results, out, command, resultFile, Map.of());
    }

    /**
     * Like {@link #write(JmhResults, Path, String, Optional)}, with measurements made outside JMH
     * in the same run; measures {@code qemu-img bench} itself ({@link QemuImgBench#RUNS} runs per
     * depth, after JMH) when the results have the NBD cases.
     *
     * @param results    the results to report
     * @param out        the output directory, created if missing
     * @param command    how JMH was run, for the report
     * @param resultFile the JSON file JMH wrote, if it wrote one
     * @param vhostGuest {@link VhostUserGuestBench#measure(VhostUserGuestBench.Plan)}'s ratios (empty if not measured)
     * @throws IOException if a file cannot be written
     */
    static void write(JmhResults results, Path out, String command, Optional<String> resultFile,
                      Map<String, List<Double>> vhostGuest) throws IOException {
        Map<Integer, List<Double>> qemuImg = new java.util.HashMap<>();
        if (results.find("NbdWriteBenchmark.writeQd1").isPresent()) {
            System.err.println("guestdma bench: qemu-img bench against qemu-nbd, queue depth 1 and 16, "
                    + QemuImgBench.RUNS + " runs each...");
            for (int depth : new int[] {1, 16}) {
                List<Double> runs = QemuImgBench.writesPerSecond(depth, BenchSuite.QEMU_IMG_WRITES);
                if (!runs.isEmpty()) {
                    qemuImg.put(depth, runs);
                }
            }
        }
        write(results, out, command, resultFile, qemuImg, vhostGuest);
    }

    /**
     * Measures the C reference and writes the report of results and measurements made outside JMH
     * in the same run.
     *
     * @param results    the results to report
     * @param out        the output directory, created if missing
     * @param command    how JMH was run, for the report
     * @param resultFile the JSON file JMH wrote, if it wrote one
     * @param qemuImg    {@code qemu-img bench}'s writes per second per queue depth, one per run; when
     *                   there are as many runs as NBD forks, run i was made beside fork i
     *                   ({@link BenchSuite}'s rounds) and the ratios pair them
     * @param vhostGuest {@link VhostUserGuestBench#measure(VhostUserGuestBench.Plan)}'s ratios (empty if not measured)
     * @throws IOException if a file cannot be written
     */
    static void write(JmhResults results, Path out, String command, Optional<String> resultFile,
                      Map<Integer, List<Double>> qemuImg, Map<String, List<Double>> vhostGuest) throws IOException {
        double cSeconds = Double.parseDouble(System.getProperty("guestdma.bench.cSeconds", "1"));
        System.err.println("guestdma bench: C reference (" + CReference.SOURCE + ", " + cSeconds + " s per case)...");
        CReference c = CReference.measure(ImageFile.directory(), cSeconds);
        write(new BenchReport(results, c, qemuImg, vhostGuest), out, command, resultFile);
    }

    /**
     * Writes {@code summary.json}, {@code throughput.png} and {@code report.md} into {@code out} and
     * prints the tables.
     *
     * @param report     the results and the C reference to report
     * @param out        the output directory, created if missing
     * @param command    how JMH was run, for the report
     * @param resultFile the JSON file JMH wrote, if it wrote one
     * @throws IOException if a file cannot be written
     */
    static void write(BenchReport report, Path out, String command, Optional<String> resultFile) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Files.createDirectories(out);
        String tables = report.tables();
        System.out.println();
        System.out.println(tables);
        Files.writeString(out.resolve("summary.json"), report.summaryJson());
        Path chart = report.chart(out);
        Files.writeString(out.resolve("report.md"), report.markdown(tables, command, chart));
        System.out.println("guestdma bench: wrote " + out.resolve("report.md") + ", " + out.resolve("summary.json")
                + ", " + chart + resultFile.map(f -> " and " + f).orElse(""));
    }

    // ------------------------------------------------------------------ lookups

    /** Each fork's ops/s of a case; empty if the run did not have it. */
    private List<Double> opsForks(String benchmark, String... params) {
        return results.find(benchmark, params).map(Result::forkOpsPerSecond).orElse(List.of());
    }

    /** Each fork's B/op of a case; empty if the run did not have it or ran without {@code -prof gc}. */
    private List<Double> allocForks(String benchmark, String... params) {
        return results.find(benchmark, params).map(Result::forkBytesPerOp).orElse(List.of());
    }

    private OptionalDouble ops(String benchmark, String... params) {
        return median(opsForks(benchmark, params));
    }

    private OptionalDouble alloc(String benchmark, String... params) {
        return median(allocForks(benchmark, params));
    }

    private static OptionalDouble median(List<Double> forks) {
        return Figure.of(forks).map(f -> OptionalDouble.of(f.median())).orElse(OptionalDouble.empty());
    }

    /**
     * A ratio per fork: fork i of {@code a} over fork i of {@code b}, so each fork index is one
     * replicate of the whole comparison and the spread of the ratios is the spread a user would
     * see between runs. Empty if either side was not run.
     */
    private static List<Double> ratio(List<Double> a, List<Double> b) {
        List<Double> r = new ArrayList<>();
        for (int i = 0; i < Math.min(a.size(), b.size()); i++) {
            r.add(b.get(i) > 0 ? a.get(i) / b.get(i) : Double.NaN);
        }
        return r;
    }

    private List<Double> pathOps(String benchmark, String size, String path) {
        return opsForks(benchmark, "size", size, "path", path);
    }

    // ------------------------------------------------------------------ summary.json

    /**
     * The summary: every key of earlier versions with the median over forks as its value, and
     * beside each a {@code <key>_spread} object ({@code min}, {@code max}, {@code forks}); allocation
     * keys also carry {@code <key>_worst_fork}. Keys of cases not run are {@code null}.
     */
    String summaryJson() {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("ide_write_64k_16prd", dataPath("IdeDmaBenchmark.write", "64k"));
        root.put("ide_write_1m_64prd", dataPath("IdeDmaBenchmark.write", "1m"));
        root.put("ide_read_64k_16prd", dataPath("IdeDmaBenchmark.read", "64k"));
        Map<String, Object> allocs = new LinkedHashMap<>();
        allocKey(allocs, "map_unmap_ram", allocForks("MapBenchmark.mapUnmapRam", "size", "64k"));
        allocKey(allocs, "ide_write_64k_native", allocForks("IdeDmaBenchmark.write", "size", "64k", "path", "MAP_NATIVE"));
        allocKey(allocs, "ide_write_64k_filechannel",
                allocForks("IdeDmaBenchmark.write", "size", "64k", "path", "MAP_FILECHANNEL"));
        root.put("alloc_bytes_per_op", allocs);
        key(root, "map_unmap_64k_over_copy_64k", mapUnmapOverCopy("64k"));
        key(root, "lookup_10000_over_1", lookupRatio());
        key(root, "two_thread_scaling", twoThreadScaling());
        key(root, "two_thread_scaling_over_control", twoThreadScalingOverControl());
        key(root, "ring_index_acquire_load_over_raw", ringOverRaw());
        key(root, "map_unmap_iommu_64k_over_plain", iommuOverPlain());
        key(root, "dma_blk_io_overhead_over_ide_engine", dmaBlockIoOverIde());
        key(root, "virtio_blk_read_4k_qd32_iops", opsForks("VirtioBlkBenchmark.read4kQd32Null"));
        key(root, "virtio_blk_mq_scaling", virtioMqScaling());
        key(root, "virtio_blk_mq_scaling_over_control", virtioMqScalingOverControl());
        key(root, "virtio_blk_alloc_bytes_per_request", allocForks("VirtioBlkBenchmark.read4kQd32Native"));
        key(root, "virtio_blk_write_64k_qd1_map_over_copy", virtioMapOverCopy());
        key(root, "net_rx_64b_frame_in_64k_buffer_over_2k_buffer", netRxLargeOverSmallBuffer());
        key(root, "net_rx_9000b_map_over_copy", netRxMapOverCopy());
        key(root, "net_tx_rx_alloc_bytes_per_frame", allocForks("NetLoopbackBenchmark.txRx1514b"));
        key(root, "nbd_write_64k_qd1_vs_qemu_img_bench", nbdOverQemuImg("NbdWriteBenchmark.writeQd1", 1));
        key(root, "nbd_write_64k_qd16_vs_qemu_img_bench", nbdOverQemuImg("NbdWriteBenchmark.writeQd16", 16));
        key(root, "nbd_write_64k_alloc_bytes_per_op", allocForks("NbdWriteBenchmark.writeQd1"));
        // The asynchronous path's own figure: its CompletableFuture per request shows here.
        key(root, "nbd_write_64k_qd16_alloc_bytes_per_op", allocForks("NbdWriteBenchmark.writeQd16"));
        key(root, "migration_ram_throughput_over_socket", migrationOverRaw());
        key(root, "migration_downtime_ms_1g_idle", migrationDowntimeMs());
        key(root, "migration_alloc_bytes_per_page", migrationAllocPerPage());
        // The reference itself: its median is what the two ratios above divide by.
        key(root, "qemu_img_bench_write_64k_qd1_ops_per_s", qemuImg.getOrDefault(1, List.of()));
        key(root, "qemu_img_bench_write_64k_qd16_ops_per_s", qemuImg.getOrDefault(16, List.of()));
        // One ratio per round of fio jobs in the guest's one boot (ours and qemu-storage-daemon's), not per fork.
        key(root, VhostUserGuestBench.RANDREAD, vhostGuest.getOrDefault(VhostUserGuestBench.RANDREAD, List.of()));
        key(root, VhostUserGuestBench.SEQWRITE, vhostGuest.getOrDefault(VhostUserGuestBench.SEQWRITE, List.of()));
        key(root, "vhost_user_blk_alloc_bytes_per_request", allocForks("VhostUserBlkBenchmark.read4kQd32"));
        StringBuilder sb = new StringBuilder();
        write(sb, root, "");
        return sb.append('\n').toString();
    }

    private static void key(Map<String, Object> map, String name, List<Double> forks) {
        Optional<Figure> figure = Figure.of(forks);
        map.put(name, figure.map(f -> OptionalDouble.of(f.median())).orElse(OptionalDouble.empty()));
        map.put(name + "_spread", figure.<Object>map(BenchReport::spread).orElse(OptionalDouble.empty()));
    }

    private static void allocKey(Map<String, Object> map, String name, List<Double> forks) {
        key(map, name, forks);
        map.put(name + "_worst_fork", Figure.of(forks).map(f -> OptionalDouble.of(f.max())).orElse(OptionalDouble.empty()));
    }

    private static Map<String, Object> spread(Figure f) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("min", OptionalDouble.of(f.min()));
        m.put("max", OptionalDouble.of(f.max()));
        m.put("forks", OptionalDouble.of(f.forks()));
        return m;
    }

    private Map<String, Object> dataPath(String benchmark, String size) {
        Map<String, Object> m = new LinkedHashMap<>();
        key(m, "copy_ops_s", pathOps(benchmark, size, "COPY"));
        key(m, "map_filechannel_ops_s", pathOps(benchmark, size, "MAP_FILECHANNEL"));
        key(m, "map_native_ops_s", pathOps(benchmark, size, "MAP_NATIVE"));
        key(m, "map_over_copy", mapOverCopy(benchmark, size));
        return m;
    }

    /** The issue's map_over_copy of a data-path benchmark: native map over copy. */
    private List<Double> mapOverCopy(String benchmark, String size) {
        return ratio(pathOps(benchmark, size, "MAP_NATIVE"), pathOps(benchmark, size, "COPY"));
    }

    /** Time of an acquire load through a RamView over the same with a raw VarHandle: ops raw / ops view. */
    private List<Double> ringOverRaw() {
        return ratio(opsForks("RingViewBenchmark.acquireRaw"), opsForks("RingViewBenchmark.acquireThroughView"));
    }

    /** Time of a 64 KiB map+unmap through a warm IOMMU over the same through a plain device space. */
    private List<Double> iommuOverPlain() {
        return ratio(opsForks("IommuMapBenchmark.mapUnmapPlain"), opsForks("IommuMapBenchmark.mapUnmapIommu"));
    }

    /** Time of the shared DMA loop alone over the IDE's whole MAP path, both over a null disk. */
    private List<Double> dmaBlockIoOverIde() {
        return ratio(opsForks("IdeOverheadBenchmark.write", "mode", "MAP"), opsForks("DmaBlockIoBenchmark.write"));
    }

    /** RAM migrated per second over the same bytes sent raw to the same receiver, fork by fork. */
    private List<Double> migrationOverRaw() {
        return ratio(opsForks("MigrationBenchmark.migrateRam"), opsForks("MigrationBenchmark.rawBulk"));
    }

    /** The switchover of an idle 1 GiB guest in milliseconds, per fork. */
    private List<Double> migrationDowntimeMs() {
        return opsForks("MigrationDowntimeBenchmark.switchover").stream().map(ops -> 1e3 / ops).toList();
    }

    /** Heap bytes a migration allocates per guest page, per fork. */
    private List<Double> migrationAllocPerPage() {
        return allocForks("MigrationBenchmark.migrateRam").stream()
                .map(bytes -> bytes / MigrationBenchmark.PAGES).toList();
    }

    /**
     * NbdBackend's writes per second over qemu-img bench's at the same depth, measured in this run:
     * fork by fork when each fork had its own qemu-img run beside it, else over their median.
     */
    private List<Double> nbdOverQemuImg(String benchmark, int depth) {
        List<Double> reference = qemuImg.getOrDefault(depth, List.of());
        List<Double> ours = opsForks(benchmark);
        if (reference.size() == ours.size()) {
            return ratio(ours, reference);
        }
        OptionalDouble median = median(reference);
        if (median.isEmpty()) {
            return List.of();
        }
        double perSecond = median.getAsDouble();
        return ours.stream().map(ops -> ops / perSecond).toList();
    }

    /** virtio-blk's 64 KiB QD1 writes, zero-copy over the copy path's heap buffer (native backend). */
    private List<Double> virtioMapOverCopy() {
        return ratio(opsForks("VirtioBlkWriteBenchmark.write64kQd1", "path", "MAP_NATIVE"),
                opsForks("VirtioBlkWriteBenchmark.write64kQd1", "path", "COPY"));
    }

    /** Time per 64-byte frame received into 64 KiB buffers over the same into 2 KiB buffers. */
    private List<Double> netRxLargeOverSmallBuffer() {
        return ratio(opsForks("NetRxBenchmark.rx64b", "bufferBytes", "2048"),
                opsForks("NetRxBenchmark.rx64b", "bufferBytes", "65536"));
    }

    /** virtio-net's 9000-byte frames received zero-copy over the same through the copy path's heap buffer. */
    private List<Double> netRxMapOverCopy() {
        return ratio(opsForks("NetRxMapCopyBenchmark.rx9000b", "path", "MAP"),
                opsForks("NetRxMapCopyBenchmark.rx9000b", "path", "COPY"));
    }

    /** Two queues on two threads over one queue on one, as two_thread_scaling is measured. */
    private List<Double> virtioMqScaling() {
        return ratio(opsForks("VirtioBlkBenchmark.twoQueues"), opsForks("VirtioBlkBenchmark.oneQueue"));
    }

    /** virtio-blk's multiqueue scaling over the machine's (unshared work's), fork by fork, as two_thread_scaling_over_control. */
    private List<Double> virtioMqScalingOverControl() {
        return ratio(virtioMqScaling(), controlScaling());
    }

    private List<Double> twoThreadScaling() {
        return ratio(opsForks("ThreadScalingBenchmark.twoThreads"), opsForks("ThreadScalingBenchmark.oneThread"));
    }

    /** The unshared control's two-thread scaling: the most this machine gives any code in this run. */
    private List<Double> controlScaling() {
        return ratio(opsForks("ThreadScalingBenchmark.cpuOnlyTwoThreads"), opsForks("ThreadScalingBenchmark.cpuOnlyOneThread"));
    }

    /** The library's scaling over the machine's, fork by fork: 1.0 means it scales as well as unshared work. */
    private List<Double> twoThreadScalingOverControl() {
        return ratio(twoThreadScaling(), controlScaling());
    }

    private List<Double> mapUnmapOverCopy(String size) {
        return ratio(opsForks("MapBenchmark.mapUnmapRam", "size", size), opsForks("MapBenchmark.copyRead", "size", size));
    }

    /** Time per op with 10 000 regions over time per op with 1, i.e. the inverse ratio of rates. */
    private List<Double> lookupRatio() {
        return ratio(opsForks("RegionLookupBenchmark.mapUnmap", "regions", "1"),
                opsForks("RegionLookupBenchmark.mapUnmap", "regions", "10000"));
    }

    private static void write(StringBuilder sb, Object value, String indent) {
        switch (value) {
            case Map<?, ?> map -> {
                sb.append("{\n");
                int i = 0;
                for (Map.Entry<?, ?> e : map.entrySet()) {
                    sb.append(indent).append("  \"").append(e.getKey()).append("\": ");
                    write(sb, e.getValue(), indent + "  ");
                    sb.append(++i < map.size() ? ",\n" : "\n");
                }
                sb.append(indent).append('}');
            }
            case OptionalDouble d -> sb.append(d.isPresent() && Double.isFinite(d.getAsDouble())
                    ? new BigDecimal(d.getAsDouble()).round(new MathContext(6)).stripTrailingZeros().toPlainString()
                    : "null");
            default -> throw new IllegalArgumentException("unexpected summary value " + value);
        }
    }

    // ------------------------------------------------------------------ tables

    String tables() {
        StringBuilder sb = new StringBuilder();
        sb.append("Data path (ops/s; map/copy = native map over copy; B/op from JMH's gc profiler: copy / FileChannel / native)\n\n");
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"case", "copy ops/s", "map FileChannel ops/s", "map native ops/s", "map/copy (spread)", "B/op"});
        addDataPathRows(rows, "IdeDmaBenchmark.write", "IDE WRITE DMA");
        addDataPathRows(rows, "IdeDmaBenchmark.read", "IDE READ DMA");
        addDataPathRows(rows, "BlockPathBenchmark.write", "block path write");
        addDataPathRows(rows, "BlockPathBenchmark.read", "block path read");
        sb.append(table(rows)).append('\n');
        sb.append(cReferenceTable());

        sb.append("memory-core (map = map+unmap of guest RAM; copy = copy-path read into a byte[])\n\n");
        rows = new ArrayList<>();
        rows.add(new String[] {"case", "copy ops/s", "map ops/s", "map/copy (spread)", "B/op (copy / map)"});
        for (String size : SIZES) {
            OptionalDouble copy = ops("MapBenchmark.copyRead", "size", size);
            OptionalDouble map = ops("MapBenchmark.mapUnmapRam", "size", size);
            if (copy.isPresent() || map.isPresent()) {
                rows.add(new String[] {"map vs copy " + size, num(copy), num(map), ratioText(mapUnmapOverCopy(size)),
                        bytes(alloc("MapBenchmark.copyRead", "size", size)) + " / "
                                + bytes(alloc("MapBenchmark.mapUnmapRam", "size", size))});
            }
        }
        sb.append(table(rows)).append('\n');

        List<String[]> other = new ArrayList<>();
        other.add(new String[] {"case", "result", "B/op"});
        for (String bytes : new String[] {"512", "4096"}) {
            for (String method : new String[] {"mapUnmapMmioToDevice", "mapUnmapMmioFromDevice"}) {
                results.find("BounceBenchmark." + method, "bytes", bytes).ifPresent(r -> other.add(new String[] {
                        "bounce " + (method.endsWith("ToDevice") ? "TO_DEVICE " : "FROM_DEVICE ") + bytes + " B",
                        num(OptionalDouble.of(r.opsPerSecond())) + " ops/s", bytes(r.bytesPerOp())}));
            }
        }
        for (String m : new String[] {"MAP", "COPY"}) {
            results.find("IdeOverheadBenchmark.write", "mode", m).ifPresent(r -> other.add(new String[] {
                    "IDE WRITE DMA 64k over a null disk, " + m + " (the device's own cost)",
                    String.format(Locale.ROOT, "%.2f us/op", 1e6 / r.opsPerSecond()), bytes(r.bytesPerOp())}));
        }
        for (String n : new String[] {"1", "100", "10000"}) {
            results.find("RegionLookupBenchmark.mapUnmap", "regions", n).ifPresent(r -> other.add(new String[] {
                    "map+unmap, " + n + " region" + (n.equals("1") ? "" : "s"),
                    String.format(Locale.ROOT, "%.1f ns/op", 1e9 / r.opsPerSecond()), bytes(r.bytesPerOp())}));
        }
        for (String[] t : new String[][] {{"oneThread", "map+unmap, 1 thread"}, {"twoThreads", "map+unmap, 2 threads"},
                {"cpuOnlyOneThread", "control (no sharing), 1 thread"}, {"cpuOnlyTwoThreads", "control (no sharing), 2 threads"}}) {
            results.find("ThreadScalingBenchmark." + t[0]).ifPresent(r -> other.add(new String[] {
                    t[1], num(OptionalDouble.of(r.opsPerSecond())) + " ops/s", bytes(r.bytesPerOp())}));
        }
        for (String debug : new String[] {"false", "true"}) {
            results.find("DebugModeBenchmark.mapUnmap", "debug", debug).ifPresent(r -> other.add(new String[] {
                    "map+unmap 4k, DMA debug " + (debug.equals("true") ? "on" : "off"),
                    num(OptionalDouble.of(r.opsPerSecond())) + " ops/s", bytes(r.bytesPerOp())}));
        }
        if (other.size() > 1) {
            sb.append(table(other)).append('\n');
        }
        sb.append("Targets (benchmark issue)\n\n").append(table(targets()));
        return sb.toString();
    }

    private void addDataPathRows(List<String[]> rows, String benchmark, String label) {
        for (String size : SIZES) {
            OptionalDouble copy = median(pathOps(benchmark, size, "COPY"));
            OptionalDouble fc = median(pathOps(benchmark, size, "MAP_FILECHANNEL"));
            OptionalDouble nat = median(pathOps(benchmark, size, "MAP_NATIVE"));
            if (copy.isEmpty() && fc.isEmpty() && nat.isEmpty()) {
                continue;
            }
            StringBuilder b = new StringBuilder();
            for (String path : PATHS) {
                b.append(b.isEmpty() ? "" : " / ").append(bytes(alloc(benchmark, "size", size, "path", path)));
            }
            rows.add(new String[] {label + " " + size + shape(size), num(copy), num(fc), num(nat),
                    ratioText(mapOverCopy(benchmark, size)),
                    b.toString()});
        }
    }

    private static String shape(String size) {
        TransferShape s = TransferShape.of(size);
        return " (" + s.pieces() + " piece" + (s.pieces() == 1 ? "" : "s") + ")";
    }

    private List<String[]> targets() {
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"target", "measured", "spread over forks", "goal", "met"});
        target(rows, "ide_write_64k_16prd map/copy", mapOverCopy("IdeDmaBenchmark.write", "64k"), ">= 1.5", x -> x >= 1.5, "%.2f");
        target(rows, "ide_write_1m_64prd map/copy", mapOverCopy("IdeDmaBenchmark.write", "1m"), ">= 1.65", x -> x >= 1.65, "%.2f");
        List<Double> usPerOp = pathOps("IdeDmaBenchmark.write", "64k", "MAP_NATIVE").stream().map(o -> 1e6 / o).toList();
        OptionalDouble measuredC = c.ops("write", "64k");
        double cUs = measuredC.isPresent() ? 1e6 / measuredC.getAsDouble() : C_PWRITEV_64K_US;
        String cSource = measuredC.isPresent() ? "C pwritev here: " : "C pwritev, benchmark issue: ";
        target(rows, "ide_write_64k_16prd native, us/op (" + cSource + String.format(Locale.ROOT, "%.2f", cUs) + ")", usPerOp,
                "<= " + String.format(Locale.ROOT, "%.2f", cUs / 0.9), x -> x <= cUs / 0.9, "%.2f");
        target(rows, "alloc map_unmap_ram, B/op (spread max: worst fork)", allocForks("MapBenchmark.mapUnmapRam", "size", "64k"),
                "0", x -> x < 0.5, "%.3f");
        target(rows, "alloc ide_write_64k_native, B/op (spread max: worst fork)",
                allocForks("IdeDmaBenchmark.write", "size", "64k", "path", "MAP_NATIVE"), "<= 1", x -> x <= 1, "%.2f");
        target(rows, "map_unmap_64k_over_copy_64k", mapUnmapOverCopy("64k"), ">= 50", x -> x >= 50, "%.0f");
        target(rows, "lookup_10000_over_1", lookupRatio(), "<= 1.5", x -> x <= 1.5, "%.2f");
        target(rows, "two_thread_scaling", twoThreadScaling(), ">= 1.8", x -> x >= 1.8, "%.2f");
        target(rows, "two_thread_scaling_over_control", twoThreadScalingOverControl(), ">= 0.95", x -> x >= 0.95, "%.2f");
        target(rows, "ring_index_acquire_load_over_raw", ringOverRaw(), "<= 1.5", x -> x <= 1.5, "%.2f");
        target(rows, "map_unmap_iommu_64k_over_plain", iommuOverPlain(), "<= 2.0", x -> x <= 2.0, "%.2f");
        target(rows, "dma_blk_io_overhead_over_ide_engine", dmaBlockIoOverIde(), "<= 1.05", x -> x <= 1.05, "%.2f");
        target(rows, "nbd_write_64k_qd1_vs_qemu_img_bench", nbdOverQemuImg("NbdWriteBenchmark.writeQd1", 1), ">= 1.0",
                x -> x >= 1.0, "%.2f");
        target(rows, "nbd_write_64k_qd16_vs_qemu_img_bench", nbdOverQemuImg("NbdWriteBenchmark.writeQd16", 16), ">= 1.0",
                x -> x >= 1.0, "%.2f");
        target(rows, "nbd_write_64k_alloc_bytes_per_op", allocForks("NbdWriteBenchmark.writeQd1"), "<= 64",
                x -> x <= 64, "%.1f");
        target(rows, "nbd_write_64k_qd16_alloc_bytes_per_op", allocForks("NbdWriteBenchmark.writeQd16"), "<= 64",
                x -> x <= 64, "%.1f");
        OptionalDouble ideRatio = median(mapOverCopy("IdeDmaBenchmark.write", "64k"));
        target(rows, "virtio_blk_write_64k_qd1_map_over_copy (IDE's 64k map/copy here: "
                        + (ideRatio.isPresent() ? String.format(Locale.ROOT, "%.2f", ideRatio.getAsDouble()) : "not run") + ")",
                ideRatio.isPresent() ? virtioMapOverCopy() : List.of(),
                ">= IDE's", x -> x >= ideRatio.getAsDouble(), "%.2f");
        target(rows, "virtio_blk_mq_scaling", virtioMqScaling(), ">= 1.6", x -> x >= 1.6, "%.2f");
        target(rows, "virtio_blk_mq_scaling_over_control", virtioMqScalingOverControl(), ">= 0.95", x -> x >= 0.95,
                "%.2f");
        target(rows, "virtio_blk_alloc_bytes_per_request (spread max: worst fork)",
                allocForks("VirtioBlkBenchmark.read4kQd32Native"), "<= 16", x -> x <= 16, "%.2f");
        target(rows, "net_rx_64b_frame_in_64k_buffer_over_2k_buffer", netRxLargeOverSmallBuffer(), "<= 1.2",
                x -> x <= 1.2, "%.2f");
        target(rows, "net_rx_9000b_map_over_copy", netRxMapOverCopy(), ">= 1.5", x -> x >= 1.5, "%.2f");
        target(rows, "net_tx_rx_alloc_bytes_per_frame (spread max: worst fork)",
                allocForks("NetLoopbackBenchmark.txRx1514b"), "<= 16", x -> x <= 16, "%.2f");
        target(rows, VhostUserGuestBench.RANDREAD + " (spread: rounds in one boot)",
                vhostGuest.getOrDefault(VhostUserGuestBench.RANDREAD, List.of()), ">= 1.0", x -> x >= 1.0, "%.2f");
        target(rows, VhostUserGuestBench.SEQWRITE + " (spread: rounds in one boot)",
                vhostGuest.getOrDefault(VhostUserGuestBench.SEQWRITE, List.of()), ">= 1.0", x -> x >= 1.0, "%.2f");
        target(rows, "vhost_user_blk_alloc_bytes_per_request (spread max: worst fork)",
                allocForks("VhostUserBlkBenchmark.read4kQd32"), "<= 16", x -> x <= 16, "%.2f");
        target(rows, "migration_ram_throughput_over_socket", migrationOverRaw(), ">= 0.8", x -> x >= 0.8, "%.2f");
        target(rows, "migration_downtime_ms_1g_idle", migrationDowntimeMs(), "<= 50", x -> x <= 50, "%.1f");
        target(rows, "migration_alloc_bytes_per_page (spread max: worst fork)", migrationAllocPerPage(), "<= 1",
                x -> x <= 1, "%.3f");
        Figure.of(controlScaling()).ifPresent(control -> rows.add(new String[] {
                "(control: two_thread_scaling of unshared work)", String.format(Locale.ROOT, "%.2f", control.median()),
                spreadText(control, "%.2f"), "", ""}));
        return rows;
    }

    private static void target(List<String[]> rows, String name, List<Double> forks, String goal, DoublePredicate met,
                               String format) {
        Optional<Figure> figure = Figure.of(forks);
        rows.add(new String[] {name,
                figure.map(f -> String.format(Locale.ROOT, format, f.median())).orElse("-"),
                figure.map(f -> spreadText(f, format)).orElse("-"),
                goal,
                figure.map(f -> f.verdict(met)).orElse("not run")});
    }

    /** "min - max (n forks)", or "1 fork" when there is nothing to spread. */
    private static String spreadText(Figure f, String format) {
        if (f.forks() == 1) {
            return "1 fork";
        }
        return String.format(Locale.ROOT, format + " - " + format + " (%d forks)", f.min(), f.max(), f.forks());
    }

    private static String num(OptionalDouble d) {
        if (d.isEmpty()) {
            return "-";
        }
        double v = d.getAsDouble();
        return v >= 100 ? String.format(Locale.ROOT, "%,.0f", v) : String.format(Locale.ROOT, "%.2f", v);
    }

    /** The median ratio, and its spread over forks when there was more than one. */
    private static String ratioText(List<Double> forks) {
        return Figure.of(forks).map(f -> String.format(Locale.ROOT, "%.2fx", f.median())
                + (f.forks() > 1 ? String.format(Locale.ROOT, " (%.2f-%.2f)", f.min(), f.max()) : "")).orElse("-");
    }

    private static String bytes(OptionalDouble d) {
        return d.isPresent() ? String.format(Locale.ROOT, "%.0f", Math.max(0, d.getAsDouble())) : "-";
    }

    /** A plain-text table that also reads as a Markdown table. */
    static String table(List<String[]> rows) {
        int cols = rows.get(0).length;
        int[] width = new int[cols];
        for (String[] r : rows) {
            for (int c = 0; c < cols; c++) {
                width[c] = Math.max(width[c], r[c].length());
            }
        }
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < rows.size(); i++) {
            String[] r = rows.get(i);
            sb.append('|');
            for (int c = 0; c < cols; c++) {
                String cell = r[c];
                String pad = " ".repeat(width[c] - cell.length());
                sb.append(' ').append(c == 0 ? cell + pad : pad + cell).append(" |");
            }
            sb.append('\n');
            if (i == 0) {
                sb.append('|');
                for (int c = 0; c < cols; c++) {
                    sb.append(c == 0 ? ":" : "-").append("-".repeat(width[c])).append(c == 0 ? "-|" : ":|");
                }
                sb.append('\n');
            }
        }
        return sb.toString();
    }

    // ------------------------------------------------------------------ C reference

    private String cReferenceTable() {
        if (!(c instanceof CReference.Measured)) {
            return "C reference: not measured on this machine, " + ((CReference.NotMeasured) c).reason() + "\n\n";
        }
        StringBuilder sb = new StringBuilder("C reference on this machine (" + CReference.SOURCE
                + ": pwritev/preadv of the same shapes, no JVM; native/C = the map path's share of that limit)\n\n");
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"case", "C ops/s", "C us/op", "map native ops/s", "native/C"});
        for (String[] d : new String[][] {{"write", "IdeDmaBenchmark.write", "IDE WRITE DMA"}, {"read", "IdeDmaBenchmark.read", "IDE READ DMA"}}) {
            for (String size : SIZES) {
                OptionalDouble ops = c.ops(d[0], size);
                OptionalDouble nat = median(pathOps(d[1], size, "MAP_NATIVE"));
                rows.add(new String[] {d[2] + " " + size + shape(size), num(ops),
                        ops.isPresent() ? String.format(Locale.ROOT, "%.1f", 1e6 / ops.getAsDouble()) : "-", num(nat),
                        ops.isPresent() && nat.isPresent()
                                ? String.format(Locale.ROOT, "%.2fx", nat.getAsDouble() / ops.getAsDouble()) : "-"});
            }
        }
        return sb.append(table(rows)).append('\n').toString();
    }

    private String cReferenceNote() {
        String issue = "the benchmark issue's C figures for a VM of this kind: `pwritev` of 64 KiB in 16 pieces "
                + C_PWRITEV_64K_US + " us, the double-copy path 11.1 us (1.48x); 1 MiB in 64 pieces 82.5 vs 135.5 us (1.64x).";
        return switch (c) {
            case CReference.Measured m -> "The C reference was measured on this machine right after the suite (" + CReference.SOURCE
                    + ", built with " + m.compiler() + " -O2): the same transfer shapes with bare `pwritev`/`preadv` on a "
                    + "64 MiB image in the same directory, the limit line in the chart. For comparison, " + issue;
            case CReference.NotMeasured n -> "The C reference was NOT measured on this machine (" + n.reason()
                    + "); install a C compiler to get the limit line. Meanwhile, " + issue;
        };
    }

    // ------------------------------------------------------------------ chart

    Path chart(Path out) throws IOException {
        List<CategoryChart> charts = new ArrayList<>();
        for (String[] kind : new String[][] {{"IdeDmaBenchmark.write", "IDE WRITE DMA: guest RAM to image"},
                {"IdeDmaBenchmark.read", "IDE READ DMA: image to guest RAM"}}) {
            String title = kind[1] + (c instanceof CReference.Measured ? "" : " (no C reference)");
            CategoryChart chart = new CategoryChartBuilder().width(640).height(480).title(title)
                    .xAxisTitle("transfer (PRD pieces)").yAxisTitle("MiB/s (higher is better)").build();
            chart.getStyler().setLegendPosition(Styler.LegendPosition.InsideNW);
            chart.getStyler().setLabelsVisible(false);
            chart.getStyler().setChartBackgroundColor(java.awt.Color.WHITE);
            List<String> x = new ArrayList<>();
            for (String size : SIZES) {
                x.add(size + shape(size));
            }
            for (String[] series : new String[][] {{"COPY", "copy (heap byte[], pre-2009)"},
                    {"MAP_FILECHANNEL", "map, FileChannel"}, {"MAP_NATIVE", "map, native pwritev/preadv"}}) {
                List<Double> y = new ArrayList<>();
                for (String size : SIZES) {
                    OptionalDouble o = median(pathOps(kind[0], size, series[0]));
                    y.add(o.isPresent() ? o.getAsDouble() * TransferShape.of(size).bytes() / (1 << 20) : 0.0);
                }
                chart.addSeries(series[1], x, y);
            }
            if (c instanceof CReference.Measured) {
                String direction = kind[0].endsWith("write") ? "write" : "read";
                List<Double> y = new ArrayList<>();
                for (String size : SIZES) {
                    y.add(c.ops(direction, size).orElse(0) * TransferShape.of(size).bytes() / (1 << 20));
                }
                chart.addSeries("C " + (direction.equals("write") ? "pwritev" : "preadv") + " alone, this machine (limit)", x, y);
            }
            charts.add(chart);
        }
        Path png = out.resolve("throughput.png");
        BitmapEncoder.saveBitmap(charts, 1, 2, out.resolve("throughput").toString(), BitmapEncoder.BitmapFormat.PNG);
        return png;
    }

    // ------------------------------------------------------------------ report.md

    String markdown(String tables, String command, Path chart) {
        StringBuilder sb = new StringBuilder();
        sb.append("# guestdma benchmark report\n\n");
        sb.append("Generated ").append(ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME)).append(" by `bin/bench`");
        if (!command.isBlank()) {
            sb.append(" (JMH: `").append(command).append("`)");
        }
        sb.append(".\n\n![copy vs map](").append(chart.getFileName()).append(")\n\n");
        sb.append("## Machine\n\n");
        for (Map.Entry<String, String> e : MachineFacts.collect().entrySet()) {
            sb.append("- ").append(e.getKey()).append(": ").append(e.getValue()).append('\n');
        }
        sb.append("\n## Results\n\n");
        for (String block : tables.split("\n\n")) {
            if (block.startsWith("|")) {
                sb.append(block).append("\n\n");
            } else {
                sb.append("### ").append(block.strip()).append("\n\n");
            }
        }
        sb.append("""
                ## How to read this

                - **copy** is the engine's COPY mode: guest RAM copied into one heap `byte[]` per chunk and \
                written with `FileChannel.write` of that heap buffer (the JDK copies it once more into a \
                temporary direct buffer). **map** is the zero-copy path: PRD table -> SG list -> map -> \
                IoVector -> backend -> unmap. The registers, the PRD walk and the image are the same.
                - %s
                - B/op is JMH's `gc.alloc.rate.norm`: Java heap bytes allocated per operation.
                - A fork is one fresh JVM; its figure is the mean of its measurement iterations. The cases \
                that decide targets run in several forks, and every figure here is the **median over \
                forks**. A ratio is taken fork by fork (fork i of one case over fork i of the other) and \
                then its median. The **spread** is the smallest and the largest fork (in summary.json: \
                `<key>_spread` with `min`, `max` and `forks`; allocation keys also `<key>_worst_fork`).
                - **two_thread_scaling_over_control** is the map path's 2-thread scaling over the \
                unshared control's in the same fork: 1.00 means the library scales as well as this machine \
                lets any code scale, whatever the machine's own limit (other load, SMT siblings) is. \
                **virtio_blk_mq_scaling_over_control** is the same for virtio-blk's two queues on two threads.
                - **met**: `yes` when every fork meets the goal, `NO` when none does, `not decided` when \
                the spread straddles the goal, so one run cannot tell; run again or run the full suite.
                """.formatted(cReferenceNote()));
        return sb.toString();
    }

}
