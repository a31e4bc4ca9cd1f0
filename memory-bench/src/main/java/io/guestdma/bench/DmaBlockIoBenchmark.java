package io.guestdma.bench;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.DmaBlockIo;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.SgList;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The shared DMA loop alone: {@link DmaBlockIo} running a 64 KiB write in 16 pieces of guest RAM to
 * a {@link NullBackend}, driven by the smallest device that can (a lock, no registers, completion
 * counted), measured like {@link IdeOverheadBenchmark} so the two compare: the IDE's cost is this
 * loop plus its registers and PRD walk.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class DmaBlockIoBenchmark extends SuiteSettings {
    private static final TransferShape SHAPE = TransferShape.of("64k");

    private GuestMemory memory;
    private DmaBlockIo dma;
    private final SgList sg = new SgList(SHAPE.pieces());
    private final ReentrantLock lock = new ReentrantLock();
    private Runnable submitted;
    private long completed;
    private final BlockBackend disk = new NullBackend(IdeWorkload.IMAGE_BYTES);
    private final DmaBlockIo.ChunkIo write = (offset, iov) -> {
        disk.writev(offset, iov);
        return DmaBlockIo.Status.DONE;
    };

    /** A device with one request slot: the loop runs inline when the request is submitted. */
    private final DmaBlockIo.Host host = new DmaBlockIo.Host() {
        @Override
        public void lock() {
            lock.lock();
        }

        @Override
        public void unlock() {
            lock.unlock();
        }

        @Override
        public boolean paused() {
            return false;
        }

        @Override
        public void stoppedRunning() {
        }

        @Override
        public void completed(DmaBlockIo.Status status, long bytesDone, Throwable cause) {
            completed += bytesDone;
        }

        @Override
        public void submit(Runnable task) {
            submitted = task; // run once the lock is released, as a device's outermost unlock would
        }
    };

    /** Guest RAM and the 16-piece list the IDE workload uses. */
    @Setup(Level.Trial)
    public void setUp() {
        GuestMemory.ofRam(IdeWorkload.RAM_BYTES).close(); // the first close in a JVM allocates (see SuiteSettings)
        memory = GuestMemory.ofRam(IdeWorkload.RAM_BYTES);
        dma = new DmaBlockIo(memory, Runnable::run, host);
        int piece = SHAPE.pieceBytes();
        for (int i = 0; i < SHAPE.pieces(); i++) {
            sg.add(0x100_0000L + 2L * piece * i, piece); // non-adjacent pieces, as the IDE workload's
        }
    }

    /** Frees guest RAM. */
    @TearDown(Level.Trial)
    public void tearDown() {
        memory.close();
    }

    /**
     * @return bytes completed so far
     * @throws IOException never: the loop reports failures as outcomes
     */
    @Benchmark
    public long write() throws IOException {
        lock.lock();
        try {
            dma.start(sg, DmaDirection.TO_DEVICE, 0, 512, write);
        } finally {
            lock.unlock();
        }
        Runnable task = submitted;
        submitted = null;
        task.run();
        return completed;
    }
}
