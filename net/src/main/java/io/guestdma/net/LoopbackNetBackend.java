package io.guestdma.net;

import io.guestdma.memory.IoVector;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.channels.ClosedChannelException;
import java.nio.file.Path;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * A backend with no network behind it, for tests, benchmarks and debugging: every frame the NIC
 * transmits can be written to a pcap capture file (open it in Wireshark or tcpdump) and looped
 * back into the NIC's own receive queue, and a pcap file can be replayed as received frames.
 *
 * <p>A looped-back frame that finds the receive queue full is dropped and counted, since the NIC
 * that sent it is the one that must make room. Replayed frames wait for room instead: a capture
 * replays whole. The link is always up until closed.
 */
public final class LoopbackNetBackend implements NetBackend {
    private final RxQueue queue;
    private final boolean loop;
    private final PcapWriter capture;
    private final AtomicLong txFrames = new AtomicLong();
    private final AtomicLong txDropped = new AtomicLong();
    private volatile boolean closed;

    private LoopbackNetBackend(RxQueue queue, boolean loop, PcapWriter capture) {
        this.queue = Objects.requireNonNull(queue, "queue");
        this.loop = loop;
        this.capture = capture;
    }

    /**
     * Creates a loopback backend.
     *
     * @param queue   where looped-back and replayed frames go
     * @param loop    whether transmitted frames come back as received ones
     * @param capture a pcap file to write every transmitted frame to (created or truncated), or null
     * @return the backend
     * @throws IOException if the capture file cannot be created
     */
    public static LoopbackNetBackend create(RxQueue queue, boolean loop, Path capture) throws IOException {
        return new LoopbackNetBackend(queue, loop, capture == null ? null : PcapWriter.create(capture));
    }

    /**
     * Queues every frame of a pcap file as received, in order, waiting for room as the NIC takes
     * them.
     *
     * @param pcap the capture to replay
     * @return frames replayed
     * @throws IOException          if the file is not a readable Ethernet pcap capture (frames
     *                              before the bad record stay queued), or the backend is closed
     * @throws InterruptedException if interrupted while waiting for room
     */
    public long replay(Path pcap) throws IOException, InterruptedException {
        long n = 0;
        try (PcapReader reader = PcapReader.open(pcap)) {
            MemorySegment frame;
            while ((frame = reader.next()) != null) {
                if (closed) {
                    throw new ClosedChannelException();
                }
                if (frame.byteSize() > RxQueue.MAX_FRAME_BYTES || !queue.offer(frame, Long.MAX_VALUE)) {
                    continue; // counted by the queue, or too big to be a frame
                }
                n++;
            }
        }
        return n;
    }

    @Override
    public boolean transmit(IoVector frame) throws IOException {
        long length = frame.size();
        RxQueue.check(length);
        if (closed) {
            throw new ClosedChannelException();
        }
        if (capture != null) {
            capture.write(frame);
        }
        if (loop && !queue.offer(frame)) {
            txDropped.incrementAndGet();
            return false;
        }
        txFrames.incrementAndGet();
        return true;
    }

    @Override
    public RxQueue rxQueue() {
        return queue;
    }

    @Override
    public boolean linkUp() {
        return !closed;
    }

    /** The link of a loopback never changes while it is open: the listener is kept but not called. */
    @Override
    public void onLinkChange(Consumer<Boolean> listener) {
        Objects.requireNonNull(listener, "listener");
    }

    @Override
    public long txFrames() {
        return txFrames.get();
    }

    @Override
    public long txDropped() {
        return txDropped.get();
    }

    @Override
    public long rxErrors() {
        return queue.dropped();
    }

    /** {@return frames written to the capture file, 0 without one} */
    public long captured() {
        return capture == null ? 0 : capture.frames();
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        queue.close();
        if (capture != null) {
            try {
                capture.close();
            } catch (IOException ignored) {
                // The capture is best effort once the backend is going away.
            }
        }
    }
}
