package io.guestdma.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * virtio-net receiving 64-byte frames into 2 KiB and into 64 KiB receive buffers (mergeable
 * buffers of one descriptor, as Linux posts them), zero-copy, one operation per frame
 * ({@link NetWorkload#receive()}). Time per frame in 64 KiB buffers over time in 2 KiB ones is
 * net_rx_64b_frame_in_64k_buffer_over_2k_buffer: the cost of a packet must follow its length, not
 * its buffer's (Jamie Lokier's e1000 point from the 2009 DMA review).
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class NetRxBenchmark extends SuiteSettings {
    /** Each receive buffer's size in bytes, the 12-byte header included. */
    @Param({"2048", "65536"})
    public int bufferBytes;

    private NetWorkload workload;

    /** Builds the device and its driver (after rehearsing them). */
    @Setup(Level.Trial)
    public void setUp() {
        new NetWorkload(64, bufferBytes, false, false).close();
        workload = new NetWorkload(64, bufferBytes, false, false);
    }

    /** Closes the device. */
    @TearDown(Level.Trial)
    public void tearDown() {
        workload.close();
    }

    /** @return the receive queue's used index */
    @Benchmark
    public int rx64b() {
        return workload.receive();
    }
}
