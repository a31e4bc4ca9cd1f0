package io.guestdma.block;

import io.guestdma.memory.AccessResult;
import io.guestdma.memory.AddressSpace;
import io.guestdma.memory.DmaAccessException;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaStream;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.MapClient;
import io.guestdma.memory.SgList;
import java.io.IOException;
import java.util.Objects;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;

/**
 * The loop every disk device runs for one DMA request, QEMU's {@code dma_blk_io}
 * (dma-helpers.c): map as much of the scatter-gather list as maps, hand that chunk to the backend
 * in one vectored call, unmap it with the bytes really accessed, and repeat; when nothing maps
 * because the bounce pool is full, park on a map client and continue where it stopped.
 *
 * <pre>
 *  descriptor → SgList → {@link DmaStream#mapNext} → IoVector → {@link ChunkIo} (backend readv/writev)
 *                 ↑                                                        │
 *                 └──── map client (bounce space freed) ←── unmapChunk ←───┘
 * </pre>
 *
 * <p>A device owns one {@code DmaBlockIo} per request slot and drives it through a {@link Host}:
 * the device's lock guards the transfer's state, the device says whether it is paused (a stopped
 * VM parks the transfer at the next chunk boundary), hears when the transfer stops running, and
 * gets the outcome under its lock, where it applies its error policy (report, stop and
 * retry, ignore). Nothing slow runs under the device's lock: mapping, I/O and unmapping happen
 * outside it.
 *
 * <p>Results are unambiguous: a run ends with exactly one {@link Outcome}, or is parked
 * ({@link Phase#PARKED}), waiting for bounce space ({@link Phase#WAITING_FOR_BOUNCE}), or dropped by
 * {@link #cancel()}. Everything a backend throws (an {@link Error} included) is
 * {@link Status#IO_ERROR}; guest memory that fails (a device handler) is
 * {@link Status#MEMORY_FAULT}; nothing stays mapped after an outcome. Errors the JVM cannot
 * survive are rethrown after that cleanup.
 *
 * <p>Cancellation: {@link #cancel()} drops a transfer that is not moving data (waiting or parked)
 * at once; a running one finishes its chunk first, which a device either waits for (synchronous,
 * QEMU's {@code ide_cancel_dma_sync}: it is told through {@link Host#stoppedRunning}) or asks to
 * end early with {@link #requestCancel()} (asynchronous: the outcome is {@link Status#CANCELLED}
 * at the next chunk boundary).
 *
 * <p>Data paths: by default chunks are mapped zero-copy through a {@link DmaStream}; a device with a
 * data path of its own (an emulated pre-2009 copy path, say) supplies {@link Chunks}.
 */
public final class DmaBlockIo {
    /** Where a transfer is. */
    public enum Phase {
        /** No transfer. */
        IDLE,
        /** Queued to run, or moving data. */
        RUNNING,
        /** Nothing mapped because the bounce pool is full: a map client will resume it. */
        WAITING_FOR_BOUNCE,
        /** Stopped at a chunk boundary while the device is paused; {@link #unpark()} continues it. */
        PARKED
    }

    /** How a transfer ended. */
    public enum Status {
        /** Every byte of the list moved. */
        DONE,
        /** The backend failed (or threw): the device's error policy decides. */
        IO_ERROR,
        /** The {@link ChunkIo} refused the request as invalid (e.g. a TRIM range past the end). */
        INVALID,
        /** Guest memory failed the transfer: a device handler failed under the DMA. */
        MEMORY_FAULT,
        /** Ended early by {@link #requestCancel()}. */
        CANCELLED
    }

    /**
     * The end of one transfer, as a value, for devices that keep it ({@link Host#completed} gets its
     * parts, so that reporting allocates nothing on the data path).
     *
     * @param status    how it ended
     * @param bytesDone bytes of the list completed (unmapped with full access) before it ended
     * @param cause     what the backend or memory threw, or null
     */
    public record Outcome(Status status, long bytesDone, Throwable cause) {
    }

    /** One chunk's I/O: what the device does with the mapped memory. */
    @FunctionalInterface
    public interface ChunkIo {
        /**
         * Moves one chunk.
         *
         * @param offset the byte offset of the chunk on the device
         * @param iov    the chunk's guest memory
         * @return {@link Status#DONE} to continue, or {@link Status#INVALID} to end the transfer
         * @throws IOException if the backend failed (the outcome is {@link Status#IO_ERROR})
         */
        Status transfer(long offset, IoVector iov) throws IOException;
    }

