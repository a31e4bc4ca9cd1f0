package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.MmioHandler;
import io.guestdma.memory.SgList;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DmaBlockIo driven by a small disk device that is not IDE (one request slot, its own lock and
 * I/O thread, the way a virtio-blk queue would use it), over guest memory with RAM and a device
 * register window whose pieces go through the bounce pool.
 */
class DmaBlockIoTest {
    private static final long RAM = 1 << 20;
    private static final long REGS = 0x4000_0000L;
    private static final long BROKEN = 0x5000_0000L;

    /** A register file reached by DMA: the bounce path. */
    private static final class Registers implements MmioHandler {
        final byte[] bytes = new byte[0x4000];

        @Override
        public synchronized long read(long offset, int size) {
            long v = 0;
            for (int i = 0; i < size; i++) {
                v |= (bytes[(int) offset + i] & 0xffL) << (8 * i);
            }
            return v;
        }

        @Override
        public synchronized void write(long offset, int size, long value) {
            for (int i = 0; i < size; i++) {
                bytes[(int) offset + i] = (byte) (value >>> (8 * i));
            }
        }
    }

    /** The device: a lock, a pause switch, an I/O thread, and the outcomes it was told. */
    private static final class Disk implements DmaBlockIo.Host {
        final ReentrantLock lock = new ReentrantLock();
        final Condition idle = lock.newCondition();
        final ExecutorService ioThread = Executors.newSingleThreadExecutor();
        final BlockingQueue<DmaBlockIo.Outcome> outcomes = new LinkedBlockingQueue<>();
        volatile boolean paused;
        int stops;

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
            return paused;
        }

        @Override
        public void stoppedRunning() {
            stops++;
            idle.signalAll();
        }

        @Override
        public void completed(DmaBlockIo.Status status, long bytesDone, Throwable cause) {
            outcomes.add(new DmaBlockIo.Outcome(status, bytesDone, cause));
        }

        @Override
        public void submit(Runnable task) {
            ioThread.execute(task); // runs once the caller releases the lock
        }

