package io.guestdma.migration;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.DmaBlockIo;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.DmaStream;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.RamRegion;
import io.guestdma.memory.Region;
import io.guestdma.memory.SgList;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * A load generator standing in for a running guest: threads that keep writing guest RAM the ways
 * devices and vCPUs do (map/write/unmap with an access length shorter than the mapping,
 * streaming DMA through {@link DmaStream}, disk reads into RAM through the block layer's
 * {@link DmaBlockIo}, and the copy path), at full speed or throttled. It is
 * also the test's {@link Switchover}: stopping parks every thread between writes, so no mapping
 * is live, which is what a machine's drain guarantees.
 */
final class GuestLoad implements Switchover, AutoCloseable {
    private final GuestMemory memory;
    private final List<RamRegion> ram = new ArrayList<>();
    private final List<Thread> threads = new ArrayList<>();
    private final Object lock = new Object();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final AtomicLong writes = new AtomicLong();
    private final long pauseNanos;
    /** Guarded by lock. */
    private boolean stopRequested;
    private int busy;
    private boolean closed;

    GuestLoad(GuestMemory memory, long seed, long pauseNanos) {
        this.memory = memory;
        this.pauseNanos = pauseNanos;
        for (Region r : memory.regions()) {
            if (r instanceof RamRegion rr) {
                ram.add(rr);
            }
        }
        threads.add(Thread.ofPlatform().daemon().name("load-map").unstarted(() -> loop(seed, this::mapWrite)));
        threads.add(Thread.ofPlatform().daemon().name("load-stream").unstarted(() -> loop(seed + 1, this::streamWrite)));
        threads.add(Thread.ofPlatform().daemon().name("load-copy").unstarted(() -> loop(seed + 2, this::copyWrite)));
        threads.add(Thread.ofPlatform().daemon().name("load-disk").unstarted(() -> loop(seed + 3, this::diskRead)));
    }

    /** A 1 MiB disk image of random bytes, shared by every load (read only). */
    private static final java.nio.file.Path DISK = disk();

    private static java.nio.file.Path disk() {
        try {
            java.nio.file.Path image = java.nio.file.Files.createTempFile("guest-load", ".img");
            image.toFile().deleteOnExit();
            byte[] bytes = new byte[1 << 20];
            new SplittableRandom(1).nextBytes(bytes);
            return java.nio.file.Files.write(image, bytes);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private FileChannelBackend backend;

    /** A disk read into guest RAM the way disk controllers do it: DmaBlockIo over the block layer. */
    private void diskRead(SplittableRandom random) {
        try {
            if (backend == null) {
                backend = FileChannelBackend.open(DISK, BlockOptions.defaults().withReadOnly(true).withLock(false));
            }
            SgList sg = new SgList();
            for (int i = 0, n = 1 + random.nextInt(3); i < n; i++) {
                int length = 512 * (1 + random.nextInt(16));
                sg.add(address(random, length), length);
            }
            java.util.concurrent.CompletableFuture<DmaBlockIo.Status> done = new java.util.concurrent.CompletableFuture<>();
            java.util.concurrent.locks.ReentrantLock deviceLock = new java.util.concurrent.locks.ReentrantLock();
            DmaBlockIo io = new DmaBlockIo(memory, Runnable::run, new DmaBlockIo.Host() {
                @Override
                public void lock() {
                    deviceLock.lock();
                }

                @Override
                public void unlock() {
                    deviceLock.unlock();
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
                    done.complete(status);
                }

                @Override
                public void submit(Runnable task) {
                    task.run();
                }
            });
            long sector = random.nextLong((1 << 20) / 512 - 64);
            io.start(sg, DmaDirection.FROM_DEVICE, sector * 512, 512, (offset, iov) -> {
                backend.readv(offset, iov);
                return DmaBlockIo.Status.DONE;
            });
            DmaBlockIo.Status status = done.get(10, java.util.concurrent.TimeUnit.SECONDS);
            if (status != DmaBlockIo.Status.DONE) {
                throw new AssertionError("disk read ended " + status);
            }
        } catch (Exception e) {
            throw new AssertionError("disk read failed", e);
        }
    }

    GuestLoad start() {
        threads.forEach(Thread::start);
        return this;
    }

    long writes() {
        return writes.get();
    }

    void checkNoFailure() {
        if (failure.get() != null) {
            throw new AssertionError("load generator failed", failure.get());
        }
    }

    private interface Step {
        void run(SplittableRandom random);
    }

    private void loop(long seed, Step step) {
        SplittableRandom random = new SplittableRandom(seed);
        try {
            while (true) {
                synchronized (lock) {
                    while (stopRequested && !closed) {
                        lock.wait();
                    }
                    if (closed) {
                        return;
                    }
                    busy++;
                }
                try {
                    step.run(random);
                    writes.incrementAndGet();
                } finally {
                    synchronized (lock) {
                        busy--;
                        lock.notifyAll();
                    }
                }
                if (pauseNanos > 0) {
                    LockSupport.parkNanos(pauseNanos);
                }
            }
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        }
    }

    private long address(SplittableRandom random, long maxLength) {
        RamRegion r = ram.get(random.nextInt(ram.size()));
        long length = Math.min(maxLength, r.size());
        return r.base() + random.nextLong(r.size() - length + 1);
    }

    private void mapWrite(SplittableRandom random) {
        int length = 1 + random.nextInt(3 * 4096);
        long address = address(random, length);
        if (memory.map(address, length, DmaDirection.FROM_DEVICE) instanceof DmaMapping m) {
            long written = 1 + random.nextLong(m.length());
            m.segment().asSlice(0, written).fill((byte) (1 + random.nextInt(255)));
            // A short transfer: only the first `written` bytes are written and reported, so only their
            // pages are marked (the 2009 review's access_len): the destination must still match.
            memory.unmap(m, written);
        }
    }

    private void streamWrite(SplittableRandom random) {
        SgList sg = new SgList();
        for (int i = 0, n = 1 + random.nextInt(4); i < n; i++) {
            int length = 512 * (1 + random.nextInt(8));
            sg.add(address(random, length), length);
        }
        DmaStream stream = new DmaStream(memory);
        stream.start(sg, DmaDirection.FROM_DEVICE, 512);
        byte value = (byte) random.nextInt(256);
        while (!stream.done()) {
            long n = stream.mapNext(Long.MAX_VALUE);
            if (n == 0) {
                break;
            }
            stream.iov().fill(0, value, n);
            stream.unmapChunk(n);
        }
    }

    private void copyWrite(SplittableRandom random) {
        int length = 1 + random.nextInt(2048);
        byte[] bytes = new byte[length];
        random.nextBytes(bytes);
        memory.write(address(random, length), bytes, 0, length);
    }

    /** Parks every load thread between two writes and waits until none is writing. */
    @Override
    public void stopAndDrain() throws InterruptedException {
        synchronized (lock) {
            stopRequested = true;
            while (busy > 0) {
                lock.wait();
            }
        }
    }

    @Override
    public void resume() {
        synchronized (lock) {
            stopRequested = false;
            lock.notifyAll();
        }
    }

    boolean isStopped() {
        synchronized (lock) {
            return stopRequested;
        }
    }

    @Override
    public void close() {
        synchronized (lock) {
            closed = true;
            lock.notifyAll();
        }
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted while stopping the load", e);
            }
        }
        if (backend != null) {
            try {
                backend.close();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
        checkNoFailure();
    }
}
