package io.guestdma.bench;

import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * What DMA debug mode costs: map and unmap of 4 KiB of RAM with debug mode off (the default,
 * which must cost nothing: compare with {@link MapBenchmark#mapUnmapRam} at 4k) and on (a
 * revocable per-mapping segment and a tracked creation stack).
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class DebugModeBenchmark extends SuiteSettings {

    /** Whether DMA debug mode is on. */
    @Param({"false", "true"})
    public boolean debug;

    private GuestMemory memory;

    /** Builds 16 MiB of guest RAM with debug mode as asked. */
    @Setup(Level.Trial)
    public void setUp() {
        memory = GuestMemory.builder().ram("ram", 0, 16L << 20).debug(debug).build();
    }

    /** Closes guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        memory.close();
    }

    /** @return the mapped length */
    @Benchmark
    public long mapUnmap() {
        DmaMapping m = (DmaMapping) memory.map(0x100000, 4096, DmaDirection.FROM_DEVICE);
        long length = m.length();
        memory.unmap(m, length);
        return length;
    }
}
