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
 * <p>Usage: {@code StabilityReport <output directory> <run directory>...}, each run directory
 * holding the {@code summary.json} of one run.
 */
public final class StabilityReport {
    private StabilityReport() {
    }

    /**
     * Writes the comparison.
     *
     * @param args the output directory, then one directory per run
     * @throws IOException if a summary cannot be read or the report written
     */
    public static void main(String[] args) throws IOException {
        if (args.length < 2) {
            System.err.println("usage: StabilityReport <output directory> <run directory>...");
            System.exit(2);
        }
        List<Map<String, Double>> runs = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            Path summary = Path.of(args[i], "summary.json");
            if (!Files.isRegularFile(summary)) {
                System.err.println("StabilityReport: no summary.json in " + args[i] + " (did that run fail?)");
                System.exit(1);
            }
            runs.add(flatten(SummaryJson.read(Files.readString(summary))));
        }
        String table = table(runs);
        System.out.println();
        System.out.println(table);
        Path out = Path.of(args[0]);
        Files.createDirectories(out);
        Files.writeString(out.resolve("stability.md"), "# guestdma benchmark stability\n\n"
                + runs.size() + " runs of `bin/bench --quick`; spread = (max - min) / median.\n\n## Machine\n\n"
                + machine() + "\n## Keys\n\n" + table);
        System.out.println("guestdma bench: wrote " + out.resolve("stability.md"));
    }

    private static String machine() {
        StringBuilder sb = new StringBuilder();
        MachineFacts.collect().forEach((k, v) -> sb.append("- ").append(k).append(": ").append(v).append('\n'));
        return sb.toString();
    }

    /**
     * The numeric keys of a summary, nested keys joined with dots; the {@code _spread} objects
     * (within one run) are left out, since this compares runs.
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
                if (!key.endsWith("_spread")) {
                    flatten(prefix.isEmpty() ? key : prefix + "." + key, e.getValue(), flat);
                }
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
        List<String[]> rows = new ArrayList<>();
        List<String> header = new ArrayList<>(List.of("key"));
        for (int i = 1; i <= runs.size(); i++) {
            header.add("run " + i);
        }
        header.addAll(List.of("min", "max", "spread"));
        rows.add(header.toArray(String[]::new));
        for (String key : runs.get(0).keySet()) {
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
            rows.add(row.toArray(String[]::new));
        }
        return BenchReport.table(rows);
    }

    private static String number(double v) {
        return Math.abs(v) >= 1000 ? String.format(Locale.ROOT, "%,.0f", v) : String.format(Locale.ROOT, "%.3f", v);
    }
}
