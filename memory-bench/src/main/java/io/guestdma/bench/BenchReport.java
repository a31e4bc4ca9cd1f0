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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.function.DoublePredicate;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.style.Styler;

/**
 * Turns a JMH result file into what {@code bin/bench} shows: a table on standard output,
 * {@code report.md} (the tables, the targets and the machine), {@code throughput.png} (copy against
 * map per size, IDE DMA write and read) and {@code summary.json} (fixed keys for tools).
 *
 * <p>Usage: {@code BenchReport <results.json> <output directory> [command line that produced it]}.
 * Benchmarks missing from the results (a partial run with JMH arguments) show as "-" in the
 * tables and {@code null} in the summary.
 */
public final class BenchReport {
    /** C reference from the benchmark issue: pwritev of 64 KiB in 16 pieces from guest RAM, µs. */
    static final double C_PWRITEV_64K_US = 7.6;

    private static final String[] SIZES = {"4k", "64k", "1m"};
    private static final String[] PATHS = {"COPY", "MAP_FILECHANNEL", "MAP_NATIVE"};

    private final JmhResults results;

    private BenchReport(JmhResults results) {
        this.results = results;
    }

    /**
     * Writes the report.
     *
     * @param args the result file, the output directory, and optionally the command that ran JMH
     * @throws IOException if a file cannot be read or written
     */
    public static void main(String[] args) throws IOException {
        if (args.length < 2) {
            System.err.println("usage: BenchReport <results.json> <output directory> [command]");
            System.exit(2);
        }
        System.setProperty("java.awt.headless", "true");
        Path json = Path.of(args[0]);
        Path out = Path.of(args[1]);
        String command = args.length > 2 ? args[2] : "";
        if (!Files.isRegularFile(json)) {
            System.err.println("BenchReport: no JMH results at " + json + " (did the benchmark run fail?)");
            System.exit(1);
        }
        BenchReport report = new BenchReport(JmhResults.read(json));
        Files.createDirectories(out);
        String tables = report.tables();
        System.out.println();
        System.out.println(tables);
        Files.writeString(out.resolve("summary.json"), report.summaryJson());
        Path chart = report.chart(out);
        Files.writeString(out.resolve("report.md"), report.markdown(tables, command, chart));
        System.out.println("guestdma bench: wrote " + out.resolve("report.md") + ", " + out.resolve("summary.json")
                + ", " + chart + " and " + json);
    }

    // ------------------------------------------------------------------ lookups

    private OptionalDouble ops(String benchmark, String... params) {
        return results.find(benchmark, params).map(r -> OptionalDouble.of(r.opsPerSecond())).orElse(OptionalDouble.empty());
    }

    private OptionalDouble alloc(String benchmark, String... params) {
        return results.find(benchmark, params).map(Result::bytesPerOp).orElse(OptionalDouble.empty());
    }

    private static OptionalDouble ratio(OptionalDouble a, OptionalDouble b) {
        return a.isPresent() && b.isPresent() && b.getAsDouble() > 0
                ? OptionalDouble.of(a.getAsDouble() / b.getAsDouble()) : OptionalDouble.empty();
    }

    private OptionalDouble pathOps(String benchmark, String size, String path) {
        return ops(benchmark, "size", size, "path", path);
    }

    // ------------------------------------------------------------------ summary.json

    String summaryJson() {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("ide_write_64k_16prd", dataPath("IdeDmaBenchmark.write", "64k"));
        root.put("ide_write_1m_64prd", dataPath("IdeDmaBenchmark.write", "1m"));
        root.put("ide_read_64k_16prd", dataPath("IdeDmaBenchmark.read", "64k"));
        Map<String, Object> allocs = new LinkedHashMap<>();
        allocs.put("map_unmap_ram", alloc("MapBenchmark.mapUnmapRam", "size", "64k"));
        allocs.put("ide_write_64k_native", alloc("IdeDmaBenchmark.write", "size", "64k", "path", "MAP_NATIVE"));
        allocs.put("ide_write_64k_filechannel", alloc("IdeDmaBenchmark.write", "size", "64k", "path", "MAP_FILECHANNEL"));
        root.put("alloc_bytes_per_op", allocs);
        root.put("map_unmap_64k_over_copy_64k", mapUnmapOverCopy("64k"));
        root.put("lookup_10000_over_1", lookupRatio());
        root.put("two_thread_scaling", twoThreadScaling());
        StringBuilder sb = new StringBuilder();
        write(sb, root, "");
        return sb.append('\n').toString();
    }

