package io.guestdma.bench;

import io.guestdma.memory.AccessResult;
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
 * memory-core alone: mapping guest RAM for a device read and unmapping it, against a copy-path
 * read of the same bytes into a device's {@code byte[]} — what a device gets its data with on each
 * path before any I/O happens.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class MapBenchmark extends SuiteSettings {

    /** Bytes mapped or copied. */
    @Param({"4k", "64k", "1m"})
    public String size;

    private GuestMemory memory;
    private byte[] deviceBuffer;
    private int bytes;
    private static final long ADDRESS = 0x200000;

    /** Builds 16 MiB of guest RAM (after building and closing a throwaway one). */
    @Setup(Level.Trial)
    public void setUp() {
        bytes = TransferShape.of(size).bytes();
        // The first close in a JVM allocates; rehearse it outside measurement (see SuiteSettings).
        GuestMemory.ofRam(16L << 20).close();
        memory = GuestMemory.ofRam(16L << 20);
        deviceBuffer = new byte[bytes];
    }

    /** Closes guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        memory.close();
    }

    /** @return the mapped length: map for a device read, then unmap having read it all */
    @Benchmark
    public long mapUnmapRam() {
        DmaMapping m = (DmaMapping) memory.map(ADDRESS, bytes, DmaDirection.TO_DEVICE);
        long length = m.length();
        memory.unmap(m, length);
        return length;
    }

    /** @return the copy result: the same bytes copied into the device's array */
    @Benchmark
    public AccessResult copyRead() {
        return memory.read(ADDRESS, deviceBuffer, 0, bytes);
    }
}
