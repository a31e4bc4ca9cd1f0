package io.guestdma.bench;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.NativeBackend;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicInteger;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;

/**
 * virtio-blk end to end: batches of 32 4 KiB reads through the ring (QD32), one operation per
 * request. Over a null disk it is the device's own cost (virtio_blk_read_4k_qd32_iops); over the
 * native backend on a page-cached image it gives the allocation per request
 * (virtio_blk_alloc_bytes_per_request). With two queues, each benchmark thread drives its own
 * queue as that queue's I/O thread (virtio_blk_mq_scaling = two threads over one, measured as
 * ThreadScalingBenchmark's two_thread_scaling). {@link VirtioBlkWriteBenchmark} has the map/copy
 * comparison.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
public class VirtioBlkBenchmark extends SuiteSettings {
    static final int DEPTH = 32;

    /** One device over a null disk, two queues. */
    @State(Scope.Benchmark)
    public static class NullDisk {
        VirtioBlkWorkload workload;

        /** Builds (after rehearsing) the device. */
        @Setup(Level.Trial)
        public void setUp() {
            new VirtioBlkWorkload(new NullBackend(64L << 20), 2, DEPTH, 4096).close();
            workload = new VirtioBlkWorkload(new NullBackend(64L << 20), 2, DEPTH, 4096);
        }

        /** Closes the device. */
        @TearDown(Level.Trial)
        public void tearDown() {
            workload.close();
        }
    }

    /** One device over a page-cached image on the native backend. */
    @State(Scope.Benchmark)
    public static class NativeDisk {
        VirtioBlkWorkload workload;
        ImageFile image;
        BlockBackend disk;

        /**
         * Builds the image and the device.
         *
         * @throws IOException if the image cannot be created
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            image = ImageFile.create(64L << 20);
            disk = NativeBackend.open(image.path(), BlockOptions.defaults());
            new VirtioBlkWorkload(disk, 1, DEPTH, 4096).close();
            workload = new VirtioBlkWorkload(disk, 1, DEPTH, 4096);
        }

        /**
         * Closes the device, the disk and the image.
         *
         * @throws IOException if closing fails
         */
        @TearDown(Level.Trial)
        public void tearDown() throws IOException {
            workload.close();
            disk.close();
            image.close();
        }
    }

    /** Which queue a benchmark thread drives. */
    @State(Scope.Thread)
    public static class Queue {
        private static final AtomicInteger NEXT = new AtomicInteger();
        int index;

        /** Picks this thread's queue. */
        @Setup(Level.Trial)
        public void setUp() {
            index = NEXT.getAndIncrement() % 2;
        }
    }

    /**
     * @param disk the null disk
     * @return the used index
     */
    @Benchmark
    @OperationsPerInvocation(DEPTH)
    public int read4kQd32Null(NullDisk disk) {
        return disk.workload.batch(0);
    }

    /**
     * @param disk the native disk
     * @return the used index
     */
    @Benchmark
    @OperationsPerInvocation(DEPTH)
    public int read4kQd32Native(NativeDisk disk) {
        return disk.workload.batch(0);
    }

    /**
     * @param disk the null disk
     * @param queue this thread's queue (queue 0)
     * @return the used index
     */
    @Benchmark
    @Threads(1)
    @OperationsPerInvocation(DEPTH)
    public int oneQueue(NullDisk disk, Queue queue) {
        return disk.workload.batch(0);
    }

    /**
     * @param disk the null disk
     * @param queue this thread's queue
     * @return the used index
     */
    @Benchmark
    @Threads(2)
    @OperationsPerInvocation(DEPTH)
    public int twoQueues(NullDisk disk, Queue queue) {
        return disk.workload.batch(queue.index);
    }
}
