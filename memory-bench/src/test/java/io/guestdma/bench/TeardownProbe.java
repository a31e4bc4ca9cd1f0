package io.guestdma.bench;

import com.sun.management.ThreadMXBean;
import java.lang.management.ManagementFactory;

/**
 * Run in a JVM of its own by {@link TrialTeardownTest}: sets one benchmark up as JMH does, runs a
 * few operations, then prints the heap bytes all threads allocated during the trial's teardown
 * ({@code teardown=<bytes>}), which JMH counts against the last measured iteration.
 */
final class TeardownProbe {
    private TeardownProbe() {
    }

    /**
     * @param args {@code migration} ({@link MigrationBenchmark#migrateRam}) or {@code nbd}
     *             ({@link NbdWriteBenchmark#writeQd1})
     * @throws Exception if the benchmark's setup, an operation or its teardown fails
     */
    public static void main(String[] args) throws Exception {
        ThreadMXBean threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        long before;
        switch (args.length == 1 ? args[0] : "") {
            case "migration" -> {
                MigrationBenchmark bench = new MigrationBenchmark();
                bench.setUp();
                for (int i = 0; i < 3; i++) {
                    bench.migrateRam();
                }
                before = threads.getTotalThreadAllocatedBytes();
                bench.tearDown();
            }
            case "nbd" -> {
                NbdWriteBenchmark bench = new NbdWriteBenchmark();
                bench.setUp();
                NbdWriteBenchmark.Writer writer = new NbdWriteBenchmark.Writer();
                writer.setUp(bench);
                for (int i = 0; i < 200; i++) {
                    bench.writeQd1(writer);
                }
                before = threads.getTotalThreadAllocatedBytes();
                writer.tearDown(bench);
                bench.tearDown();
            }
            default -> throw new IllegalArgumentException("usage: TeardownProbe migration|nbd");
        }
        System.out.println("teardown=" + (threads.getTotalThreadAllocatedBytes() - before));
    }
}
