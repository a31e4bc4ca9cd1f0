package io.guestdma.ide;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.CopyChunks;
import io.guestdma.block.DmaBlockIo;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.ReentrancyGuard;
import io.guestdma.memory.SgList;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.Executor;

/**
 * Moves the data of one bus-master transfer between guest memory and the disk through the block
 * layer's shared loop, {@link DmaBlockIo} (QEMU's {@code dma_blk_io}); this class is the IDE's side
 * of it: what a chunk does for READ, WRITE and TRIM, and the channel glue (lock, pause, completion,
 * re-entrancy guard).
 *
 * <p>Two data paths feed the loop. {@link DmaMode#MAP}: chunks are mapped zero-copy (aligned to 512
 * bytes) and the backend reads or writes them in one vectored call. {@link DmaMode#COPY}, the
 * pre-2009 path kept for comparison: chunks of up to 256 sectors go through one heap
 * {@code byte[]}, filled from or spilled to guest memory piece by piece with the copy path, and one
 * plain backend read or write of that buffer. Both reach memory through the bus master's
 * {@code DeviceAddressSpace}: with bus mastering off it holds nothing (reads see zeros, writes
 * vanish), behind an IOMMU its translations apply.
 *
 * <p>Threads: {@link #start} and {@link #cancel} run under the channel lock; the loop runs on the I/O
 * executor (or inline with a direct executor) and takes the lock only to check for a pause and to
 * report the outcome, inside the controller's {@link ReentrancyGuard}. Outcomes: a backend failure
 * (whatever it throws) is {@link DmaOutcome#FAILED} under the drive's policy, a guest-memory fault
 * is {@link DmaOutcome#MEMORY_FAULT}, nothing stays mapped.
 */
final class DmaEngine implements DmaBlockIo.Host {
    private static final int CHUNK_BYTES = Ata.DMA_BUF_SECTORS * Ata.SECTOR_SIZE;

    private final IdeChannel channel;
    private final DeviceAddressSpace memory;
    private final DmaMode mode;
    private final PiixIde controller;
    private final ReentrancyGuard guard;
    private final DmaBlockIo blockIo;
    private final CopyChunks copyChunks;
    private final DmaBlockIo.ChunkIo mappedIo = this::mappedChunk;
    private final DmaBlockIo.ChunkIo copyIo = this::copyChunk;
    private final TrimPayload trimPayload = new TrimPayload();
    private final TrimPayload.RangeSink discard = this::discard;

    /** The part of a list still to move when a transfer switches to the copy path. */
    private final SgList remainder = new SgList(16);

    // the transfer
    private AtaDrive drive;
    private AtaDrive.DmaCommand command;
    private SgList list;
    private DmaDirection direction;
    private long startOffset;

    DmaEngine(IdeChannel channel, DeviceAddressSpace memory, Executor executor, DmaMode mode,
              PiixIde controller) {
        this.channel = channel;
        this.memory = memory;
        this.mode = mode;
        this.controller = controller;
        this.guard = controller.reentrancyGuard();
        this.blockIo = new DmaBlockIo(memory, executor, this);
        this.copyChunks = new CopyChunks(memory, CHUNK_BYTES);
    }

    DmaBlockIo.Phase phase() {
        return blockIo.phase();
    }

    /** Whether the calling thread is the one moving this transfer's data. */
    boolean runsOnCurrentThread() {
        return blockIo.runsOnCurrentThread();
    }

    /**
     * Begins a transfer; the outcome reaches {@link IdeChannel#dmaTransferDone} under the lock.
     * Call under the channel lock; the work is handed to the executor when the lock is released.
     */
    void start(AtaDrive target, SgList sg, DmaDirection dir, long offset, AtaDrive.DmaCommand kind) {
        drive = target;
        command = kind;
        list = sg;
        direction = dir;
        startOffset = offset;
        if (kind == AtaDrive.DmaCommand.TRIM) {
            trimPayload.start(sg);
        }
        // A bounce pool smaller than a sector could never form an aligned chunk. (With bus
        // mastering off the bus master's address space itself has nothing in it: both paths see
        // zeros and lose writes, as in QEMU.)
        boolean copyPath = mode == DmaMode.COPY || memory.bouncePool().capacity() < Ata.SECTOR_SIZE;
        if (copyPath) {
            copyChunks.start(sg, dir);
            blockIo.start(copyChunks, offset, copyIo);
        } else {
            blockIo.start(sg, dir, offset, Ata.SECTOR_SIZE, mappedIo);
        }
    }

    /**
     * Drops a transfer that is blocked (waiting for bounce space or parked); its outcome is never
     * reported. Call under the channel lock.
     *
     * @return false if the transfer is running and must be waited for instead
     */
    boolean cancel() {
        return blockIo.cancel();
    }

