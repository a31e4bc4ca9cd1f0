package io.guestdma.bench;

import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.RamBacking;
import java.util.Random;
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
 * Region lookup: map and unmap 512 bytes at addresses spread over every region of an address
 * space built from 1, 100 or 10 000 RAM regions (with a gap after each, so no two merge), in a
 * fixed random order. The guest RAM size is the same in every case; only the region count
 * changes.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class RegionLookupBenchmark extends SuiteSettings {
    private static final long RAM_BYTES = 160L << 20;
    private static final int ADDRESSES = 4096; // a power of two

    /** How many regions the address space has. */
    @Param({"1", "100", "10000"})
    public int regions;

    private GuestMemory memory;
    private final long[] addresses = new long[ADDRESSES];
    private int next;

    /** Builds the address space and picks the addresses. */
    @Setup(Level.Trial)
    public void setUp() {
        long regionBytes = RAM_BYTES / regions & ~0xfffL;
        GuestMemory.Builder b = GuestMemory.builder().backing(RamBacking.reserved(RAM_BYTES));
        for (int r = 0; r < regions; r++) {
            b.ram("ram" + r, 2L * r * regionBytes, regionBytes);
        }
        memory = b.build();
        Random random = new Random(42);
        for (int i = 0; i < ADDRESSES; i++) {
            long region = random.nextInt(regions);
            long offset = (random.nextLong(regionBytes - 512)) & ~511L;
            addresses[i] = 2 * region * regionBytes + offset;
        }
    }

    /** Closes guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        memory.close();
    }

    /** @return the mapped length */
    @Benchmark
    public long mapUnmap() {
        long address = addresses[next];
        next = (next + 1) & (ADDRESSES - 1);
        DmaMapping m = (DmaMapping) memory.map(address, 512, DmaDirection.TO_DEVICE);
        long length = m.length();
        memory.unmap(m, length);
        return length;
    }
}
