package io.guestdma.ide;

import io.guestdma.block.BlockBackend;
import io.guestdma.memory.AccessResult;
import io.guestdma.memory.DmaAccessException;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaStream;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.MapClient;
import io.guestdma.memory.ReentrancyGuard;
import io.guestdma.memory.SgList;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;

/**
 * Moves the data of one bus-master transfer between guest memory and the disk: QEMU's
 * {@code dma_blk_io} for the {@link DmaMode#MAP} path, the pre-2009 bounce through one heap buffer
 * for {@link DmaMode#COPY}.
 *
 * <p>The MAP path, chunk by chunk: {@code DmaStream.mapNext} maps as much of the scatter-gather
 * list as it can (aligned to 512 bytes) into an {@link IoVector}; the backend reads or writes that
 * vector in one vectored call; {@code unmapChunk} gives the memory back (writing bounce buffers back
 * to MMIO or unassigned space); repeat. When nothing maps because the bounce pool is full, the
 * engine registers a map client and continues from the same place when space frees.
 *
 * <p>The COPY path: chunks of up to 256 sectors through one {@code byte[]}, filled from or spilled
 * to guest memory piece by piece with the copy path, and one plain backend read or write of the
 * heap buffer per chunk.
 *
 * <p>Threads: {@link #start} and {@link #cancel} run under the channel lock. The transfer itself
 * runs on the I/O executor; it takes the channel lock only to check for a pause and to report the
 * outcome, and never holds it while it maps, does I/O or unmaps (unmapping wakes other devices'
 * map clients, which may take their own locks). Between {@code start} and the outcome the engine's
 * fields belong to the running transfer.
 *
 * <p>Faults: whatever happens below the engine ends the transfer with an outcome and leaves nothing
 * mapped: a backend that throws (an {@link Error} included) is an I/O error under the drive's
 * policy; guest memory that fails (an MMIO handler that throws, or refuses a re-entrant access) is
 * a {@link DmaOutcome#MEMORY_FAULT}. The transfer runs inside the controller's
 * {@link ReentrancyGuard}, so a handler reached by this DMA cannot start another transfer on the
 * same channel in the middle of this one. Only errors that leave the JVM beyond saving are
 * rethrown, after the cleanup.
 */
final class DmaEngine {
    enum Phase {
        /** No transfer. */
        IDLE,
        /** Queued on the executor or moving data. */
        RUNNING,
        /** Blocked until the bounce pool has room. */
        WAITING_FOR_MAP,
        /** Stopped at a chunk boundary while the controller is paused. */
        PARKED
    }

    private static final int CHUNK_BYTES = Ata.DMA_BUF_SECTORS * Ata.SECTOR_SIZE;
    private static final ValueLayout.OfLong LONG_LE =
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final IdeChannel channel;
    private final GuestMemory memory;
    private final Executor executor;
    private final DmaMode mode;
    private final PiixIde controller;
    private final ReentrancyGuard guard;
    private final DmaStream stream;
    private final byte[] copyBuffer = new byte[CHUNK_BYTES];
    private final Runnable task = this::run;
    private final Runnable afterMap = this::resumeAfterMap;

    // the transfer
    private AtaDrive drive;
    private SgList sg;
    private DmaDirection direction;
    private AtaDrive.DmaCommand command;
    private long diskOffset;
    private boolean copyPath;
    private int copyIndex;
    private long copyEntryOffset;

    private Phase phase = Phase.IDLE;
    private Thread runner;
    private MapClient mapClient;

    DmaEngine(IdeChannel channel, GuestMemory memory, Executor executor, DmaMode mode,
              PiixIde controller) {
        this.channel = channel;
        this.memory = memory;
        this.executor = executor;
        this.mode = mode;
        this.controller = controller;
        this.guard = controller.reentrancyGuard();
        this.stream = new DmaStream(memory);
    }

    Phase phase() {
        return phase;
    }

    /** Whether the calling thread is the one moving this transfer's data. */
    boolean runsOnCurrentThread() {
        return runner == Thread.currentThread();
    }

