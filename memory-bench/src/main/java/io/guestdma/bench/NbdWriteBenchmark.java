package io.guestdma.bench;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.NbdAddress;
import io.guestdma.block.NbdBackend;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
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
 * {@link NbdBackend} to a qemu-nbd export on a Unix socket, at queue depth 1 (one thread) and 16
 * (sixteen threads sharing one connection, their requests in flight together). The same export is
 * measured with {@code qemu-img bench -w -s 65536 -d 1|16} in the same run (see {@link QemuImgBench});
 * the report divides the two.
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

    /** One writer's guest buffer: 16 mapped pieces of 4 KiB, 4 KiB apart, and its own I/O vector. */
    @State(Scope.Thread)
    public static class Writer {
        private final IoVector iov = new IoVector(PIECES);
        private DmaMapping[] pieces;

        /**
         * Maps this thread's guest buffer once; the benchmark reuses the vector.
         *
         * @param bench the shared state
         */
        @Setup(Level.Trial)
        public void setUp(NbdWriteBenchmark bench) {
            long base = 0x100000 + bench.nextBuffer.getAndIncrement() * 2L * WRITE_BYTES;
            pieces = new DmaMapping[PIECES];
            for (int i = 0; i < PIECES; i++) {
                pieces[i] = (DmaMapping) bench.memory.map(base + 2L * 4096 * i, 4096, DmaDirection.TO_DEVICE);
                iov.add(pieces[i].segment());
            }
        }

        /**
         * Unmaps the buffer.
         *
         * @param bench the shared state
         */
        @TearDown(Level.Trial)
        public void tearDown(NbdWriteBenchmark bench) {
            for (DmaMapping m : pieces) {
                bench.memory.unmap(m, 0);
            }
        }
    }

    /**
     * Starts qemu-nbd on a fresh image and connects.
     *
     * @throws IOException          if the server cannot be started or reached
     * @throws InterruptedException if interrupted while waiting for the server
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException, InterruptedException {
        dir = QemuImgBench.imageDirectory("guestdma-nbd-bench");
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
    }

    /**
     * Disconnects, stops the server and removes the image.
     *
     * @throws IOException          if the image cannot be removed
     * @throws InterruptedException if interrupted while waiting for the server to stop
     */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException, InterruptedException {
        try {
            nbd.close();
        } finally {
            server.destroy();
            server.waitFor(10, TimeUnit.SECONDS);
            memory.close();
            try (var files = Files.list(dir)) {
                for (Path p : files.toList()) {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(dir);
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
        nbd.writev(nextOffset(), writer.iov);
        return WRITE_BYTES;
    }

    /**
     * @param writer this thread's buffer
     * @return the bytes written
     * @throws IOException if the write fails
     */
    @Benchmark
    @Threads(16)
    public long writeQd16(Writer writer) throws IOException {
        nbd.writev(nextOffset(), writer.iov);
        return WRITE_BYTES;
    }
}
