package io.guestdma.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;

/**
 * The results of one JMH run, read from its JSON output ({@code -rf json}).
 *
 * @param results one entry per benchmark method and parameter combination, in run order
 */
public record JmhResults(List<Result> results) {

    /**
     * One benchmark method with one set of parameters.
     *
     * @param benchmark     the simple class and method name, for example {@code IdeDmaBenchmark.write}
     * @param params        the JMH parameters
     * @param threads       threads that ran it
     * @param score         the primary score
     * @param error         its 99.9% confidence half-width, NaN if JMH had too few samples
     * @param unit          the score's unit, for example {@code ops/s} or {@code ns/op}
     * @param bytesPerOp    {@code gc.alloc.rate.norm} if the run used {@code -prof gc}
     * @param forkScores    the score of each fork (the mean of its measurement iterations), in
     *                      {@code unit}; just {@code score} if the file has no raw data
     * @param forkBytesPerOp {@code gc.alloc.rate.norm} of each fork, empty without {@code -prof gc}
     */
    public record Result(String benchmark, Map<String, String> params, int threads, double score,
                         double error, String unit, OptionalDouble bytesPerOp, List<Double> forkScores,
                         List<Double> forkBytesPerOp) {

        /** Copies the fork lists. */
        public Result {
            forkScores = List.copyOf(forkScores);
            forkBytesPerOp = List.copyOf(forkBytesPerOp);
        }

        /**
         * @return the score as operations per second, converting time-per-operation units
         * @throws IllegalStateException if the unit is not one JMH uses
         */
        public double opsPerSecond() {
            return opsPerSecond(score);
        }

        /**
         * @return each fork's score as operations per second, in fork order
         * @throws IllegalStateException if the unit is not one JMH uses
         */
        public List<Double> forkOpsPerSecond() {
            return forkScores.stream().map(this::opsPerSecond).toList();
        }

        private double opsPerSecond(double value) {
            return switch (unit) {
                case "ops/s" -> value;
                case "ops/ms" -> value * 1e3;
                case "ops/us" -> value * 1e6;
                case "ops/ns" -> value * 1e9;
                case "s/op" -> 1 / value;
                case "ms/op" -> 1e3 / value;
                case "us/op" -> 1e6 / value;
                case "ns/op" -> 1e9 / value;
                default -> throw new IllegalStateException("unknown JMH unit " + unit);
            };
        }

        /**
         * @param name a parameter name
         * @return whether this result has that parameter with that value
         */
        boolean has(String name, String value) {
            return value.equals(params.get(name));
        }
    }

    /**
     * Reads a JMH JSON result file.
     *
     * @param file the file JMH wrote with {@code -rf json -rff file}
     * @return the results
     * @throws IOException              if the file cannot be read
     * @throws IllegalArgumentException if it is not a JMH result file
     */
    @SuppressWarnings("unchecked")
    public static JmhResults read(Path file) throws IOException {
        Object root;
        try {
            root = Json.parse(Files.readString(file));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
        if (!(root instanceof List<?> list)) {
            throw new IllegalArgumentException(file + ": not a JMH result file (expected a JSON array)");
        }
        List<Result> results = new ArrayList<>();
        for (Object o : list) {
            if (!(o instanceof Map<?, ?> entry) || !(entry.get("benchmark") instanceof String name)
                    || !(entry.get("primaryMetric") instanceof Map<?, ?> primary)) {
                throw new IllegalArgumentException(file + ": entry without benchmark/primaryMetric: " + o);
            }
            String simple = name.substring(name.lastIndexOf('.', name.lastIndexOf('.') - 1) + 1);
            Map<String, String> params = new java.util.TreeMap<>();
            if (entry.get("params") instanceof Map<?, ?> p) {
                p.forEach((k, v) -> params.put(String.valueOf(k), String.valueOf(v)));
            }
            OptionalDouble alloc = OptionalDouble.empty();
            List<Double> forkAlloc = List.of();
            if (entry.get("secondaryMetrics") instanceof Map<?, ?> secondary
                    && secondary.get("gc.alloc.rate.norm") instanceof Map<?, ?> norm
                    && norm.get("score") instanceof Double d) {
                alloc = OptionalDouble.of(d);
                forkAlloc = forkMeans(norm.get("rawData"));
                if (forkAlloc.isEmpty()) {
                    forkAlloc = List.of(d);
                }
            }
            double score = number(primary.get("score"));
            List<Double> forks = forkMeans(primary.get("rawData"));
            results.add(new Result(simple, Map.copyOf(params),
                    entry.get("threads") instanceof Double t ? t.intValue() : 1,
                    score, number(primary.get("scoreError")),
                    String.valueOf(primary.get("scoreUnit")), alloc, forks.isEmpty() ? List.of(score) : forks, forkAlloc));
        }
        return new JmhResults(List.copyOf(results));
    }

    /**
     * JMH's {@code rawData} is one list of iteration values per fork; a fork's figure is the mean
     * of its iterations, as JMH's own score is the mean over all of them.
     */
    private static List<Double> forkMeans(Object rawData) {
        List<Double> means = new ArrayList<>();
        if (rawData instanceof List<?> forks) {
            for (Object fork : forks) {
                if (fork instanceof List<?> iterations && !iterations.isEmpty()) {
                    double sum = 0;
                    for (Object v : iterations) {
                        sum += number(v);
                    }
                    means.add(sum / iterations.size());
                }
            }
        }
        return means;
    }

    private static double number(Object o) {
        return o instanceof Double d ? d : Double.NaN;
    }

    /**
     * Finds a result.
     *
     * @param benchmark  simple class and method name
     * @param paramPairs alternating parameter names and values that must match
     * @return the first matching result, if the run had it
     */
    public Optional<Result> find(String benchmark, String... paramPairs) {
        outer:
        for (Result r : results) {
            if (!r.benchmark().equals(benchmark)) {
                continue;
            }
            for (int i = 0; i + 1 < paramPairs.length; i += 2) {
                if (!r.has(paramPairs[i], paramPairs[i + 1])) {
                    continue outer;
                }
            }
            return Optional.of(r);
        }
        return Optional.empty();
    }
}
