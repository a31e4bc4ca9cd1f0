package io.guestdma.virtio;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.CopyChunks;
import io.guestdma.block.DiskGeometry;
import io.guestdma.block.DmaBlockIo;
import io.guestdma.block.ErrorPolicy;
import io.guestdma.memory.AccessResult;
import io.guestdma.memory.AddressSpace;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.SgList;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Objects;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * virtio-blk (virtio 1.x, section 5.2) over any {@link BlockBackend}, with QEMU 7.2's feature set
 * and request semantics: VIRTIO_BLK_T_IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES; SEG_MAX,
 * GEOMETRY, BLK_SIZE (512), FLUSH, TOPOLOGY, CONFIG_WCE, DISCARD, WRITE_ZEROES, RO for read-only
 * disks, SIZE_MAX when configured, MQ with more than one queue; indirect descriptors, EVENT_IDX.
 *
 * <p><b>Data path.</b> Each queue has its own I/O thread (or, configured so, runs on the
 * notifying thread before the notify returns). A notify wakes it; it takes requests
 * from the ring, reads the 16-byte header from the readable buffers, and hands the data buffers
 * as one scatter-gather list to {@link DmaBlockIo} (zero-copy, 512-byte aligned chunks; or, with
 * {@link VirtioBlkConfig#copyPath()}, through a heap buffer), then
 * writes the status byte (the last writable byte), puts the head in the used ring and interrupts
 * as the driver asked. Requests of one queue complete in order.
 *
 * <p><b>Checks.</b> A request outside the disk, or whose data is not a multiple of 512 bytes, gets
 * VIRTIO_BLK_S_IOERR; an unknown type, a discard or write-zeroes with flags it must not have or
 * without the OUT bit gets VIRTIO_BLK_S_UNSUPP. A request without a readable header of 16 bytes
 * or without a writable status byte breaks the device (DEVICE_NEEDS_RESET), as in QEMU.
 *
 * <p><b>Errors.</b> A failed read follows the read policy, a failed write, flush, discard or
 * write-zeroes the write policy: REPORT completes it with VIRTIO_BLK_S_IOERR, IGNORE with
 * VIRTIO_BLK_S_OK, STOP holds it and stops every queue until {@link #resume()} retries it
 * (QEMU's werror=stop), ENOSPC stops for a full host disk and reports anything else. A
 * guest-memory fault under the transfer is reported as IOERR.
 *
 * <p>Thread-safe. {@link #close()} stops the I/O threads; the backend is the caller's.
 */
public final class VirtioBlk implements VirtioDevice, AutoCloseable {
    /** The virtio device type of a block device. */
    public static final int DEVICE_ID = 2;
    /** Request type: read. */
    public static final int T_IN = 0;
    /** Request type: write. */
    public static final int T_OUT = 1;
    /** Request type: flush. */
    public static final int T_FLUSH = 4;
    /** Request type: SCSI passthrough (legacy; refused). */
    public static final int T_SCSI_CMD = 2;
    /** Request type: the serial. */
    public static final int T_GET_ID = 8;
    /** Request type: discard. */
    public static final int T_DISCARD = 11;
    /** Request type: write zeroes. */
    public static final int T_WRITE_ZEROES = 13;
    /** Status: success. */
    public static final int S_OK = 0;
    /** Status: I/O error. */
    public static final int S_IOERR = 1;
    /** Status: unsupported request. */
    public static final int S_UNSUPP = 2;
    /** Feature bit: size_max is valid. */
    public static final long F_SIZE_MAX = 1L << 1;
    /** Feature bit: seg_max is valid. */
    public static final long F_SEG_MAX = 1L << 2;
    /** Feature bit: geometry is valid. */
    public static final long F_GEOMETRY = 1L << 4;
    /** Feature bit: the disk is read-only. */
    public static final long F_RO = 1L << 5;
    /** Feature bit: blk_size is valid. */
    public static final long F_BLK_SIZE = 1L << 6;
    /** Feature bit: flush. */
    public static final long F_FLUSH = 1L << 9;
    /** Feature bit: topology fields are valid. */
    public static final long F_TOPOLOGY = 1L << 10;
    /** Feature bit: the write-cache mode is in the configuration (writable). */
    public static final long F_CONFIG_WCE = 1L << 11;
    /** Feature bit: several queues. */
    public static final long F_MQ = 1L << 12;
    /** Feature bit: discard. */
    public static final long F_DISCARD = 1L << 13;
    /** Feature bit: write zeroes. */
    public static final long F_WRITE_ZEROES = 1L << 14;
    /** Bytes of the configuration space (QEMU's, up to write_zeroes_may_unmap). */
    public static final int CONFIG_SIZE = 57;

    private static final int SECTOR = 512;
    private static final int HEADER = 16;
    private static final int ID_BYTES = 20;
    private static final long MAX_DISCARD_SECTORS = 0x3fffff;
    private static final int T_BARRIER = 0x8000_0000;
    /** The copy path's buffer: 128 KiB, the IDE's COPY chunk (QEMU's dma buffer of 256 sectors). */
    private static final int COPY_CHUNK_BYTES = 256 * 512;
    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(64 * 1024).asReadOnlyBuffer();

    private final BlockBackend backend;
    private final VirtioBlkConfig config;
    private final AddressSpace memory;
    private final long sectors;
    private final DiskGeometry geometry;
    private final boolean readOnly;
    private final long features;
    private final Worker[] workers;
    /**
     * Allocated after each worker, so that the objects one queue's thread writes per request
     * (its locks, its request state, its DMA loop) do not share a cache line with the next
     * queue's, which the allocator would otherwise place right after them.
     */
    private final long[][] spacers;
    private static final int SPACER_LONGS = 32;
    /**
     * Per thread, whether it is one of this device's I/O threads or is processing one of its queues
     * inline now: what {@link #runsOnDeviceThread()} answers. Kept with the thread rather than in
     * the queues' state, so that the check on every register access reads nothing another queue's
     * thread writes (two queues on two threads would otherwise bounce each other's cache lines).
     */
    private final ThreadLocal<DeviceThreadMark> deviceThread = ThreadLocal.withInitial(DeviceThreadMark::new);
    private final Object stopLock = new Object();
    private volatile boolean writeCache = true;
    /** Whether the driver wrote the writeback field since the last reset (else the device's default holds). */
    private volatile boolean writeCacheChosen;
    private volatile boolean stopped;
    /** The machine is stopped: no queue starts a request (see {@link #pause()}). */
    private volatile boolean paused;
    private volatile Runnable stopListener = () -> { };
    private volatile ErrorListener errorListener = (write, action, cause) -> { };
    private Bus bus;

    /**
     * Creates the device; its I/O threads start at once and idle until a queue is notified.
     *
     * @param memory  the bus master's view of guest memory (the same the transport is given)
     * @param backend the disk image
     * @param config  the device's settings
     * @throws UncheckedIOException if the image's first sector (for the geometry) cannot be read
     * @throws NullPointerException if an argument is null
     */
    public VirtioBlk(AddressSpace memory, BlockBackend backend, VirtioBlkConfig config) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.backend = Objects.requireNonNull(backend, "backend");
        this.config = Objects.requireNonNull(config, "config");
        this.sectors = backend.size() / SECTOR;
        try {
            this.geometry = DiskGeometry.guess(backend, sectors);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the image's partition table", e);
        }
        this.readOnly = config.readOnly() || backend.isReadOnly();
        long f = F_SEG_MAX | F_GEOMETRY | F_BLK_SIZE | F_FLUSH | F_TOPOLOGY | F_CONFIG_WCE | F_DISCARD | F_WRITE_ZEROES
                | VirtioPci.F_INDIRECT_DESC | VirtioPci.F_EVENT_IDX | VirtioPci.F_VERSION_1 | VirtioPci.F_RING_RESET;
        if (readOnly) {
            f |= F_RO;
        }
        if (config.queues() > 1) {
            f |= F_MQ;
        }
        if (config.sizeMax() > 0) {
            f |= F_SIZE_MAX;
        }
        this.features = f;
        this.workers = new Worker[config.queues()];
        this.spacers = new long[workers.length][];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Worker(i);
            spacers[i] = new long[SPACER_LONGS];
        }
    }

    @Override
    public int deviceId() {
        return DEVICE_ID;
    }

    @Override
    public long features() {
        return features;
    }

    @Override
    public int queueCount() {
        return workers.length;
    }

    @Override
    public int queueSize() {
        return config.queueSize();
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    /** {@return the disk's size in 512-byte sectors (the capacity field)} */
    public long capacity() {
        return sectors;
    }

    /** {@return whether writes are cached (the wce field); false makes every write durable before it completes} */
    public boolean writeCacheEnabled() {
        return writeCache;
    }

    @Override
    public int configRead(int offset, int size) {
        byte[] c = new byte[64];
        ByteBuffer b = ByteBuffer.wrap(c).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0, sectors);
        b.putInt(8, config.sizeMax());
        b.putInt(12, config.segMax());
        b.putShort(16, (short) geometry.cylinders());
        c[18] = (byte) geometry.heads();
        c[19] = (byte) geometry.sectors();
        b.putInt(20, SECTOR);
        c[32] = (byte) (writeCache ? 1 : 0);
        b.putShort(34, (short) workers.length);
        b.putInt(36, (int) MAX_DISCARD_SECTORS);
        b.putInt(40, 1);
        b.putInt(44, 1);
        b.putInt(48, (int) MAX_DISCARD_SECTORS);
        b.putInt(52, 1);
        c[56] = 1; // write_zeroes_may_unmap: QEMU always says so
        int value = 0;
        for (int i = 0; i < size && offset + i < c.length; i++) {
            value |= (c[offset + i] & 0xff) << (8 * i);
        }
        return value;
    }

    @Override
    public void configWrite(int offset, int size, int value) {
        if (offset <= 32 && offset + size > 32) {
            writeCache = ((value >>> (8 * (32 - offset))) & 0xff) != 0;
            writeCacheChosen = true;
        }
    }

    @Override
    public void attach(Bus transport) {
        if (bus != null) {
            throw new IllegalStateException("the device is attached already");
        }
        bus = Objects.requireNonNull(transport, "transport");
    }

    @Override
    public void statusChanged(int status) {
        if ((status & VirtioPci.STATUS_DRIVER_OK) == 0) {
            return;
        }
        if ((bus.negotiatedFeatures() & F_CONFIG_WCE) == 0) {
            writeCache = (bus.negotiatedFeatures() & F_FLUSH) != 0;
        } else if (!writeCacheChosen) {
            // The writeback field as the driver read it: the device's default. A transport that
            // does not pass the guest's resets on (vhost-user: QEMU only stops and restarts the
            // rings) would otherwise keep the write-through an earlier driver without FLUSH
            // (SeaBIOS) got, while the guest's kernel reads writeback and never asks for it.
            writeCache = true;
        }
    }

    @Override
    public void queueNotified(int index) {
        if (index >= 0 && index < workers.length) {
            workers[index].kick();
        }
    }

    @Override
    public void reset() {
        for (Worker w : workers) {
            w.quiesce();
        }
        synchronized (stopLock) {
            stopped = false;
        }
        writeCache = true;
        writeCacheChosen = false;
    }

    @Override
    public void queueReset(int index) {
        if (index >= 0 && index < workers.length) {
            workers[index].quiesce();
        }
    }

    @Override
    public boolean runsOnDeviceThread() {
        return deviceThread.get().depth > 0;
    }

    /** How deep a thread is in this device's work (an I/O thread counts 1 for its whole life). */
    private static final class DeviceThreadMark {
        int depth;
    }

    /** Hears about every request the backend fails, whatever the policy did with it (QEMU's BLOCK_IO_ERROR). */
    @FunctionalInterface
    public interface ErrorListener {
        /**
         * A request failed. Called on the thread that ran it, before the request completes (or, under
         * STOP, before the device stops); must not block on the device.
         *
         * @param write  whether it was a write, flush, discard or write-zeroes (else a read)
         * @param action what the policy does with it: REPORT, IGNORE or STOP
         * @param cause  the backend's failure, or null when the device refused the request itself
         *               (a write to a read-only disk)
         */
        void failed(boolean write, ErrorPolicy action, Throwable cause);
    }

    /**
     * Sets who hears about failed requests; replaces any earlier listener.
     *
     * @param listener the callback
     * @throws NullPointerException if listener is null
     */
    public void onError(ErrorListener listener) {
        errorListener = Objects.requireNonNull(listener, "listener");
    }

    /**
     * Sets what runs (on an I/O thread) when a request fails under the STOP policy and the device
     * stops; replaces any earlier listener.
     *
     * @param listener the callback
     * @throws NullPointerException if listener is null
     */
    public void onStop(Runnable listener) {
        stopListener = Objects.requireNonNull(listener, "listener");
    }

    /**
     * Stops every queue after the request it is running; returns once none runs. Requests the
     * guest makes available meanwhile wait in the ring.
     */
    @Override
    public void pause() {
        paused = true;
        for (Worker w : workers) {
            w.awaitNotRunning();
        }
    }

    /** Lets every queue run again and looks at each ring. */
    @Override
    public void unpause() {
        paused = false;
        for (Worker w : workers) {
            w.kick();
        }
    }

    /** {@return whether a failed request stopped the device (STOP policy)} */
    public boolean isStopped() {
        return stopped;
    }

    /** Retries the held requests of a stopped device and lets every queue run again. */
    public void resume() {
        synchronized (stopLock) {
            if (!stopped) {
                return;
            }
            stopped = false;
        }
        for (Worker w : workers) {
            w.kick();
        }
    }

    /**
     * {@return whether no queue has work scheduled or running (a stopped device with a held request
     * is idle)}
     */
    public boolean isIdle() {
        for (Worker w : workers) {
            if (w.scheduled.get() || w.runLock.isLocked()) {
                return false;
            }
        }
        return true;
    }

    /**
     * Writes the write-cache setting, whether a failed request stopped the device, and for each
     * queue the head index of the request the STOP policy holds (QEMU's VirtIOBlockReq list in
     * virtio_blk_save_device).
     *
     * @throws IllegalStateException if a queue is processing a request
     */
    @Override
    public void saveState(io.guestdma.migration.StateWriter out) {
        if (!isIdle()) {
            throw new IllegalStateException("virtio-blk has requests running: stop it before saving");
        }
        out.bool(writeCache).bool(stopped).u16(workers.length);
        for (Worker w : workers) {
            w.runLock.lock();
            try {
                out.bool(w.holding);
                if (w.holding) {
                    out.u16(w.chain.head());
                }
            } finally {
                w.runLock.unlock();
            }
        }
    }

    /**
     * Reads what {@link #saveState} wrote: each held request's chain is read again from the
     * migrated descriptor table by its head index, and is retried by {@link #resume()} (or the
     * queue's next notification if the device was not stopped), as QEMU's virtio_blk_load_device
     * and its dataplane restart do.
     *
     * @throws io.guestdma.migration.MigrationFormatException if the queue count differs or a held
     *     chain is not a valid request chain in the destination's memory
     */
    @Override
    public void loadState(io.guestdma.migration.StateReader in) throws io.guestdma.migration.MigrationFormatException {
        boolean cache = in.bool("virtio-blk.writeCache");
        boolean wasStopped = in.bool("virtio-blk.stopped");
        int count = in.u16("virtio-blk.queues");
        if (count != workers.length) {
            throw in.failure("virtio-blk.queues", count + " queues, the destination has " + workers.length);
        }
        for (Worker w : workers) {
            String field = "virtio-blk.queue" + w.index + ".held";
            boolean held = in.bool(field);
            w.runLock.lock();
            try {
                w.holding = false;
                if (held) {
                    int head = in.u16(field + ".head");
                    Virtqueue q = bus.queue(w.index);
                    String why;
                    synchronized (q) {
                        why = q.inUse() == 0 ? "no request is taken from the queue" : q.reread(head, w.chain);
                    }
                    if (why != null) {
                        throw in.failure(field, "the chain at head " + head + " cannot be read again: " + why);
                    }
                    w.holding = true;
                }
            } finally {
                w.runLock.unlock();
            }
        }
        writeCache = cache;
        synchronized (stopLock) {
            stopped = wasStopped;
        }
    }

    /** Stops the I/O threads (requests in flight finish first). Idempotent. */
    @Override
    public void close() {
        for (Worker w : workers) {
            if (w.executor != null) {
                w.executor.shutdown();
            }
        }
        for (Worker w : workers) {
            if (w.executor == null) {
                continue;
            }
            try {
                w.executor.awaitTermination(30, java.util.concurrent.TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** What one request ends with, before the error policy. */
    private enum Result { OK, IO_ERROR, FAILED_MEMORY, UNSUPPORTED, INVALID, BROKEN }

    /** One queue's I/O thread and its request slot. */
    private final class Worker implements DmaBlockIo.Host, Virtqueue.ChainProcessor {
        private static final VarHandle TRANSFER_DONE;

        static {
            try {
                TRANSFER_DONE = MethodHandles.lookup().findVarHandle(Worker.class, "transferDone", boolean.class);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        private final int index;
        private final ExecutorService executor;
        private final AtomicBoolean scheduled = new AtomicBoolean();
        private final ReentrantLock runLock = new ReentrantLock();
        private final ReentrantLock lock = new ReentrantLock();
        private final Condition finished = lock.newCondition();
        private final DmaBlockIo blockIo;
        private final DescriptorChain chain = new DescriptorChain();
        private final SgList data = new SgList(16);
        private final MemorySegment header = MemorySegment.ofArray(new long[2]);
        private final MemorySegment statusByte = MemorySegment.ofArray(new byte[1]);
        private final Runnable runTask = this::run;
        private final DmaBlockIo.ChunkIo readChunk = (offset, iov) -> {
            backend.readv(offset, iov);
            return DmaBlockIo.Status.DONE;
        };
        private final DmaBlockIo.ChunkIo writeChunk = (offset, iov) -> {
            backend.writev(offset, iov);
            return DmaBlockIo.Status.DONE;
        };
        /** The copy path's chunks, or null when data is mapped. */
        private final CopyChunks copyChunks;
        private final DmaBlockIo.ChunkIo copyReadChunk = this::copyRead;
        private final DmaBlockIo.ChunkIo copyWriteChunk = this::copyWrite;
        private Runnable submitted;
        /** Set (release) under lock by the completion; read with acquire when the transfer ran on this thread. */
        private boolean transferDone;
        private DmaBlockIo.Status transferStatus;
        /** A request held by the STOP policy, retried on resume. */
        private boolean holding;
        /** Why the backend failed the current request, for the error listener. */
        private Throwable failure;
        /** Bumped by a reset: a drain that started before stops touching the queue. */
        private volatile int epoch;
        /** The epoch the drain in progress started in, and its queue. */
        private int drainEpoch;
        private Virtqueue drainQueue;

        Worker(int index) {
            this.index = index;
            this.executor = !config.ioThreads() ? null : Executors.newSingleThreadExecutor(r ->
                    Thread.ofPlatform().daemon().name("virtio-blk-q" + index).unstarted(() -> {
                        deviceThread.get().depth = 1;
                        r.run();
                    }));
            this.blockIo = new DmaBlockIo(memory, Runnable::run, this);
            this.copyChunks = config.copyPath() ? new CopyChunks(memory, COPY_CHUNK_BYTES) : null;
        }

        void kick() {
            if (executor == null) {
                // Inline: one acquisition of runLock, and the mark in this thread's own state, so that a
                // request costs no more lock or volatile traffic than the queue's work needs.
                DeviceThreadMark mark = deviceThread.get();
                runLock.lock();
                mark.depth++;
                try {
                    runLocked();
                } finally {
                    mark.depth--;
                    runLock.unlock();
                }
                return;
            }
            if (scheduled.compareAndSet(false, true)) {
                try {
                    executor.execute(runTask);
                } catch (java.util.concurrent.RejectedExecutionException e) {
                    scheduled.set(false); // closed
                }
            }
        }

        /** Waits for the drain in progress, then forgets any held request. */
        void quiesce() {
            epoch++;
            runLock.lock();
            try {
                holding = false;
            } finally {
                runLock.unlock();
            }
        }

        /** Waits until this queue runs no request (a run that starts later sees the pause). */
        void awaitNotRunning() {
            runLock.lock();
            runLock.unlock();
        }

        /**
         * The I/O thread's task. The mark is cleared under runLock, before the drain (a kick after
         * it schedules another run): cleared before the lock, {@link #isIdle()} could see neither
         * and call a queue about to run idle.
         */
        private void run() {
            runLock.lock();
            try {
                scheduled.set(false);
                runLocked();
            } finally {
                runLock.unlock();
            }
        }

        /** Serves the queue; under runLock. */
        private void runLocked() {
            try {
                drain(epoch);
            } catch (RuntimeException | Error e) {
                // A device bug must not kill the queue silently: break the device, visibly.
                System.getLogger(VirtioBlk.class.getName()).log(System.Logger.Level.ERROR,
                        "virtio-blk queue " + index + " failed", e);
                bus.needsReset("internal error: " + e);
                if (DmaBlockIo.fatal(e)) {
                    throw e;
                }
            }
        }

        private void drain(int startEpoch) {
            if (paused) {
                return; // unpause() kicks every queue again
            }
            Virtqueue q = bus.queue(index);
            if (holding) {
                if (stopped) {
                    return;
                }
                holding = false;
                if (!process(q, startEpoch)) {
                    return;
                }
            }
            drainEpoch = startEpoch;
            drainQueue = q;
            q.drain(chain, this);
        }

        @Override
        public boolean stopBeforeNext() {
            return stopped || paused || epoch != drainEpoch;
        }

        @Override
        public boolean process(DescriptorChain popped) {
            Virtqueue q = drainQueue;
            if (process(q, drainEpoch)) {
                return true;
            }
            if (!holding) {
                notificationsOn(q); // as QEMU, after a request that broke the device
            }
            return false;
        }

        @Override
        public void ringBroken(String why) {
            bus.needsReset("queue " + index + ": " + why);
            notificationsOn(drainQueue);
        }

        private void notificationsOn(Virtqueue q) {
            synchronized (q) {
                q.setNotification(true);
            }
        }

        /** Runs the request in {@code chain}; false if the queue must stop (held, broken, reset). */
        private boolean process(Virtqueue q, int startEpoch) {
            failure = null;
            SgList out = chain.readable();
            SgList in = chain.writable();
            if (out.count() < 1 || in.count() < 1) {
                return broken(q, "virtio-blk request without headers");
            }
            if (out.size() < HEADER) {
                return broken(q, "virtio-blk request header shorter than 16 bytes");
            }
            copyOut(out, 0, header, HEADER);
            int type = header.get(INT_LE, 0);
            long sector = header.get(LONG_LE, 8);
            long inLength = in.size();
            int last = in.count() - 1;
            long statusAddress = in.address(last) + in.length(last) - 1;
            int status;
            boolean write = false;
            Result result;
            switch (type & ~(T_OUT | T_BARRIER)) {
                case T_IN -> {
                    write = (type & T_OUT) != 0;
                    if (write) {
                        slice(out, HEADER, out.size() - HEADER);
                    } else {
                        slice(in, 0, in.size() - 1);
                    }
                    result = readWrite(write, sector);
                }
                case T_FLUSH -> {
                    write = true;
                    result = flush();
                }
                case T_GET_ID -> {
                    slice(in, 0, in.size() - 1);
                    byte[] id = config.serial().getBytes(StandardCharsets.US_ASCII);
                    int n = (int) Math.min(Math.min(id.length + 1, data.size()), ID_BYTES);
                    byte[] bytes = java.util.Arrays.copyOf(id, n);
                    copyIn(bytes, n);
                    result = Result.OK;
                }
                case T_DISCARD & ~T_OUT, T_WRITE_ZEROES & ~T_OUT -> {
                    long payload = out.size() - HEADER;
                    if ((type & T_OUT) == 0 || payload > HEADER) {
                        result = Result.UNSUPPORTED;
                        break;
                    }
                    if (payload < HEADER) {
                        return broken(q, "virtio-blk discard/write_zeroes header too short");
                    }
                    write = true;
                    copyOut(out, HEADER, header, HEADER);
                    result = discardOrZero((type & ~T_BARRIER) == T_WRITE_ZEROES, header.get(LONG_LE, 0),
                            Integer.toUnsignedLong(header.get(INT_LE, 8)), header.get(INT_LE, 12));
                }
                case T_SCSI_CMD -> result = scsiCommand(out, in);
                default -> result = Result.UNSUPPORTED;
            }
            if (result == Result.IO_ERROR) {
                ErrorPolicy policy = (write ? config.writePolicy() : config.readPolicy()).actionFor(failure);
                errorListener.failed(write, policy, failure);
                if (policy == ErrorPolicy.STOP) {
                    hold();
                    return false;
                }
                result = policy == ErrorPolicy.IGNORE ? Result.OK : Result.IO_ERROR;
            }
            status = switch (result) {
                case OK -> S_OK;
                case UNSUPPORTED -> S_UNSUPP;
                default -> S_IOERR;
            };
            if (epoch != startEpoch) {
                return false; // reset meanwhile: the request is gone
            }
            statusByte.set(ValueLayout.JAVA_BYTE, 0, (byte) status);
            AccessResult ignored = memory.write(statusAddress, statusByte); // a status byte nobody answers is lost
            boolean notify;
            synchronized (q) {
                if (!q.push(chain.head(), inLength)) {
                    notify = false;
                } else {
                    notify = q.shouldNotify();
                }
            }
            if (notify) {
                bus.interruptQueue(index);
            }
            return true;
        }

        /**
         * SCSI passthrough, which modern devices do not have: as QEMU, a chain too short for it is
         * an I/O error; otherwise the SCSI header's errors field (the second-to-last writable
         * buffer) gets 255 so that the guest's ioctl fails, and the request is unsupported.
         */
        private Result scsiCommand(SgList out, SgList in) {
            if (out.count() < 2 || in.count() < 3) {
                return Result.INVALID;
            }
            int at = in.count() - 2;
            byte[] errors = {(byte) 255, 0, 0, 0};
            AccessResult ignored = memory.write(in.address(at), errors, 0, (int) Math.min(4, in.length(at)));
            return Result.UNSUPPORTED;
        }

        private boolean broken(Virtqueue q, String why) {
            synchronized (q) {
                q.detach();
            }
            bus.needsReset(why);
            return false;
        }

        private void hold() {
            holding = true;
            synchronized (stopLock) {
                stopped = true;
            }
            stopListener.run();
        }

        private Result readWrite(boolean write, long sector) {
            long bytes = data.size();
            if (bytes % SECTOR != 0 || Long.compareUnsigned(sector, sectors) > 0 || bytes / SECTOR > sectors - sector) {
                return Result.INVALID;
            }
            if (write && readOnly) {
                return Result.IO_ERROR;
            }
            if (config.sizeMax() > 0) {
                for (int i = 0; i < data.count(); i++) {
                    if (data.length(i) > config.sizeMax()) {
                        return Result.INVALID;
                    }
                }
            }
            if (bytes == 0) {
                return Result.OK;
            }
            DmaDirection direction = write ? DmaDirection.TO_DEVICE : DmaDirection.FROM_DEVICE;
            DmaBlockIo.Status s = copyChunks != null
                    ? transfer(direction, sector * SECTOR, write ? copyWriteChunk : copyReadChunk)
                    : transfer(direction, sector * SECTOR, write ? writeChunk : readChunk);
            if (s == DmaBlockIo.Status.DONE && write && !writeCache) {
                return flush();
            }
            return switch (s) {
                case DONE -> Result.OK;
                case MEMORY_FAULT -> Result.FAILED_MEMORY;
                default -> Result.IO_ERROR;
            };
        }

        private Result flush() {
            try {
                backend.flush();
                return Result.OK;
            } catch (IOException | RuntimeException e) {
                failure = e;
                return Result.IO_ERROR;
            }
        }

        private Result discardOrZero(boolean zeroes, long sector, long count, int flags) {
            if (count > MAX_DISCARD_SECTORS) {
                return Result.INVALID;
            }
            long bytes = count * SECTOR;
            if (Long.compareUnsigned(sector, sectors) > 0 || count > sectors - sector) {
                return Result.INVALID;
            }
            if (zeroes ? (flags & ~1) != 0 : flags != 0) {
                return Result.UNSUPPORTED;
            }
            if (readOnly) {
                return Result.IO_ERROR;
            }
            try {
                if (!zeroes) {
                    if (config.discard() && bytes > 0) {
                        backend.discard(sector * SECTOR, bytes);
                    }
                    return Result.OK;
                }
                for (long done = 0; done < bytes; ) {
                    int n = (int) Math.min(ZEROES.capacity(), bytes - done);
                    backend.write(sector * SECTOR + done, ZEROES.duplicate().limit(n));
                    done += n;
                }
                return writeCache ? Result.OK : flush();
            } catch (IOException | RuntimeException e) {
                failure = e;
                return Result.IO_ERROR;
            }
        }

        /** The copy path: the heap buffer from the disk in one plain read. */
        private DmaBlockIo.Status copyRead(long offset, IoVector iov) throws IOException {
            backend.read(offset, copyChunks.buffer((int) iov.size()));
            return DmaBlockIo.Status.DONE;
        }

        /** The copy path: the heap buffer to the disk in one plain write. */
        private DmaBlockIo.Status copyWrite(long offset, IoVector iov) throws IOException {
            backend.write(offset, copyChunks.buffer((int) iov.size()));
            return DmaBlockIo.Status.DONE;
        }

        /** One transfer through DmaBlockIo, on this thread (or finished by whoever frees bounce space). */
        private DmaBlockIo.Status transfer(DmaDirection direction, long offset, DmaBlockIo.ChunkIo io) {
            lock.lock();
            try {
                transferDone = false;
                if (copyChunks != null) {
                    copyChunks.start(data, direction);
                    blockIo.start(copyChunks, offset, io);
                } else {
                    blockIo.start(data, direction, offset, SECTOR, io);
                }
            } finally {
                lock.unlock();
            }
            Runnable task = submitted;
            submitted = null;
            if (task != null) {
                task.run();
            }
            if ((boolean) TRANSFER_DONE.getAcquire(this)) {
                return transferStatus; // completed on this thread (or published before): no second lock
            }
            lock.lock();
            try {
                while (!transferDone) {
                    finished.awaitUninterruptibly();
                }
                return transferStatus;
            } finally {
                lock.unlock();
            }
        }

        /** Reads {@code n} bytes at {@code from} of a list into {@code into} (unanswered bytes are zero). */
        private void copyOut(SgList list, long from, MemorySegment into, int n) {
            if (from == 0 && list.length(0) >= n && into.byteSize() == n) {
                memory.read(list.address(0), into); // the usual case: the header is one buffer
                return;
            }
            into.fill((byte) 0);
            long skip = from;
            long done = 0;
            for (int i = 0; i < list.count() && done < n; i++) {
                long len = list.length(i);
                if (skip >= len) {
                    skip -= len;
                    continue;
                }
                long take = Math.min(len - skip, n - done);
                memory.read(list.address(i) + skip, into.asSlice(done, take));
                done += take;
                skip = 0;
            }
        }

        /** Writes {@code n} bytes into the data list, from its start. */
        private void copyIn(byte[] bytes, int n) {
            long done = 0;
            for (int i = 0; i < data.count() && done < n; i++) {
                int take = (int) Math.min(data.length(i), n - done);
                AccessResult ignored = memory.write(data.address(i), bytes, (int) done, take);
                done += take;
            }
        }

        /** {@code data} := the part {@code [from, from + length)} of a list. */
        private void slice(SgList list, long from, long length) {
            data.reset();
            data.addPart(list, from, length);
        }

        // -------------------------------------------------------------- DmaBlockIo.Host

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
            if (cause != null) {
                failure = cause;
            }
            transferStatus = status;
            TRANSFER_DONE.setRelease(this, true);
            finished.signalAll();
        }

        @Override
        public void submit(Runnable task) {
            submitted = task;
        }
    }
}