    /**
     * Begins a transfer; the outcome reaches {@link IdeChannel#dmaTransferDone} under the lock.
     * Call under the channel lock; the work is handed to the executor when the lock is released.
     */
    void start(AtaDrive target, SgList list, DmaDirection dir, long offset,
               AtaDrive.DmaCommand kind) {
        drive = target;
        sg = list;
        direction = dir;
        command = kind;
        diskOffset = offset;
        // With bus mastering off every device access to memory fails; the copy path models that
        // byte by byte (reads see zeros, writes vanish), where mapping would touch real RAM.
        // A bounce pool smaller than a sector could never form an aligned chunk.
        copyPath = mode == DmaMode.COPY || !controller.busMasterEnabled()
                || memory.bouncePool().capacity() < Ata.SECTOR_SIZE;
        if (copyPath) {
            copyIndex = 0;
            copyEntryOffset = 0;
        } else {
            stream.start(sg, dir, Ata.SECTOR_SIZE);
        }
        phase = Phase.RUNNING;
        channel.submitAfterUnlock(task);
    }

    /**
     * Drops a transfer that is blocked (waiting for bounce space or parked); its outcome is never
     * reported. Call under the channel lock.
     *
     * @return false if the transfer is running and must be waited for instead
     */
    boolean cancel() {
        switch (phase) {
            case IDLE -> {
                return true;
            }
            case WAITING_FOR_MAP -> {
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
        channel.signalIdle();
        return true;
    }

    /** Continues a parked transfer after the controller resumed. Call under the channel lock. */
    void unpark() {
        if (phase == Phase.PARKED) {
            phase = Phase.RUNNING;
            channel.submitAfterUnlock(task);
        }
    }

    /** Hands the task to the executor; a rejecting executor (shut down) runs it here instead. */
    void execute(Runnable work) {
        try {
            executor.execute(work);
        } catch (RejectedExecutionException e) {
            work.run();
        }
    }

    private void resumeAfterMap() {
        channel.lock();
        try {
            if (phase != Phase.WAITING_FOR_MAP) {
                return; // cancelled meanwhile
            }
            phase = Phase.RUNNING;
            mapClient = null;
        } finally {
            channel.unlock();
        }
        run();
    }

    /**
     * Runs the transfer inside the controller's re-entrancy guard. With a direct executor the
     * transfer runs inside the START write, which already holds the guard.
     */
    private void run() {
        boolean entered = guard.enter();
        try {
            transfer();
        } catch (Throwable t) {
            abandon(t);
        } finally {
            if (entered) {
                controller.leave();
            }
        }
    }

    /** The transfer loop: one chunk per iteration, the data path in a straight line. */
    private void transfer() {
        while (true) {
            channel.lock();
            try {
                if (phase != Phase.RUNNING) {
                    runner = null;
                    return;
                }
                if (controller.isPaused()) {
                    runner = null;
                    phase = Phase.PARKED;
                    channel.signalIdle();
                    return;
                }
                runner = Thread.currentThread();
            } finally {
                channel.unlock();
            }

            long chunk;
            try {
                chunk = copyPath ? nextCopyChunk() : stream.mapNext(Long.MAX_VALUE);
            } catch (DmaAccessException e) {
                finish(DmaOutcome.MEMORY_FAULT); // nothing is left mapped
                return;
            } catch (RuntimeException e) {
                finish(DmaOutcome.FAILED); // guest memory went away under the transfer
                return;
            }
            if (chunk == 0) {
                if (copyPath || stream.done()) {
                    finish(DmaOutcome.OK);
                } else {
                    waitForBounceSpace();
                }
                return;
            }
            DmaOutcome outcome;
            Throwable fatal = null;
            try {
                outcome = copyPath ? copyChunk(chunk) : mappedChunk(chunk);
            } catch (Throwable e) {
                // Any backend failure, an Error included, is an I/O error to the guest; the policy
                // decides the rest. The chunk is unmapped below either way.
                outcome = DmaOutcome.FAILED;
                if (DmaOutcome.fatal(e)) {
                    fatal = e;
                }
            }
            if (copyPath) {
                advanceCopyCursor(chunk);
            } else if (unmapQuietly(outcome == DmaOutcome.OK ? chunk : 0).failed() && outcome == DmaOutcome.OK) {
                outcome = DmaOutcome.MEMORY_FAULT; // the data did not reach the device the guest pointed at
            }
            diskOffset += chunk;
            if (fatal != null) {
                finish(DmaOutcome.FAILED);
                throw (Error) fatal;
            }
            if (outcome != DmaOutcome.OK) {
                finish(outcome);
                return;
            }
        }
    }

    /**
     * The last line of defence, for what escaped the loop: a fatal error, or a failure while the
     * outcome was being reported. If this thread still owns the transfer, it gives the chunk back
     * and reports the transfer as failed, so that reset and close never wait for a thread that is
     * gone. Fatal errors are rethrown afterwards; anything else is logged, since the thread may be
     * a guest's register access.
     */
    private void abandon(Throwable t) {
        try {
            stream.abandonChunk();
        } catch (Throwable ignored) {
            // Mappings are released piece by piece even when one fails; nothing more to do.
        }
        channel.lock();
        try {
            if (runner == Thread.currentThread()) {
                runner = null;
                phase = Phase.IDLE;
                channel.signalIdle();
                channel.dmaTransferDone(drive, DmaOutcome.FAILED);
            }
        } catch (Throwable again) {
            t.addSuppressed(again);
        } finally {
            channel.unlock();
        }
        if (DmaOutcome.fatal(t)) {
            throw (Error) t;
        }
        System.getLogger(DmaEngine.class.getName()).log(System.Logger.Level.WARNING,
                "IDE DMA transfer failed outside the data path; the command was failed", t);
    }

    /** MAP: the mapped guest memory goes to or comes from the disk in one vectored call. */
    private DmaOutcome mappedChunk(long chunk) throws IOException {
        IoVector iov = stream.iov();
        BlockBackend backend = drive.backend;
        switch (command) {
            case READ -> backend.readv(diskOffset, iov);
            case WRITE -> {
                backend.writev(diskOffset, iov);
                flushIfWriteThrough(backend);
            }
            case TRIM -> {
                for (int i = 0; i < iov.count(); i++) {
                    DmaOutcome outcome = trim(iov.segment(i));
                    if (outcome != DmaOutcome.OK) {
                        return outcome;
                    }
                }
            }
        }
        return DmaOutcome.OK;
    }

    /** COPY: guest memory to the heap buffer to the disk, or the reverse, piece by piece. */
    private DmaOutcome copyChunk(long chunk) throws IOException {
        int length = (int) chunk;
        BlockBackend backend = drive.backend;
        switch (command) {
            case READ -> {
                backend.read(diskOffset, ByteBuffer.wrap(copyBuffer, 0, length));
                if (copyPieces(length, true).failed()) {
                    return DmaOutcome.MEMORY_FAULT;
                }
            }
            case WRITE -> {
                if (copyPieces(length, false).failed()) {
                    return DmaOutcome.MEMORY_FAULT;
                }
                backend.write(diskOffset, ByteBuffer.wrap(copyBuffer, 0, length));
                flushIfWriteThrough(backend);
            }
            case TRIM -> {
                if (copyPieces(length, false).failed()) {
                    return DmaOutcome.MEMORY_FAULT;
                }
                return trimPieces(length);
            }
        }
        return DmaOutcome.OK;
    }

    /**
     * Copies the chunk's scatter-gather pieces between guest memory and the heap buffer. With bus
     * mastering off, the device's reads see zeros and its writes vanish, as in QEMU. PRD entries
     * are 32-bit, so an entry's addresses cannot pass 2^64.
     *
     * @return the worst access result of the pieces
     */
    private AccessResult copyPieces(int chunk, boolean toGuest) {
        AccessResult result = AccessResult.OK;
        int index = copyIndex;
        long entryOffset = copyEntryOffset;
        int done = 0;
        while (done < chunk) {
            int piece = (int) Math.min(sg.length(index) - entryOffset, chunk - done);
            long address = sg.address(index) + entryOffset;
            boolean allowed = controller.busMasterEnabled();
            if (toGuest) {
                if (allowed) {
                    result = result.and(memory.write(address, copyBuffer, done, piece));
                }
            } else if (allowed) {
                result = result.and(memory.read(address, copyBuffer, done, piece));
            } else {
                Arrays.fill(copyBuffer, done, done + piece, (byte) 0);
            }
            done += piece;
            entryOffset += piece;
            if (entryOffset == sg.length(index)) {
                index++;
                entryOffset = 0;
            }
        }
        return result;
    }

    /** TRIM entries are parsed per scatter-gather piece, as QEMU parses them per iovec. */
    private DmaOutcome trimPieces(int chunk) throws IOException {
        MemorySegment buffer = MemorySegment.ofArray(copyBuffer);
        int index = copyIndex;
        long entryOffset = copyEntryOffset;
        int done = 0;
        while (done < chunk) {
            int piece = (int) Math.min(sg.length(index) - entryOffset, chunk - done);
            DmaOutcome outcome = trim(buffer.asSlice(done, piece));
            if (outcome != DmaOutcome.OK) {
                return outcome;
            }
            done += piece;
            entryOffset += piece;
            if (entryOffset == sg.length(index)) {
                index++;
                entryOffset = 0;
            }
        }
        return DmaOutcome.OK;
    }

    /**
     * QEMU's ide_issue_trim_cb over one piece: 8-byte little-endian entries of a 48-bit LBA and a
     * 16-bit count; count 0 is skipped; the first range past the end stops everything with
     * INVALID (ranges before it stay discarded).
     */
    private DmaOutcome trim(MemorySegment entries) throws IOException {
        long count = entries.byteSize() / 8;
        for (long i = 0; i < count; i++) {
            long entry = entries.get(LONG_LE, i * 8);
            long first = entry & 0x0000_ffff_ffff_ffffL;
            int sectors = (int) (entry >>> 48);
            if (sectors == 0) {
                continue;
            }
            if (!drive.sectorRangeOk(first, sectors)) {
                return DmaOutcome.INVALID;
            }
            drive.backend.discard(first * Ata.SECTOR_SIZE, (long) sectors * Ata.SECTOR_SIZE);
        }
        return DmaOutcome.OK;
    }

    private void flushIfWriteThrough(BlockBackend backend) throws IOException {
        // SET FEATURES 0x82 turned the write cache off: QEMU then makes every write durable.
        if (!drive.writeCacheEnabled) {
            backend.flush();
        }
    }

    private long nextCopyChunk() {
        long remaining = 0;
        for (int i = copyIndex; i < sg.count() && remaining < CHUNK_BYTES; i++) {
            remaining += sg.length(i) - (i == copyIndex ? copyEntryOffset : 0);
        }
        return Math.min(remaining, CHUNK_BYTES);
    }

    private void advanceCopyCursor(long chunk) {
        long left = chunk;
        while (left > 0) {
            long available = sg.length(copyIndex) - copyEntryOffset;
            long step = Math.min(available, left);
            copyEntryOffset += step;
            left -= step;
            if (copyEntryOffset == sg.length(copyIndex)) {
                copyIndex++;
                copyEntryOffset = 0;
            }
        }
    }

    /** Gives the chunk back; its bounce write-back result tells whether MMIO took the data. */
    private AccessResult unmapQuietly(long accessLength) {
        try {
            return stream.unmapChunk(accessLength);
        } catch (RuntimeException e) {
            // A debug-mode misuse report: the mappings were released all the same.
            return AccessResult.OK;
        }
    }

    private void waitForBounceSpace() {
        channel.lock();
        try {
            phase = Phase.WAITING_FOR_MAP;
            runner = null;
            channel.signalIdle();
        } finally {
            channel.unlock();
        }
        // Registered without the channel lock: with nothing in flight the callback runs at once,
        // on this thread.
        MapClient client = memory.registerMapClient(executor, afterMap);
        channel.lock();
        try {
            if (phase == Phase.WAITING_FOR_MAP && !client.hasFired()) {
                mapClient = client;
            }
        } finally {
            channel.unlock();
        }
    }

    private void finish(DmaOutcome outcome) {
        channel.lock();
        try {
            runner = null;
            phase = Phase.IDLE;
            channel.signalIdle();
            channel.dmaTransferDone(drive, outcome);
        } finally {
            channel.unlock();
        }
    }
}
