package io.guestdma.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * virtio-net on the loopback backend: a 1514-byte frame transmitted, looped back and received
 * into a 2 KiB mergeable buffer, zero-copy, one operation per frame
 * ({@link NetWorkload#transmitAndReceive()}). Its heap allocation per operation
 * ({@code gc.alloc.rate.norm}) is net_tx_rx_alloc_bytes_per_frame.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class NetLoopbackBenchmark extends SuiteSettings {
    private NetWorkload workload;

    /** Builds the device and its driver (after rehearsing them). */
    @Setup(Level.Trial)
    public void setUp() {
        new NetWorkload(1514, 2048, false, true).close();
        workload = new NetWorkload(1514, 2048, false, true);
    }

    /** Closes the device. */
    @TearDown(Level.Trial)
    public void tearDown() {
        workload.close();
    }

    /** @return the receive queue's used index */
    @Benchmark
    public int txRx1514b() {
        return workload.transmitAndReceive();
    }
}
