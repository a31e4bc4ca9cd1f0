package io.guestdma.bench;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.WorkloadParams;

/**
 * Joins the JMH runs of a batch's rounds ({@link BenchSuite}), each one fork of every case, into one
 * result per case whose forks are the rounds in order, as if JMH had run the forks itself: the
 * report reads fork i of every case as one replicate of the comparison, and JMH's JSON then says
 * how many forks a case had.
 */
final class RoundResults {
    private RoundResults() {
    }

    /**
     * @param rounds each round's results, in round order
     * @return one result per case, in the order the first round gave them, with the forks of
     *         every round that ran it, in round order; its parameters say that many forks
     * @throws IllegalArgumentException if a round has two results for one case
     */
    static List<RunResult> merge(List<List<RunResult>> rounds) {
        Map<String, BenchmarkParams> params = new LinkedHashMap<>();
        Map<String, List<BenchmarkResult>> forks = new LinkedHashMap<>();
        for (List<RunResult> round : rounds) {
            Set<String> seen = new HashSet<>();
            for (RunResult run : round) {
                String key = caseKey(run.getParams());
                if (!seen.add(key)) {
                    throw new IllegalArgumentException("two results for " + key + " in one round");
                }
                params.putIfAbsent(key, run.getParams());
                forks.computeIfAbsent(key, k -> new ArrayList<>()).addAll(run.getBenchmarkResults());
            }
        }
        List<RunResult> merged = new ArrayList<>();
        params.forEach((key, p) -> {
            List<BenchmarkResult> results = forks.get(key);
            merged.add(new RunResult(withForks(p, results.size()), results));
        });
        return merged;
    }

    /** Benchmark, thread count and parameter values: what tells two cases apart. */
    private static String caseKey(BenchmarkParams p) {
        StringBuilder key = new StringBuilder(p.getBenchmark()).append(" threads=").append(p.getThreads());
        for (String name : new TreeSet<>(p.getParamsKeys())) {
            key.append(' ').append(name).append('=').append(p.getParam(name));
        }
        return key.toString();
    }

    /** The same parameters, saying {@code forks} forks. */
    private static BenchmarkParams withForks(BenchmarkParams p, int forks) {
        if (p.getForks() == forks) {
            return p;
        }
        WorkloadParams workload = new WorkloadParams();
        int order = 0;
        for (String name : p.getParamsKeys()) {
            workload.put(name, p.getParam(name), order++);
        }
        return new BenchmarkParams(p.getBenchmark(), p.generatedBenchmark(), p.shouldSynchIterations(),
                p.getThreads(), p.getThreadGroups(), p.getThreadGroupLabels(), forks, p.getWarmupForks(),
                p.getWarmup(), p.getMeasurement(), p.getMode(), workload, p.getTimeUnit(), p.getOpsPerInvocation(),
                p.getJvm(), p.getJvmArgs(), p.getJdkVersion(), p.getVmName(), p.getVmVersion(), p.getJmhVersion(),
                p.getTimeout());
    }
}
