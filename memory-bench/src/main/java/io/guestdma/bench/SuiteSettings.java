package io.guestdma.bench;

import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The settings every benchmark of the suite inherits (JMH annotations are inherited): throughput
 * in operations per second, one fork with native access enabled and a fixed 1 GiB heap, 3 warmup
 * and 5 measurement iterations of one second. {@code bin/bench --quick} and JMH command-line
 * options override them.
 *
 * <p>JMH runs a trial's teardown inside its last measurement iteration, and the first close of guest
 * memory, a backend or a controller in a JVM loads classes (about 0.4 MB of heap). Over the few
 * thousand operations of a short iteration that reads as several bytes per operation that the
 * operation never allocated. So the benchmarks with allocation figures build and close their state
 * once in their trial setup, outside any measurement, before building the state they measure.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow",
        "-Xms1g", "-Xmx1g"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public abstract class SuiteSettings {
    /** For subclasses. */
    protected SuiteSettings() {
    }
}
