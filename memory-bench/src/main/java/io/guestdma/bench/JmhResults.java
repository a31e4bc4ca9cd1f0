package io.guestdma.bench;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.TreeMap;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;

/**
 * The results of one JMH run, taken from JMH's {@link RunResult}s.
 *
 * @param results one entry per benchmark method and parameter combination, in run order
 */
public record JmhResults(List<Result> results) {
    /** JMH's gc profiler's key for heap bytes allocated per operation. */
    private static final String ALLOC_NORM = "gc.alloc.rate.norm";

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
     *                      {@code unit}; just {@code score} if JMH gave no per-fork results
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
     * Takes the results of a JMH run as JMH's Java API returns them ({@link Runner#run()}).
     *
     * @param runs one entry per benchmark method and parameter combination
     * @return the results, in the order given; per fork, the fork's own score (the mean of its
     *         measurement iterations) and its {@code gc.alloc.rate.norm}
     */
    public static JmhResults of(Collection<RunResult> runs) {
        List<Result> results = new ArrayList<>();
        for (RunResult run : runs) {
            BenchmarkParams p = run.getParams();
            String name = p.getBenchmark();
            String simple = name.substring(name.lastIndexOf('.', name.lastIndexOf('.') - 1) + 1);
            Map<String, String> params = new TreeMap<>();
            for (String key : p.getParamsKeys()) {
                params.put(key, p.getParam(key));
            }
            List<Double> forks = new ArrayList<>();
            List<Double> forkAlloc = new ArrayList<>();
            for (BenchmarkResult fork : run.getBenchmarkResults()) {
                forks.add(fork.getPrimaryResult().getScore());
                org.openjdk.jmh.results.Result<?> norm = fork.getSecondaryResults().get(ALLOC_NORM);
                if (norm != null) {
                    forkAlloc.add(norm.getScore());
                }
            }
            org.openjdk.jmh.results.Result<?> primary = run.getPrimaryResult();
            org.openjdk.jmh.results.Result<?> norm = run.getSecondaryResults().get(ALLOC_NORM);
            OptionalDouble alloc = norm == null ? OptionalDouble.empty() : OptionalDouble.of(norm.getScore());
            results.add(new Result(simple, Map.copyOf(params), p.getThreads(), primary.getScore(),
                    primary.getScoreError(), primary.getScoreUnit(), alloc,
                    forks.isEmpty() ? List.of(primary.getScore()) : forks, forkAlloc));
        }
        return new JmhResults(List.copyOf(results));
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
