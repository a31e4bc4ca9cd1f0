package io.guestdma.bench;

import io.guestdma.block.BlockCompletion;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.NbdBackend;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.atomic.AtomicLong;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;

/**
 * A remote disk: sequential 64 KiB writes in 16 pieces from mapped guest RAM through
 * {@link NbdBackend} to a qemu-nbd export on a Unix socket, at queue depth 1 (one thread, the
 * synchronous {@link NbdBackend#writev}) and 16 (one thread keeping 16 writes in flight through
 * {@link NbdBackend#submitWritev}, as a device's I/O thread does and as {@code qemu-img bench -d 16}
 * does: each operation waits for a write to complete, then sends the next one from that write's
 * buffer, so operations per second are completed writes). The same export is measured with
 * {@code qemu-img bench -w -s 65536 -d 1|16} in the same run (see {@link QemuImgBench}); the report
 * divides the two. Both clients run on one CPU with their server ({@link SharedCpu}), so that the
 * ratio compares the work each does per request rather than the hypervisor's cross-CPU wake-ups.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class NbdWriteBenchmark extends SuiteSettings {
    /** The export's size: 64 MiB, written round and round. */
    static final long IMAGE_BYTES = 64L << 20;
    static final int WRITE_BYTES = 64 * 1024;
    static final int PIECES = 16;

    private Path dir;
    private Process server;
    private NbdBackend nbd;
    private GuestMemory memory;
    /** Which 64 KiB of the export the next write goes to (all threads share the sequence). */
    private final AtomicLong nextSlot = new AtomicLong();
    /** Which guest buffer the next writer thread gets. */
    private final AtomicLong nextBuffer = new AtomicLong();

    /** One write's guest buffer: 16 mapped pieces of 4 KiB, 4 KiB apart, and its own I/O vector. */
    static final class Buffer {
        final IoVector iov = new IoVector(PIECES);
        private final DmaMapping[] pieces = new DmaMapping[PIECES];

        Buffer(NbdWriteBenchmark bench) {
            long base = 0x100000 + bench.nextBuffer.getAndIncrement() * 2L * WRITE_BYTES;
            for (int i = 0; i < PIECES; i++) {
                pieces[i] = (DmaMapping) bench.memory.map(base + 2L * 4096 * i, 4096, DmaDirection.TO_DEVICE);
                iov.add(pieces[i].segment());
            }
        }

        void unmap(NbdWriteBenchmark bench) {
            for (DmaMapping m : pieces) {
                bench.memory.unmap(m, 0);
            }
        }
    }

    /** The queue-depth-1 writer: one guest buffer, mapped once and reused. */
    @State(Scope.Thread)
    public static class Writer {
        private Buffer buffer;

        /**
         * Maps this thread's guest buffer.
         *
         * @param bench the shared state
         */
        @Setup(Level.Trial)
        public void setUp(NbdWriteBenchmark bench) {
            buffer = new Buffer(bench);
        }

        /**
         * Unmaps the buffer.
         *
         * @param bench the shared state
         */
        @TearDown(Level.Trial)
        public void tearDown(NbdWriteBenchmark bench) {
            buffer.unmap(bench);
        }
    }

    /**
     * The queue-depth-16 writer: 16 guest buffers, each with the write in flight from it and its
     * own {@link BlockCompletion}, reused from write to write, so that a write allocates nothing.
     * Its thread plays a device's I/O thread: it waits for a completion by parking, and a
     * completion (called on the thread that read the reply) marks its write done and unparks
     * the I/O thread, as an event loop's notifier would.
     */
    @State(Scope.Thread)
    public static class Queue {
        static final int DEPTH = 16;
        private final Buffer[] buffers = new Buffer[DEPTH];
        private final Write[] writes = new Write[DEPTH];
        /** Where the next look for a completed write starts: after the one last refilled. */
        private int oldest;
        private volatile Thread ioThread;

        /** One buffer's write in flight: done once its completion was called. */
        static final class Write implements BlockCompletion {
            private final Queue queue;
            private volatile boolean done = true;
            private IOException failure;

            Write(Queue queue) {
                this.queue = queue;
            }

            @Override
            public void completed() {
                done = true;
                LockSupport.unpark(queue.ioThread);
            }

            @Override
            public void failed(IOException e) {
                failure = e;
                completed();
            }

            /** Waits until this write is done (the I/O thread parks meanwhile). */
            void await() {
                queue.ioThread = Thread.currentThread();
                while (!done) {
                    LockSupport.park(this);
                }
            }
        }

        /**
         * Maps the 16 buffers; none is in flight yet.
         *
         * @param bench the shared state
         */
        @Setup(Level.Trial)
        public void setUp(NbdWriteBenchmark bench) {
            for (int i = 0; i < DEPTH; i++) {
                buffers[i] = new Buffer(bench);
                writes[i] = new Write(this);
            }
        }

        /**
         * Waits for every write in flight, then unmaps the buffers.
         *
         * @param bench the shared state
         */
        @TearDown(Level.Trial)
        public void tearDown(NbdWriteBenchmark bench) {
            for (Write w : writes) {
                w.await();
            }
            for (Buffer b : buffers) {
                b.unmap(bench);
            }
        }

        /**
         * Waits until a write is complete (its failure is thrown), then sends the next one from its
         * buffer: like qemu-img bench, any completion makes room for the next request, whichever
         * order the server answers in.
         */
        void next(NbdWriteBenchmark bench) throws IOException {
            int done = completed();
            if (done < 0) {
                ioThread = Thread.currentThread();
                while ((done = completed()) < 0) {
                    LockSupport.park(this);
                }
            }
            Write w = writes[done];
            if (w.failure != null) {
                throw new IOException("a queued write failed", w.failure);
            }
            w.done = false;
            bench.nbd.submitWritev(bench.nextOffset(), buffers[done].iov, w);
            oldest = (done + 1) % DEPTH;
        }

        /** {@return a completed write's index, looking from the oldest on, or -1 if none is complete} */
        private int completed() {
            for (int i = 0; i < DEPTH; i++) {
                int at = (oldest + i) % DEPTH;
                if (writes[at].done) {
                    return at;
                }
            }
            return -1;
        }
    }

    /**
     * Moves this fork onto the {@link SharedCpu}, starts qemu-nbd there on a fresh image and
     * connects.
     *
     * @throws IOException          if the server cannot be started or reached
     * @throws InterruptedException if interrupted while waiting for the server
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException, InterruptedException {
        SharedCpu.pinThisProcess();
        dir = ScratchDirectory.create("guestdma-nbd-bench");
        Path image = dir.resolve("disk.img");
        try (var f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(IMAGE_BYTES);
        }
        server = QemuImgBench.startQemuNbd(image, dir);
        // Close a connection and a guest memory once here (SuiteSettings): the first close in a
        // JVM loads classes, which would otherwise count against the last measured iteration.
        NbdBackend.open(QemuImgBench.address(dir), BlockOptions.defaults()).close();
        GuestMemory.ofRam(1L << 20).close();
        memory = GuestMemory.ofRam(16L << 20);
        nbd = NbdBackend.open(QemuImgBench.address(dir), BlockOptions.defaults());
        // Likewise for what the writers' and this teardown do first in a JVM: unmap a buffer, delete
        // a scratch directory (its file walk: 30-60 KB of class loading and lambda linkage, which
        // read as 2.5 B/op at depth 1 when the teardown did it first, in the last iteration).
        memory.unmap((DmaMapping) memory.map(0, 4096, DmaDirection.TO_DEVICE), 0);
        Path rehearsal = ScratchDirectory.create("guestdma-nbd-rehearsal");
        Files.writeString(rehearsal.resolve("image"), "");
        ScratchDirectory.delete(rehearsal);
    }

    /**
     * Disconnects, stops the server and removes the image (as far as it can: see
     * {@link ScratchDirectory#delete}).
     *
     * @throws InterruptedException if interrupted while waiting for the server to stop
     */
    @TearDown(Level.Trial)
    public void tearDown() throws InterruptedException {
        try {
            nbd.close();
        } finally {
            server.destroy();
            server.waitFor(10, TimeUnit.SECONDS);
            memory.close();
            ScratchDirectory.delete(dir);
        }
    }

    private long nextOffset() {
        return (nextSlot.getAndIncrement() * WRITE_BYTES) % IMAGE_BYTES;
    }

    /**
     * @param writer this thread's buffer
     * @return the bytes written
     * @throws IOException if the write fails
     */
    @Benchmark
    @Threads(1)
    public long writeQd1(Writer writer) throws IOException {
        nbd.writev(nextOffset(), writer.buffer.iov);
        return WRITE_BYTES;
    }

    /**
     * @param queue this thread's 16 buffers and their writes in flight
     * @return the bytes written
     * @throws IOException if a write fails
     */
    @Benchmark
    @Threads(1)
    public long writeQd16(Queue queue) throws IOException {
        queue.next(this);
        return WRITE_BYTES;
    }
}