    private Map<String, Object> dataPath(String benchmark, String size) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("copy_ops_s", pathOps(benchmark, size, "COPY"));
        m.put("map_filechannel_ops_s", pathOps(benchmark, size, "MAP_FILECHANNEL"));
        m.put("map_native_ops_s", pathOps(benchmark, size, "MAP_NATIVE"));
        m.put("map_over_copy", mapOverCopy(benchmark, size));
        return m;
    }

    /** The map_over_copy of a data-path benchmark: native map over copy. */
    private OptionalDouble mapOverCopy(String benchmark, String size) {
        return ratio(pathOps(benchmark, size, "MAP_NATIVE"), pathOps(benchmark, size, "COPY"));
    }

    private OptionalDouble twoThreadScaling() {
        return ratio(ops("ThreadScalingBenchmark.twoThreads"), ops("ThreadScalingBenchmark.oneThread"));
    }

    private OptionalDouble mapUnmapOverCopy(String size) {
        return ratio(ops("MapBenchmark.mapUnmapRam", "size", size), ops("MapBenchmark.copyRead", "size", size));
    }

    /** Time per op with 10 000 regions over time per op with 1, i.e. the inverse ratio of rates. */
    private OptionalDouble lookupRatio() {
        return ratio(ops("RegionLookupBenchmark.mapUnmap", "regions", "1"), ops("RegionLookupBenchmark.mapUnmap", "regions", "10000"));
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
        rows.add(new String[] {"case", "copy ops/s", "map FileChannel ops/s", "map native ops/s", "map/copy", "B/op"});
        addDataPathRows(rows, "IdeDmaBenchmark.write", "IDE WRITE DMA");
        addDataPathRows(rows, "IdeDmaBenchmark.read", "IDE READ DMA");
        addDataPathRows(rows, "BlockPathBenchmark.write", "block path write");
        addDataPathRows(rows, "BlockPathBenchmark.read", "block path read");
        sb.append(table(rows)).append('\n');

        sb.append("memory-core (map = map+unmap of guest RAM; copy = copy-path read into a byte[])\n\n");
        rows = new ArrayList<>();
        rows.add(new String[] {"case", "copy ops/s", "map ops/s", "map/copy", "B/op (copy / map)"});
        for (String size : SIZES) {
            OptionalDouble copy = ops("MapBenchmark.copyRead", "size", size);
            OptionalDouble map = ops("MapBenchmark.mapUnmapRam", "size", size);
            if (copy.isPresent() || map.isPresent()) {
                rows.add(new String[] {"map vs copy " + size, num(copy), num(map), ratioText(ratio(map, copy)),
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
            OptionalDouble copy = pathOps(benchmark, size, "COPY");
            OptionalDouble fc = pathOps(benchmark, size, "MAP_FILECHANNEL");
            OptionalDouble nat = pathOps(benchmark, size, "MAP_NATIVE");
            if (copy.isEmpty() && fc.isEmpty() && nat.isEmpty()) {
                continue;
            }
            StringBuilder b = new StringBuilder();
            for (String path : PATHS) {
                b.append(b.isEmpty() ? "" : " / ").append(bytes(alloc(benchmark, "size", size, "path", path)));
            }
            rows.add(new String[] {label + " " + size + shape(size), num(copy), num(fc), num(nat), ratioText(ratio(nat, copy)),
                    b.toString()});
        }
    }

    private static String shape(String size) {
        TransferShape s = TransferShape.of(size);
        return " (" + s.pieces() + " piece" + (s.pieces() == 1 ? "" : "s") + ")";
    }

    private List<String[]> targets() {
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"target", "measured", "goal", "met"});
        OptionalDouble nat64 = pathOps("IdeDmaBenchmark.write", "64k", "MAP_NATIVE");
        target(rows, "ide_write_64k_16prd map/copy", mapOverCopy("IdeDmaBenchmark.write", "64k"), ">= 1.5", x -> x >= 1.5, "%.2f");
        target(rows, "ide_write_1m_64prd map/copy", mapOverCopy("IdeDmaBenchmark.write", "1m"), ">= 1.65", x -> x >= 1.65, "%.2f");
        OptionalDouble usPerOp = nat64.isPresent() ? OptionalDouble.of(1e6 / nat64.getAsDouble()) : OptionalDouble.empty();
        target(rows, "ide_write_64k_16prd native, us/op (C pwritev: " + C_PWRITEV_64K_US + ")", usPerOp,
                "<= " + String.format(Locale.ROOT, "%.2f", C_PWRITEV_64K_US / 0.9), x -> x <= C_PWRITEV_64K_US / 0.9, "%.2f");
        target(rows, "alloc map_unmap_ram, B/op", alloc("MapBenchmark.mapUnmapRam", "size", "64k"), "0", x -> x < 0.5, "%.3f");
        target(rows, "alloc ide_write_64k_native, B/op", alloc("IdeDmaBenchmark.write", "size", "64k", "path", "MAP_NATIVE"),
                "<= 16", x -> x <= 16, "%.1f");
        target(rows, "map_unmap_64k_over_copy_64k", mapUnmapOverCopy("64k"), ">= 50", x -> x >= 50, "%.0f");
        target(rows, "lookup_10000_over_1", lookupRatio(), "<= 1.5", x -> x <= 1.5, "%.2f");
        target(rows, "two_thread_scaling", twoThreadScaling(), ">= 1.8", x -> x >= 1.8, "%.2f");
        OptionalDouble control = ratio(ops("ThreadScalingBenchmark.cpuOnlyTwoThreads"), ops("ThreadScalingBenchmark.cpuOnlyOneThread"));
        if (control.isPresent()) {
            rows.add(new String[] {"(control: two_thread_scaling of unshared work)", String.format(Locale.ROOT, "%.2f", control.getAsDouble()), "", ""});
        }
        return rows;
    }

    private static void target(List<String[]> rows, String name, OptionalDouble value, String goal, DoublePredicate met, String format) {
        rows.add(new String[] {name, value.isPresent() ? String.format(Locale.ROOT, format, value.getAsDouble()) : "-", goal,
                value.isPresent() ? (met.test(value.getAsDouble()) ? "yes" : "NO") : "not run"});
    }

    private static String num(OptionalDouble d) {
        if (d.isEmpty()) {
            return "-";
        }
        double v = d.getAsDouble();
        return v >= 100 ? String.format(Locale.ROOT, "%,.0f", v) : String.format(Locale.ROOT, "%.2f", v);
    }

    private static String ratioText(OptionalDouble d) {
        return d.isPresent() ? String.format(Locale.ROOT, "%.2fx", d.getAsDouble()) : "-";
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

    // ------------------------------------------------------------------ chart

    Path chart(Path out) throws IOException {
        List<CategoryChart> charts = new ArrayList<>();
        for (String[] kind : new String[][] {{"IdeDmaBenchmark.write", "IDE WRITE DMA: guest RAM to image"},
                {"IdeDmaBenchmark.read", "IDE READ DMA: image to guest RAM"}}) {
            CategoryChart chart = new CategoryChartBuilder().width(640).height(480).title(kind[1])
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
                    OptionalDouble o = pathOps(kind[0], size, series[0]);
                    y.add(o.isPresent() ? o.getAsDouble() * TransferShape.of(size).bytes() / (1 << 20) : 0.0);
                }
                chart.addSeries(series[1], x, y);
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
                - The C reference (benchmark issue, this kind of VM): `pwritev` of 64 KiB in 16 pieces \
                %.1f us, the double-copy path 11.1 us (1.48x); 1 MiB in 64 pieces 82.5 vs 135.5 us (1.64x).
                - B/op is JMH's `gc.alloc.rate.norm`: Java heap bytes allocated per operation.
                - Scores are means over the measurement iterations of one fork; a small VM is noisy, so \
                compare ratios from the same run.
                """.formatted(C_PWRITEV_64K_US));
        return sb.toString();
    }

}