        DmaBlockIo.Outcome next() throws InterruptedException {
            DmaBlockIo.Outcome o = outcomes.poll(10, TimeUnit.SECONDS);
            assertThat(o).as("an outcome within 10 s").isNotNull();
            return o;
        }
    }

    @TempDir
    Path dir;
    private GuestMemory memory;
    private Registers registers;
    private Disk device;
    private DmaBlockIo dma;
    private BlockBackend disk;

    @BeforeEach
    void setUp() throws IOException {
        registers = new Registers();
        MmioHandler broken = new MmioHandler() {
            @Override
            public long read(long offset, int size) {
                throw new IllegalStateException("broken");
            }

            @Override
            public void write(long offset, int size, long value) {
                throw new IllegalStateException("broken");
            }
        };
        memory = GuestMemory.builder().ram("ram", 0, RAM).mmio("regs", REGS, 0x4000, registers)
                .mmio("broken", BROKEN, 0x1000, broken).bouncePoolBytes(4096).build();
        device = new Disk();
        dma = new DmaBlockIo(memory, device.ioThread, device);
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        disk = NativeBackend.open(image, BlockOptions.defaults());
    }

    @AfterEach
    void tearDown() throws Exception {
        device.ioThread.shutdown();
        assertThat(device.ioThread.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
        assertThat(memory.bouncePool().bytesInFlight()).isZero();
        memory.checkNoOutstandingMappings();
        disk.close();
        memory.close();
    }

    private void start(SgList sg, DmaDirection direction, long offset, DmaBlockIo.ChunkIo io) {
        device.lock();
        try {
            dma.start(sg, direction, offset, 512, io);
        } finally {
            device.unlock();
        }
    }

    private DmaBlockIo.ChunkIo write() {
        return (offset, iov) -> {
            disk.writev(offset, iov);
            return DmaBlockIo.Status.DONE;
        };
    }

    private DmaBlockIo.ChunkIo read() {
        return (offset, iov) -> {
            disk.readv(offset, iov);
            return DmaBlockIo.Status.DONE;
        };
    }

    private static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 13 + seed);
        }
        return b;
    }

    @Test
    void aListMixingRamAndBouncedRegistersGoesToDiskAndBack() throws Exception {
        byte[] a = pattern(3000, 1);
        byte[] r = pattern(0x2200, 2);
        byte[] b = pattern(1000 + 2 * 512 - (3000 + 0x2200 + 1000) % 512, 3);
        memory.write(0x1000, a, 0, a.length);
        System.arraycopy(r, 0, registers.bytes, 0x100, r.length);
        memory.write(0x9000, b, 0, b.length);
        // 3000 B of RAM, 8.5 KiB of registers through a 4 KiB pool, RAM again: several chunks.
        SgList sg = new SgList().add(0x1000, a.length).add(REGS + 0x100, r.length).add(0x9000, b.length);
        assertThat(sg.size() % 512).isZero();
        start(sg, DmaDirection.TO_DEVICE, 4096, write());
        DmaBlockIo.Outcome done = device.next();
        assertThat(done.status()).isEqualTo(DmaBlockIo.Status.DONE);
        assertThat(done.bytesDone()).isEqualTo(sg.size());

        byte[] expected = new byte[(int) sg.size()];
        System.arraycopy(a, 0, expected, 0, a.length);
        System.arraycopy(r, 0, expected, a.length, r.length);
        System.arraycopy(b, 0, expected, a.length + r.length, b.length);
        java.nio.ByteBuffer onDisk = java.nio.ByteBuffer.allocate(expected.length);
        disk.read(4096, onDisk);
        assertThat(onDisk.array()).isEqualTo(expected);

        // Read it back into other places, registers included.
        Arrays.fill(registers.bytes, (byte) 0);
        SgList back = new SgList().add(REGS, 0x2000).add(0x40000, expected.length - 0x2000);
        start(back, DmaDirection.FROM_DEVICE, 4096, read());
        assertThat(device.next().status()).isEqualTo(DmaBlockIo.Status.DONE);
        assertThat(Arrays.copyOfRange(registers.bytes, 0, 0x2000)).isEqualTo(Arrays.copyOfRange(expected, 0, 0x2000));
        byte[] ramPart = new byte[expected.length - 0x2000];
        memory.read(0x40000, ramPart, 0, ramPart.length);
        assertThat(ramPart).isEqualTo(Arrays.copyOfRange(expected, 0x2000, expected.length));
    }

    /**
     * The copy path shares the loop: a list over RAM and registers goes to disk through the heap
     * buffer in chunks of its size, and comes back writing only the bytes the backend produced.
     */
    @Test
    void theCopyPathMovesTheSameBytesThroughAHeapBufferAndWritesBackOnlyTheAccessLength() throws Exception {
        CopyChunks copy = new CopyChunks(memory, 1024);
        byte[] a = pattern(1536, 5);
        byte[] r = pattern(1024, 6);
        memory.write(0x3000, a, 0, a.length);
        System.arraycopy(r, 0, registers.bytes, 0x200, r.length);
        SgList sg = new SgList().add(0x3000, a.length).add(REGS + 0x200, r.length);
        copy.start(sg, DmaDirection.TO_DEVICE);
        device.lock();
        try {
            dma.start(copy, 8192, (offset, iov) -> {
                disk.write(offset, copy.buffer((int) iov.size()));
                return DmaBlockIo.Status.DONE;
            });
        } finally {
            device.unlock();
        }
        assertThat(device.next().bytesDone()).isEqualTo(2560);
        java.nio.ByteBuffer onDisk = java.nio.ByteBuffer.allocate(2560);
        disk.read(8192, onDisk);
        byte[] expected = new byte[2560];
        System.arraycopy(a, 0, expected, 0, a.length);
        System.arraycopy(r, 0, expected, a.length, r.length);
        assertThat(onDisk.array()).isEqualTo(expected);

        // Back into RAM: a backend that fails half way through the second chunk leaves the rest
        // of the guest's buffer as it was (only what was read is written back).
        byte[] before = pattern(2560, 9);
        memory.write(0x20000, before, 0, before.length);
        copy.start(new SgList().add(0x20000, 2560), DmaDirection.FROM_DEVICE);
        int[] calls = new int[1];
        device.lock();
        try {
            dma.start(copy, 8192, (offset, iov) -> {
                if (calls[0]++ == 1) {
                    throw new java.io.IOException("disk gone");
                }
                disk.read(offset, copy.buffer((int) iov.size()));
                return DmaBlockIo.Status.DONE;
            });
        } finally {
            device.unlock();
        }
        DmaBlockIo.Outcome failed = device.next();
        assertThat(failed.status()).isEqualTo(DmaBlockIo.Status.IO_ERROR);
        assertThat(failed.bytesDone()).isEqualTo(1024);
        byte[] after = new byte[2560];
        memory.read(0x20000, after, 0, after.length);
        assertThat(Arrays.copyOfRange(after, 0, 1024)).isEqualTo(Arrays.copyOfRange(expected, 0, 1024));
        assertThat(Arrays.copyOfRange(after, 1024, 2560)).isEqualTo(Arrays.copyOfRange(before, 1024, 2560));
        assertThatThrownBy(() -> new CopyChunks(memory, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void withThePoolHeldElsewhereItWaitsAndContinuesWhereItStopped() throws Exception {
        byte[] r = pattern(4096, 4);
        System.arraycopy(r, 0, registers.bytes, 0, r.length);
        DmaMapping held = (DmaMapping) memory.map(REGS + 0x3000, 4096, DmaDirection.TO_DEVICE);
        SgList sg = new SgList().add(0x2000, 1024).add(REGS, 4096);
        start(sg, DmaDirection.TO_DEVICE, 0, write());
        awaitPhase(DmaBlockIo.Phase.WAITING_FOR_BOUNCE);
        assertThat(dma.bytesDone()).as("the RAM chunk went first").isEqualTo(1024);
        assertThat(device.outcomes).isEmpty();
        memory.unmap(held, 0); // its map client resumes the transfer on the I/O thread
        DmaBlockIo.Outcome done = device.next();
        assertThat(done.status()).isEqualTo(DmaBlockIo.Status.DONE);
        java.nio.ByteBuffer onDisk = java.nio.ByteBuffer.allocate(4096);
        disk.read(1024, onDisk);
        assertThat(onDisk.array()).isEqualTo(r);
    }

    @Test
    void cancellingAWaitingTransferDropsItWithNothingHeld() throws Exception {
        DmaMapping held = (DmaMapping) memory.map(REGS + 0x3000, 4096, DmaDirection.TO_DEVICE);
        start(new SgList().add(REGS, 4096), DmaDirection.TO_DEVICE, 0, write());
        awaitPhase(DmaBlockIo.Phase.WAITING_FOR_BOUNCE);
        device.lock();
        try {
            assertThat(dma.cancel()).isTrue();
            assertThat(dma.phase()).isEqualTo(DmaBlockIo.Phase.IDLE);
        } finally {
            device.unlock();
        }
        memory.unmap(held, 0);
        assertThat(memory.bouncePool().waitingClients()).isZero();
        assertThat(device.outcomes.poll(200, TimeUnit.MILLISECONDS)).as("a dropped transfer reports nothing").isNull();
    }

    @Test
    void aPausedDeviceParksTheTransferAtAChunkBoundaryAndUnparkFinishesIt() throws Exception {
        device.paused = true;
        start(new SgList().add(0, 8192), DmaDirection.TO_DEVICE, 0, write());
        awaitPhase(DmaBlockIo.Phase.PARKED);
        assertThat(dma.bytesDone()).isZero();
        device.paused = false;
        device.lock();
        try {
            dma.unpark();
        } finally {
            device.unlock();
        }
        assertThat(device.next().status()).isEqualTo(DmaBlockIo.Status.DONE);
    }

    @Test
    void backendErrorsOfEveryKindAreIoErrorsWithTheBytesDoneSoFar() throws Exception {
        for (Throwable thrown : new Throwable[] {new IOException("EIO"), new AssertionError("bug"),
                new StackOverflowError()}) {
            int[] calls = new int[1];
            DmaBlockIo.ChunkIo failsSecond = (offset, iov) -> {
                if (calls[0]++ == 1) {
                    throw DmaBlockIoTest.<IOException>sneaky(thrown);
                }
                disk.writev(offset, iov);
                return DmaBlockIo.Status.DONE;
            };
            // RAM and 6 KiB of registers through a 4 KiB pool: two chunks, the second fails.
            start(new SgList().add(0, 4096).add(REGS, 6144), DmaDirection.TO_DEVICE, 0, failsSecond);
            DmaBlockIo.Outcome o = device.next();
            assertThat(o.status()).isEqualTo(DmaBlockIo.Status.IO_ERROR);
            assertThat(o.cause()).isSameAs(thrown);
            assertThat(o.bytesDone()).isEqualTo(8192);
            assertThat(memory.bouncePool().bytesInFlight()).isZero();
            assertThat(memory.liveMappings()).isZero();
        }
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> T sneaky(Throwable t) throws T {
        throw (T) t;
    }

    @Test
    void aFailingDeviceUnderTheDmaIsAMemoryFaultAndInvalidIsPassedThrough() throws Exception {
        start(new SgList().add(0, 512).add(BROKEN, 512), DmaDirection.TO_DEVICE, 0, write());
        DmaBlockIo.Outcome fault = device.next();
        assertThat(fault.status()).isEqualTo(DmaBlockIo.Status.MEMORY_FAULT);
        assertThat(fault.cause()).isInstanceOf(io.guestdma.memory.DmaAccessException.class);
        // A read whose write-back into the failing device fails.
        start(new SgList().add(BROKEN, 512), DmaDirection.FROM_DEVICE, 0, read());
        assertThat(device.next().status()).isEqualTo(DmaBlockIo.Status.MEMORY_FAULT);
        start(new SgList().add(0, 512), DmaDirection.TO_DEVICE, 0, (offset, iov) -> DmaBlockIo.Status.INVALID);
        assertThat(device.next().status()).isEqualTo(DmaBlockIo.Status.INVALID);
    }

    @Test
    void requestCancelEndsARunningTransferAtTheNextChunkBoundary() throws Exception {
        CountDownLatch inFirstChunk = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        DmaBlockIo.ChunkIo gated = (offset, iov) -> {
            inFirstChunk.countDown();
            try {
                release.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            disk.writev(offset, iov);
            return DmaBlockIo.Status.DONE;
        };
        // RAM and 6 KiB of registers through a 4 KiB pool: the rest needs another round of the loop.
        start(new SgList().add(0, 4096).add(REGS, 6144), DmaDirection.TO_DEVICE, 0, gated);
        assertThat(inFirstChunk.await(10, TimeUnit.SECONDS)).isTrue();
        device.lock();
        try {
            assertThat(dma.cancel()).as("running: cannot be dropped").isFalse();
            dma.requestCancel();
        } finally {
            device.unlock();
        }
        release.countDown();
        DmaBlockIo.Outcome o = device.next();
        assertThat(o.status()).isEqualTo(DmaBlockIo.Status.CANCELLED);
        assertThat(o.bytesDone()).isEqualTo(8192);
    }

    private void awaitPhase(DmaBlockIo.Phase wanted) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        device.lock();
        try {
            while (dma.phase() != wanted) {
                assertThat(System.nanoTime()).as("phase %s within 10 s (is %s)", wanted, dma.phase()).isLessThan(deadline);
                device.idle.await(50, TimeUnit.MILLISECONDS);
            }
        } finally {
            device.unlock();
        }
    }
}
