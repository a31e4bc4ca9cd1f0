package io.guestdma.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * virtio-net receiving 9000-byte (jumbo) frames into mergeable 4 KiB buffers, three per frame:
 * the device writing the guest's buffers mapped as one packet (MAP) and the same device going
 * through a heap buffer (COPY, {@link io.guestdma.virtio.VirtioNetConfig#copyPath()}). Their ratio
 * is net_rx_9000b_map_over_copy.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class NetRxMapCopyBenchmark extends SuiteSettings {
    /** MAP (zero-copy) or COPY (a heap buffer). */
    @Param({"MAP", "COPY"})
    public String path;

    private NetWorkload workload;

    /** Builds the device and its driver (after rehearsing them). */
    @Setup(Level.Trial)
    public void setUp() {
        boolean copy = path.equals("COPY");
        new NetWorkload(9000, 4096, copy, false).close();
        workload = new NetWorkload(9000, 4096, copy, false);
    }

    /** Closes the device. */
    @TearDown(Level.Trial)
    public void tearDown() {
        workload.close();
    }

    /** @return the receive queue's used index */
    @Benchmark
    public int rx9000b() {
        return workload.receive();
    }
}
