package io.guestdma.bench;

import io.guestdma.ide.DmaMode;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * What the emulated device itself costs: {@link IdeDmaBenchmark}'s WRITE DMA over a
 * {@link NullBackend}, so no byte reaches a file. MAP is registers + PRD walk + mapping + I/O
 * vector + unmapping; COPY adds the copy of guest RAM into the heap buffer. Subtract this from
 * {@code IdeDmaBenchmark} to see what the kernel's write costs.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class IdeOverheadBenchmark extends SuiteSettings {

    /** Transfer size. */
    @Param({"64k"})
    public String size;

    /** The engine's data path. */
    @Param({"MAP", "COPY"})
    public String mode;

    private IdeWorkload workload;

    /**
     * Builds the machine over a null disk (after building and closing a throwaway one).
     *
     * @throws IOException never, in practice: nothing here touches a file
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        // The first close in a JVM allocates; rehearse it outside measurement (see SuiteSettings).
        IdeWorkload.over(TransferShape.of(size), DmaMode.valueOf(mode), new NullBackend(IdeWorkload.IMAGE_BYTES)).close();
        workload = IdeWorkload.over(TransferShape.of(size), DmaMode.valueOf(mode), new NullBackend(IdeWorkload.IMAGE_BYTES));
    }

    /**
     * Tears the machine down.
     *
     * @throws IOException never, in practice: nothing here touches a file
     */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        workload.close();
    }

    /** @return the bus-master status */
    @Benchmark
    public int write() {
        return workload.write();
    }
}
