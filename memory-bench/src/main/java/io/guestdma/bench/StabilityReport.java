package io.guestdma.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Compares the {@code summary.json} of several runs of the suite ({@code bin/bench --stability N}):
 * per key, each run's value, the smallest and largest, and the spread as a share of the median, so
 * a user sees which figures one run can be trusted for. Prints the table and writes it to
 * {@code stability.md}.
 *
 * <p>Usage: {@code StabilityReport <output directory> [--against <full-suite directory>] <run
 * directory>...}, each directory holding the {@code summary.json} of one run. With {@code --against},
 * each key is also held against the full suite's value: how far the furthest {@code --quick} run
 * strays from it (the check that {@code --quick} answers as the full suite does).
 */
public final class StabilityReport {
    private StabilityReport() {
    }

    /**
     * Writes the comparison.
     *
     * @param args the output directory, optionally {@code --against <full-suite directory>}, then
     *             one directory per run
     * @throws IOException if a summary cannot be read or the report written
     */
    public static void main(String[] args) throws IOException {
        List<String> rest = new ArrayList<>(List.of(args));
        Optional<Map<String, Double>> full = Optional.empty();
        if (rest.size() >= 3 && rest.get(1).equals("--against")) {
            full = Optional.of(read(rest.get(2)));
            rest.subList(1, 3).clear();
        }
        if (rest.size() < 2) {
            System.err.println("usage: StabilityReport <output directory> [--against <full-suite directory>] <run directory>...");
            System.exit(2);
        }
        List<Map<String, Double>> runs = new ArrayList<>();
        for (String run : rest.subList(1, rest.size())) {
            runs.add(read(run));
        }
        String table = table(runs, full);
        System.out.println();
        System.out.println(table);
        Path out = Path.of(rest.get(0));
        Files.createDirectories(out);
        String against = full.isEmpty() ? ""
                : " \"full\" is the full suite's value of the same key (`--against " + args[2] + "`), and \"off full\""
                        + " the run furthest from it, as a share of it (marked `!` over 10%); for allocation keys"
                        + " it gives the largest value of the runs instead (marked `!` over 1 B/op). \"full's forks\""
                        + " is the range of the full run's own forks (or rounds) for that key, and \"in them\" says"
                        + " whether every quick run fell inside it: a quick run off by more than 10% but inside that"
                        + " range differs from the full run no more than the full run's forks differ from each"
                        + " other on this machine.";
        Files.writeString(out.resolve("stability.md"), "# guestdma benchmark stability\n\n"
                + runs.size() + " runs of `bin/bench --quick`; spread = (max - min) / median." + against
                + "\n\n## Machine\n\n" + machine() + "\n## Keys\n\n" + table);
        System.out.println("guestdma bench: wrote " + out.resolve("stability.md"));
    }

    /** The flattened summary.json of one run's directory; exits with a message if there is none. */
    private static Map<String, Double> read(String dir) throws IOException {
        Path summary = Path.of(dir, "summary.json");
        if (!Files.isRegularFile(summary)) {
            System.err.println("StabilityReport: no summary.json in " + dir + " (did that run fail?)");
            System.exit(1);
        }
        return flatten(SummaryJson.read(Files.readString(summary)));
    }

    private static String machine() {
        StringBuilder sb = new StringBuilder();
        MachineFacts.collect().forEach((k, v) -> sb.append("- ").append(k).append(": ").append(v).append('\n'));
        return sb.toString();
    }

    /**
     * The numeric keys of a summary, nested keys joined with dots; a key's spread over forks comes
     * out as {@code <key>_spread.min}, {@code .max} and {@code .forks}.
     *
     * @param summary a parsed {@code summary.json}
     * @return key to value; a key whose case was not run maps to null
     */
    static Map<String, Double> flatten(Object summary) {
        Map<String, Double> flat = new LinkedHashMap<>();
        flatten("", summary, flat);
        return flat;
    }

