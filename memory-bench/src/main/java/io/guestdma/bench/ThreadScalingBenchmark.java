package io.guestdma.bench;

import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import java.util.concurrent.atomic.AtomicInteger;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.infra.Blackhole;

/**
 * Map and unmap of RAM (4 KiB, FROM_DEVICE, so unmap also marks the dirty log) from one thread
 * and from two threads sharing one address space, as two device threads do. JMH reports the
 * two-thread case as the sum over both threads, so perfect scaling is twice the one-thread rate.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
public class ThreadScalingBenchmark extends SuiteSettings {

    /** The address space both threads use. */
    @State(Scope.Benchmark)
    public static class Shared {
        GuestMemory memory;

        /** Builds 16 MiB of guest RAM. */
        @Setup(Level.Trial)
        public void setUp() {
            memory = GuestMemory.ofRam(16L << 20);
        }

        /** Closes guest memory. */
        @TearDown(Level.Trial)
        public void tearDown() {
            memory.close();
        }
    }

    /** Each thread DMAs into its own buffer, as each device has its own. */
    @State(Scope.Thread)
    public static class Device {
        private static final AtomicInteger NEXT = new AtomicInteger();
        long address;

        /** Picks this thread's buffer: 1 MiB apart from the others. */
        @Setup(Level.Trial)
        public void setUp() {
            address = (1L + NEXT.getAndIncrement() % 8) << 20;
        }
    }

    /**
     * @param shared the address space
     * @param device this thread's buffer
     * @return the mapped length
     */
    @Benchmark
    @Threads(1)
    public long oneThread(Shared shared, Device device) {
        return mapUnmap(shared.memory, device.address);
    }

    /**
     * @param shared the address space
     * @param device this thread's buffer
     * @return the mapped length
     */
    @Benchmark
    @Threads(2)
    public long twoThreads(Shared shared, Device device) {
        return mapUnmap(shared.memory, device.address);
    }

    /**
     * The control: thread-local arithmetic only, nothing shared. Its two-thread/one-thread ratio is
     * the most this machine gives any code; compare the map path's ratio with it.
     *
     * @return a value derived from the work
     */
    @Benchmark
    @Threads(1)
    public long cpuOnlyOneThread() {
        Blackhole.consumeCPU(16);
        return 1;
    }

    /** @return a value derived from the work */
    @Benchmark
    @Threads(2)
    public long cpuOnlyTwoThreads() {
        Blackhole.consumeCPU(16);
        return 1;
    }

    private static long mapUnmap(GuestMemory memory, long address) {
        DmaMapping m = (DmaMapping) memory.map(address, 4096, DmaDirection.FROM_DEVICE);
        long length = m.length();
        memory.unmap(m, length);
        return length;
    }
}
