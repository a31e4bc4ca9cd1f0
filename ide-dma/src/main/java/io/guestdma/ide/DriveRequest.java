package io.guestdma.ide;

import io.guestdma.block.DmaBlockIo;
import java.nio.ByteBuffer;

/**
 * The one non-DMA backend request a channel can have outstanding: a PIO sector read or write
 * (through the drive's PIO buffer) or a cache flush. Runs on the I/O executor without the channel
 * lock and reports to {@link IdeChannel#driveRequestDone} under it. States as in
 * {@link DmaBlockIo}, minus waiting for bounce space.
 */
final class DriveRequest {
    enum Kind {
        /** PIO sectors of a hard disk into the buffer. */
        READ,
        /** PIO sectors of the buffer to a hard disk. */
        WRITE,
        /** A cache flush. */
        FLUSH,
        /** One 2048-byte CD sector into the buffer (QEMU's cd_read_sector). */
        CD_READ
    }

    private final IdeChannel channel;
    private final PiixIde controller;
    private final Runnable task = this::run;

    private AtaDrive drive;
    private Kind kind;
    private long offset;
    private int length;
    /** Where in the drive's buffer the data goes (a raw CD sector keeps its header in front). */
    private int bufferAt;

    private DmaBlockIo.Phase phase = DmaBlockIo.Phase.IDLE;
    private Thread runner;

    DriveRequest(IdeChannel channel, PiixIde controller) {
        this.channel = channel;
        this.controller = controller;
    }

    DmaBlockIo.Phase phase() {
        return phase;
    }

    /** What the request is (or last was): READ, WRITE, FLUSH or CD_READ. */
    Kind kind() {
        return kind;
    }

    boolean runsOnCurrentThread() {
        return runner == Thread.currentThread();
    }

    /** Queues the request; call under the channel lock (it starts when the lock is released). */
    void start(AtaDrive target, Kind what, long byteOffset, int byteLength) {
        start(target, what, byteOffset, byteLength, 0);
    }

    /** {@link #start(AtaDrive, Kind, long, int)} with the data at {@code at} in the drive's buffer. */
    void start(AtaDrive target, Kind what, long byteOffset, int byteLength, int at) {
        drive = target;
        kind = what;
        offset = byteOffset;
        length = byteLength;
        bufferAt = at;
        phase = DmaBlockIo.Phase.RUNNING;
        channel.submitAfterUnlock(task);
    }

    /** Drops a parked request; false if it is running. Call under the channel lock. */
    boolean cancel() {
        if (phase == DmaBlockIo.Phase.RUNNING) {
            return false;
        }
        phase = DmaBlockIo.Phase.IDLE;
        channel.signalIdle();
        return true;
    }

    void unpark() {
        if (phase == DmaBlockIo.Phase.PARKED) {
            phase = DmaBlockIo.Phase.RUNNING;
            channel.submitAfterUnlock(task);
        }
    }

    private void run() {
        channel.lock();
        try {
            if (phase != DmaBlockIo.Phase.RUNNING) {
                return;
            }
            if (controller.isPaused()) {
                phase = DmaBlockIo.Phase.PARKED;
                channel.signalIdle();
                return;
            }
            runner = Thread.currentThread();
        } finally {
            channel.unlock();
        }
        DmaOutcome outcome = DmaOutcome.OK;
        Throwable fatal = null;
        Throwable failure = null;
        try {
            switch (kind) {
                case READ, CD_READ -> drive.backend.read(offset, ByteBuffer.wrap(drive.ioBuffer, bufferAt, length));
                case WRITE -> {
                    drive.backend.write(offset, ByteBuffer.wrap(drive.ioBuffer, 0, length));
                    if (!drive.writeCacheEnabled) {
                        drive.backend.flush();
                    }
                }
                case FLUSH -> drive.backend.flush();
            }
        } catch (Throwable e) {
            // Whatever the backend threw (an Error included) fails the request for the guest; a
            // thread that died here would leave the channel RUNNING forever and reset waiting on it.
            outcome = DmaOutcome.FAILED;
            failure = e;
            if (DmaBlockIo.fatal(e)) {
                fatal = e;
            }
        }
        channel.lock();
        try {
            runner = null;
            phase = DmaBlockIo.Phase.IDLE;
            channel.signalIdle();
            channel.driveRequestDone(drive, kind, outcome, failure);
        } finally {
            channel.unlock();
        }
        if (fatal instanceof Error e) {
            throw e;
        }
    }
}
