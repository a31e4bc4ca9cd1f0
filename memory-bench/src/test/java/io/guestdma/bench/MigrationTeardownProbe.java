package io.guestdma.bench;

import com.sun.management.ThreadMXBean;
import java.lang.management.ManagementFactory;

/**
 * Run in a JVM of its own by {@link MigrationBenchmarkTest}: sets {@link MigrationBenchmark} up as
 * JMH does, migrates a few times, then prints the heap bytes all threads allocated during the
 * trial's teardown ({@code teardown=<bytes>}), which JMH counts against the last measured
 * iteration.
 */
final class MigrationTeardownProbe {
    private MigrationTeardownProbe() {
    }

    /**
     * @param args none
     * @throws Exception if the benchmark's setup, a migration or its teardown fails
     */
    public static void main(String[] args) throws Exception {
        ThreadMXBean threads = (ThreadMXBean) ManagementFactory.getThreadMXBean();
        MigrationBenchmark bench = new MigrationBenchmark();
        bench.setUp();
        for (int i = 0; i < 3; i++) {
            bench.migrateRam();
        }
        long before = threads.getTotalThreadAllocatedBytes();
        bench.tearDown();
        long after = threads.getTotalThreadAllocatedBytes();
        System.out.println("teardown=" + (after - before));
    }
}