    /**
     * A data path that produces chunks: the zero-copy default over {@link DmaStream}, or a device's
     * own. Its methods follow {@link DmaStream}'s contract.
     */
    public interface Chunks {
        /**
         * {@return the chunk's bytes, now in {@link #iov()}; 0 when {@link #done()}, or when
         * nothing can be mapped until bounce space frees}
         *
         * @param maxBytes the largest chunk wanted
         * @throws DmaAccessException if guest memory failed; nothing is left mapped
         */
        long mapNext(long maxBytes);

        /** {@return whether the whole list has been produced} */
        boolean done();

        /** {@return the current chunk's memory} */
        IoVector iov();

        /**
         * {@return the write-back outcome; {@link AccessResult#DEVICE_ERROR} ends the transfer as
         * a memory fault}
         *
         * @param accessLength bytes of the chunk really accessed
         */
        AccessResult unmapChunk(long accessLength);

        /** Gives the current chunk back unaccessed, if one is mapped. */
        void abandonChunk();
    }

    /** The device side of a transfer: its lock, its pause state, and where results go. */
    public interface Host {
        /** Takes the device's lock (reentrant) that guards the transfer's state. */
        void lock();

        /** Releases it. */
        void unlock();

        /**
         * {@return under the lock: whether the device is paused (the transfer parks at the next
         * chunk)}
         */
        boolean paused();

        /** Under the lock: the transfer stopped moving data (finished, parked, waiting, dropped). */
        void stoppedRunning();

        /**
         * Under the lock: the transfer ended; apply the error policy, raise the interrupt.
         *
         * @param status    how it ended
         * @param bytesDone bytes of the list completed before it ended
         * @param cause     what the backend or memory threw, or null
         */
        void completed(Status status, long bytesDone, Throwable cause);

        /**
         * Under the lock: arrange for {@code task} to run without the lock held, now or on the I/O
         * executor (a device that queues work until its outermost unlock does so here).
         *
         * @param task the transfer's task
         */
        void submit(Runnable task);

        /**
         * Called on the thread that is about to move data, before it does: a device with a
         * re-entrancy guard engages it here.
         *
         * @return whether {@link #leave()} must be called afterwards
         */
        default boolean enter() {
            return false;
        }

        /** Undoes an {@link #enter()} that returned true. */
        default void leave() {
        }
    }

    private final AddressSpace memory;
    private final Executor executor;
    private final Host host;
    private final DmaStream stream;
    private final Chunks mapped;
    private final Runnable task = this::run;
    private final Runnable afterMap = this::resumeAfterMap;

    private Chunks chunks;
    private ChunkIo io;
    private long offset;
    private long bytesDone;
    private Phase phase = Phase.IDLE;
    private Thread runner;
    private MapClient mapClient;
    private boolean cancelRequested;