    private static void flatten(String prefix, Object value, Map<String, Double> flat) {
        if (value instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> e : map.entrySet()) {
                String key = String.valueOf(e.getKey());
                flatten(prefix.isEmpty() ? key : prefix + "." + key, e.getValue(), flat);
            }
        } else {
            flat.put(prefix, value instanceof Double d ? d : null);
        }
    }

    /**
     * @param runs the flattened summaries, in run order
     * @return one row per key of the first run: the runs' values, min, max and spread
     */
    static String table(List<Map<String, Double>> runs) {
        return table(runs, Optional.empty());
    }

    /**
     * @param runs the flattened summaries, in run order
     * @param full the full suite's flattened summary to hold the runs against, if given
     * @return one row per key of the first run: the runs' values, min, max and spread, and with
     *     {@code full} its value, how far the furthest run is from it, the full run's forks and
     *     whether every run fell inside their range
     */
    static String table(List<Map<String, Double>> runs, Optional<Map<String, Double>> full) {
        List<String[]> rows = new ArrayList<>();
        List<String> header = new ArrayList<>(List.of("key"));
        for (int i = 1; i <= runs.size(); i++) {
            header.add("run " + i);
        }
        header.addAll(List.of("min", "max", "spread"));
        if (full.isPresent()) {
            header.addAll(List.of("full", "off full", "full's forks", "in them"));
        }
        rows.add(header.toArray(String[]::new));
        for (String key : runs.get(0).keySet()) {
            // A run's own spread over forks (null when not run) is no row; the full run's is read
            // beside the key it belongs to.
            if (key.endsWith("_spread") || key.contains("_spread.")) {
                continue;
            }
            List<String> row = new ArrayList<>(List.of(key));
            List<Double> values = new ArrayList<>();
            for (Map<String, Double> run : runs) {
                Double v = run.get(key);
                row.add(v == null ? "-" : number(v));
                if (v != null) {
                    values.add(v);
                }
            }
            Optional<Figure> f = Figure.of(values);
            row.add(f.map(x -> number(x.min())).orElse("-"));
            row.add(f.map(x -> number(x.max())).orElse("-"));
            row.add(f.filter(x -> x.median() != 0)
                    .map(x -> String.format(Locale.ROOT, "%.1f%%", 100 * (x.max() - x.min()) / Math.abs(x.median())))
                    .orElse("-"));
            if (full.isPresent()) {
                Double reference = full.get().get(key);
                row.add(reference == null ? "-" : number(reference));
                if (key.contains("alloc")) {
                    // Bytes per operation near zero: a share of the full run's 0.03 B says nothing;
                    // what counts is whether any quick run reached a byte.
                    row.add(f.map(x -> String.format(Locale.ROOT, "max %s B%s", number(x.max()), x.max() > 1 ? " !" : ""))
                            .orElse("-"));
                } else {
                    row.add(reference == null || reference == 0 || values.isEmpty() ? "-" : offFull(values, reference));
                }
                Double min = full.get().get(key + "_spread.min");
                Double max = full.get().get(key + "_spread.max");
                Double forks = full.get().get(key + "_spread.forks");
                // One fork is no range: a quick run is "outside" it by any difference at all.
                boolean range = reference != null && min != null && max != null && forks != null && forks >= 2;
                row.add(range ? number(min) + " - " + number(max) : "-");
                row.add(!range || values.isEmpty() ? "-"
                        : values.stream().allMatch(v -> v >= min && v <= max) ? "yes" : "no");
            }
            rows.add(row.toArray(String[]::new));
        }
        return BenchReport.table(rows);
    }

    /** The run furthest from the full suite's value, signed, as a share of it; {@code !} past 10%. */
    private static String offFull(List<Double> values, double reference) {
        double worst = 0;
        for (double v : values) {
            double off = (v - reference) / Math.abs(reference);
            if (Math.abs(off) > Math.abs(worst)) {
                worst = off;
            }
        }
        return String.format(Locale.ROOT, "%+.1f%%%s", 100 * worst, Math.abs(worst) > 0.10 ? " !" : "");
    }

    private static String number(double v) {
        return Math.abs(v) >= 1000 ? String.format(Locale.ROOT, "%,.0f", v) : String.format(Locale.ROOT, "%.3f", v);
    }
}