    /**
     * Moves the rest of a transfer that is waiting for bounce space through the copy path, which
     * needs none, from the byte where it stopped; its outcome is reported as for any transfer (a
     * TRIM's range entries go on where they stopped). The data the guest sees moved is the same as
     * if bounce space had freed: the two paths differ only in how they reach guest memory. Call
     * under the channel lock; the work is handed to the executor when the lock is released.
     *
     * @throws IllegalStateException if the transfer is not waiting for bounce space
     */
    void continueWithoutBounce() {
        if (blockIo.phase() != DmaBlockIo.Phase.WAITING_FOR_BOUNCE) {
            throw new IllegalStateException("the DMA transfer is " + blockIo.phase() + ", not waiting for bounce space");
        }
        long done = blockIo.bytesDone();
        blockIo.cancel();
        remainder.reset();
        remainder.addPart(list, done, list.size() - done);
        copyChunks.start(remainder, direction);
        blockIo.start(copyChunks, startOffset + done, copyIo);
    }

    /** Continues a parked transfer after the controller resumed. Call under the channel lock. */
    void unpark() {
        blockIo.unpark();
    }

    /** Hands the task to the executor; a rejecting executor (shut down) runs it here instead. */
    void execute(Runnable work) {
        blockIo.execute(work);
    }

    // ------------------------------------------------------------------ DmaBlockIo.Host

    @Override
    public void lock() {
        channel.lock();
    }

    @Override
    public void unlock() {
        channel.unlock();
    }

    @Override
    public boolean paused() {
        return controller.isPaused();
    }

    @Override
    public void stoppedRunning() {
        channel.signalIdle();
    }

    @Override
    public void completed(DmaBlockIo.Status status, long bytesDone, Throwable cause) {
        DmaOutcome result = switch (status) {
            case DONE -> DmaOutcome.OK;
            case INVALID -> DmaOutcome.INVALID;
            case MEMORY_FAULT -> DmaOutcome.MEMORY_FAULT;
            case IO_ERROR, CANCELLED -> DmaOutcome.FAILED;
        };
        channel.dmaTransferDone(drive, result, cause);
    }

    @Override
    public void submit(Runnable task) {
        channel.submitAfterUnlock(task);
    }

    /** With a direct executor the transfer runs inside the START write, which holds the guard already. */
    @Override
    public boolean enter() {
        return guard.enter();
    }

    @Override
    public void leave() {
        controller.leave();
    }

    // ------------------------------------------------------------------ what a chunk does

    /** MAP: the mapped guest memory goes to or comes from the disk in one vectored call. */
    private DmaBlockIo.Status mappedChunk(long offset, IoVector iov) throws IOException {
        BlockBackend backend = drive.backend;
        switch (command) {
            case READ, ATAPI -> backend.readv(offset, iov);
            case WRITE -> {
                backend.writev(offset, iov);
                flushIfWriteThrough(backend);
            }
            case TRIM -> {
                for (int i = 0; i < iov.count(); i++) {
                    if (!trimPayload.feed(iov.segment(i), discard)) {
                        return DmaBlockIo.Status.INVALID;
                    }
                }
            }
        }
        return DmaBlockIo.Status.DONE;
    }

    /** COPY: the heap buffer to or from the disk in one plain call. */
    private DmaBlockIo.Status copyChunk(long offset, IoVector iov) throws IOException {
        int length = (int) iov.size();
        BlockBackend backend = drive.backend;
        switch (command) {
            case READ, ATAPI -> backend.read(offset, copyChunks.buffer(length));
            case WRITE -> {
                backend.write(offset, copyChunks.buffer(length));
                flushIfWriteThrough(backend);
            }
            case TRIM -> {
                MemorySegment payload = MemorySegment.ofBuffer(copyChunks.buffer(length));
                return trimPayload.feed(payload, discard) ? DmaBlockIo.Status.DONE : DmaBlockIo.Status.INVALID;
            }
        }
        return DmaBlockIo.Status.DONE;
    }

    /**
     * One TRIM range, as QEMU's ide_issue_trim_cb treats it: the first range past the end stops
     * everything with INVALID (ranges before it stay discarded).
     *
     * @return false for a range past the end
     */
    private boolean discard(long first, int sectors) throws IOException {
        if (!drive.sectorRangeOk(first, sectors)) {
            return false;
        }
        drive.backend.discard(first * Ata.SECTOR_SIZE, (long) sectors * Ata.SECTOR_SIZE);
        return true;
    }

    private void flushIfWriteThrough(BlockBackend backend) throws IOException {
        // SET FEATURES 0x82 turned the write cache off: QEMU then makes every write durable.
        if (!drive.writeCacheEnabled) {
            backend.flush();
        }
    }
}