    /**
     * Creates the loop for one device; it is idle until a transfer starts.
     *
     * @param memory   the address space the lists point into: the root, or the device's own view
     *                 (its bus-master enable and IOMMU apply)
     * @param executor where a transfer resumes after waiting for bounce space; a rejecting
     *                 executor (shut down) resumes it on the releasing thread instead
     * @param host     the device
     * @throws NullPointerException if an argument is null
     */
    public DmaBlockIo(AddressSpace memory, Executor executor, Host host) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.executor = Objects.requireNonNull(executor, "executor");
        this.host = Objects.requireNonNull(host, "host");
        this.stream = new DmaStream(memory);
        this.mapped = new Chunks() {
            @Override
            public long mapNext(long maxBytes) {
                return stream.mapNext(maxBytes);
            }

            @Override
            public boolean done() {
                return stream.done();
            }

            @Override
            public IoVector iov() {
                return stream.iov();
            }

            @Override
            public AccessResult unmapChunk(long accessLength) {
                return stream.unmapChunk(accessLength);
            }

            @Override
            public void abandonChunk() {
                stream.abandonChunk();
            }
        };
    }

    /**
     * Starts a zero-copy transfer of {@code sg} at device offset {@code offset}, in chunks aligned
     * to {@code alignment}. Call under the host's lock; the data moves once the host runs the
     * submitted task. The outcome reaches {@link Host#completed}.
     *
     * @param sg        the guest ranges, unchanged until the outcome
     * @param direction TO_DEVICE (a disk write) or FROM_DEVICE (a disk read)
     * @param offset    the device byte offset of the first byte
     * @param alignment chunk alignment (512 for disks), a power of two no larger than the bounce pool
     * @param io        what each chunk does
     * @throws IllegalStateException    if a transfer is in progress
     * @throws IllegalArgumentException if alignment is invalid (see {@link DmaStream#start})
     * @throws NullPointerException     if an argument is null
     */
    public void start(SgList sg, DmaDirection direction, long offset, int alignment, ChunkIo io) {
        requireIdle();
        stream.start(sg, direction, alignment);
        begin(mapped, offset, io);
    }

    /**
     * Starts a transfer over a device's own data path; {@code source} has been started on the
     * request already. Otherwise as {@link #start(SgList, DmaDirection, long, int, ChunkIo)}.
     *
     * @param source where chunks come from
     * @param offset the device byte offset of the first byte
     * @param io     what each chunk does
     * @throws IllegalStateException if a transfer is in progress
     * @throws NullPointerException  if an argument is null
     */
    public void start(Chunks source, long offset, ChunkIo io) {
        requireIdle();
        begin(Objects.requireNonNull(source, "source"), offset, io);
    }

    private void requireIdle() {
        if (phase != Phase.IDLE) {
            throw new IllegalStateException("a DMA transfer is still " + phase);
        }
    }

    private void begin(Chunks source, long startOffset, ChunkIo chunkIo) {
        chunks = source;
        io = Objects.requireNonNull(chunkIo, "io");
        offset = startOffset;
        bytesDone = 0;
        cancelRequested = false;
        phase = Phase.RUNNING;
        host.submit(task);
    }

    /** {@return the transfer's phase; read under the host's lock} */
    public Phase phase() {
        return phase;
    }

    /** {@return whether the calling thread is the one moving the transfer's data} */
    public boolean runsOnCurrentThread() {
        return runner == Thread.currentThread();
    }

    /** {@return bytes completed so far by the current (or last) transfer} */
    public long bytesDone() {
        return bytesDone;
    }

    /**
     * Drops a transfer that is not moving data (waiting for bounce space or parked); no outcome is
     * reported for it. Call under the host's lock.
     *
     * @return true if there is no transfer any more; false if it is running (wait for
     *         {@link Host#stoppedRunning}, or {@link #requestCancel()} to end it sooner)
     */
    public boolean cancel() {
        switch (phase) {
            case IDLE -> {
                return true;
            }
            case WAITING_FOR_BOUNCE -> {
                if (mapClient != null) {
                    mapClient.cancel();
                    mapClient = null;
                }
            }
            case PARKED -> { }
            case RUNNING -> {
                return false;
            }
        }
        phase = Phase.IDLE;
        host.stoppedRunning();
        return true;
    }

    /**
     * Asks a running transfer to end at its next chunk boundary with {@link Status#CANCELLED}
     * (the chunk in flight completes; its bytes count). A transfer that is not running is dropped
     * as by {@link #cancel()}. Call under the host's lock.
     */
    public void requestCancel() {
        if (!cancel()) {
            cancelRequested = true;
        }
    }

    /** Continues a parked transfer once the host is no longer paused. Call under the host's lock. */
    public void unpark() {
        if (phase == Phase.PARKED) {
            phase = Phase.RUNNING;
            host.submit(task);
        }
    }

    /**
     * Runs {@code work} on the executor; one that rejects it (shut down) has it run here instead,
     * so that a transfer is never lost. For hosts that hand the transfer's task to the executor.
     *
     * @param work the task
     */
    public void execute(Runnable work) {
        try {
            executor.execute(work);
        } catch (RejectedExecutionException e) {
            work.run();
        }
    }

    private void resumeAfterMap() {
        host.lock();
        try {
            if (phase != Phase.WAITING_FOR_BOUNCE) {
                return; // cancelled meanwhile
            }
            phase = Phase.RUNNING;
            mapClient = null;
        } finally {
            host.unlock();
        }
        run();
    }

    private void run() {
        boolean entered = host.enter();
        try {
            transfer();
        } catch (Throwable t) {
            abandon(t);
        } finally {
            if (entered) {
                host.leave();
            }
        }
    }

    /** The loop: one chunk per iteration, descriptor to backend in a straight line. */
    private void transfer() {
        while (true) {
            host.lock();
            try {
                if (phase != Phase.RUNNING) {
                    runner = null;
                    return;
                }
                if (cancelRequested) {
                    cancelRequested = false;
                    finishLocked(Status.CANCELLED, bytesDone, null);
                    return;
                }
                if (host.paused()) {
                    runner = null;
                    phase = Phase.PARKED;
                    host.stoppedRunning();
                    return;
                }
                if (chunks.done()) {
                    // What mapping once more would find (nothing left), without mapping or a second
                    // round of the lock: the outcome is reported here, under this acquisition.
                    finishLocked(Status.DONE, bytesDone, null);
                    return;
                }
                runner = Thread.currentThread();
            } finally {
                host.unlock();
            }

            long chunk;
            try {
                chunk = chunks.mapNext(Long.MAX_VALUE);
            } catch (DmaAccessException e) {
                finish(Status.MEMORY_FAULT, bytesDone, e); // nothing is left mapped
                return;
            } catch (RuntimeException e) {
                finish(Status.IO_ERROR, bytesDone, e); // guest memory went away
                return;
            }
            if (chunk == 0) {
                if (chunks.done()) {
                    finish(Status.DONE, bytesDone, null);
                } else {
                    waitForBounceSpace();
                }
                return;
            }
            Status status;
            Throwable cause = null;
            try {
                status = io.transfer(offset, chunks.iov());
            } catch (Throwable e) {
                // Whatever the backend threw, an Error included, is an I/O error for the device;
                // the chunk is given back below either way.
                status = Status.IO_ERROR;
                cause = e;
            }
            AccessResult writeBack = unmapQuietly(status == Status.DONE ? chunk : 0);
            if (status == Status.DONE && writeBack.failed()) {
                status = Status.MEMORY_FAULT; // the data did not reach the device the guest named
            }
            offset += chunk;
            if (status == Status.DONE) {
                bytesDone += chunk;
                continue;
            }
            finish(status, bytesDone, cause);
            if (fatal(cause)) {
                throw (Error) cause;
            }
            return;
        }
    }

    private AccessResult unmapQuietly(long accessLength) {
        try {
            return chunks.unmapChunk(accessLength);
        } catch (RuntimeException e) {
            // A debug-mode misuse report: the chunk was released all the same.
            return AccessResult.OK;
        }
    }

    private void waitForBounceSpace() {
        host.lock();
        try {
            phase = Phase.WAITING_FOR_BOUNCE;
            runner = null;
            host.stoppedRunning();
        } finally {
            host.unlock();
        }
        // Registered without the host's lock: with nothing in flight the callback runs at once,
        // on this thread.
        MapClient client = memory.registerMapClient(executor, afterMap);
        host.lock();
        try {
            if (phase == Phase.WAITING_FOR_BOUNCE && !client.hasFired()) {
                mapClient = client;
            }
        } finally {
            host.unlock();
        }
    }

    private void finish(Status status, long done, Throwable cause) {
        host.lock();
        try {
            finishLocked(status, done, cause);
        } finally {
            host.unlock();
        }
    }

    private void finishLocked(Status status, long done, Throwable cause) {
        runner = null;
        phase = Phase.IDLE;
        host.stoppedRunning();
        host.completed(status, done, cause);
    }

    /**
     * The last line of defence, for what escaped the loop (a fatal error, a failure in the host's
     * completion): if this thread still owns the transfer, the chunk is given back and the
     * transfer reported as an I/O error, so that nobody waits for a thread that is gone. Fatal
     * errors are rethrown; anything else is logged, since the thread may be a guest's register
     * access.
     */
    private void abandon(Throwable t) {
        try {
            chunks.abandonChunk();
        } catch (Throwable ignored) {
            // Pieces are released one by one even when one fails; nothing more to do.
        }
        host.lock();
        try {
            if (runner == Thread.currentThread()) {
                finishLocked(Status.IO_ERROR, bytesDone, t);
            }
        } catch (Throwable again) {
            t.addSuppressed(again);
        } finally {
            host.unlock();
        }
        if (fatal(t)) {
            throw (Error) t;
        }
        System.getLogger(DmaBlockIo.class.getName()).log(System.Logger.Level.WARNING,
                "DMA transfer failed outside its data path; it was reported as an I/O error", t);
    }

    /**
     * Whether a Throwable leaves the JVM beyond saving (rethrown after cleanup). A stack overflow
     * has unwound by the time it is caught and counts as the backend's fault.
     *
     * @param t what was thrown, or null
     * @return whether it is fatal
     */
    public static boolean fatal(Throwable t) {
        return t instanceof VirtualMachineError && !(t instanceof StackOverflowError);
    }
}
