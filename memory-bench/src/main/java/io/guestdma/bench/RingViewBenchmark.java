package io.guestdma.bench;

import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.RamView;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * A virtqueue's hottest access: the 2-byte acquire load of a ring index, through a pinned
 * {@link RamView} (QEMU's MemoryRegionCache) against the same load with a VarHandle on a plain
 * MemorySegment, the floor FFM allows. The view adds its staleness check (one volatile read).
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class RingViewBenchmark extends SuiteSettings {
    private static final VarHandle SHORT = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle();
    private static final long INDEX = 2; // avail->idx

    private GuestMemory memory;
    private RamView ring;
    private Arena arena;
    private MemorySegment raw;

    /** Guest RAM with a ring view, and a plain native segment to compare with. */
    @Setup(Level.Trial)
    public void setUp() {
        GuestMemory.ofRam(1 << 20).close(); // the first close in a JVM allocates (see SuiteSettings)
        memory = GuestMemory.ofRam(1 << 20);
        ring = memory.ramView(0x4000, 4096, ByteOrder.LITTLE_ENDIAN, true);
        ring.setShortRelease(INDEX, (short) 7);
        arena = Arena.ofShared();
        raw = arena.allocate(4096, 4096);
        SHORT.setRelease(raw, INDEX, (short) 7);
    }

    /** Frees both. */
    @TearDown(Level.Trial)
    public void tearDown() {
        memory.close();
        arena.close();
    }

    /** @return the index, acquired through the ring view */
    @Benchmark
    public short acquireThroughView() {
        return ring.getShortAcquire(INDEX);
    }

    /** @return the index, acquired with a VarHandle on a raw segment */
    @Benchmark
    public short acquireRaw() {
        return (short) SHORT.getAcquire(raw, INDEX);
    }
}
