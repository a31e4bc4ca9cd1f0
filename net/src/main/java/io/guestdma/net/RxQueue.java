package io.guestdma.net;

import io.guestdma.memory.IoVector;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * The frames a backend has received and the NIC has not yet delivered to the guest: a bounded
 * ring of whole frames in native memory, one producer (the backend) and one consumer (the NIC).
 *
 * <p>The NIC takes the frame at the head only when the guest has posted enough buffers for all of
 * it ({@link #headLength()}, {@link #copyHead}, then {@link #removeHead()}); until then the frame
 * waits here, never half-delivered. The queue is bounded in bytes and in frames. What happens to
 * a frame that arrives when it is full is the producer's choice: a backend that can make its peer
 * wait (a stream socket: it stops reading, so TCP holds the peer back, as QEMU's socket netdev
 * does) waits for space with {@link #offer(MemorySegment, long)}; one that cannot (a loopback of
 * the NIC's own transmissions) drops it with {@link #offer(MemorySegment)}, and the drop is
 * counted ({@link #dropped()}).
 *
 * <p>Frames are copied in once, from the backend's receive buffer, and out once, into the guest's
 * buffers; nothing is allocated per frame.
 *
 * <p>Thread-safe for one producer thread and one consumer thread at a time.
 */
public final class RxQueue {
    /** The largest frame a queue holds: 65 535 bytes, a frame without GSO. */
    public static final int MAX_FRAME_BYTES = 65535;
    /** The default capacity: room for 16 frames of the largest size, or hundreds of small ones. */
    public static final int DEFAULT_CAPACITY_BYTES = 1 << 20;
    /** The default bound on frames held, whatever their size. */
    public static final int DEFAULT_MAX_FRAMES = 1024;

    private static final System.Logger LOG = System.getLogger(RxQueue.class.getName());
    private static final int HEADER = 8;
    private static final int WRAP = -1;

    private final MemorySegment ring;
    private final long capacity;
    private final int maxFrames;
    /** Consumer position in bytes, ever increasing; written by the consumer only. */
    private volatile long head;
    /** Producer position in bytes, ever increasing; written by the producer only. */
    private volatile long tail;
    private final AtomicInteger frames = new AtomicInteger();
    private final AtomicLong dropped = new AtomicLong();
    private volatile Thread waitingProducer;
    private volatile Runnable onFrame = () -> { };
    private volatile boolean closed;

    /** A queue of {@link #DEFAULT_CAPACITY_BYTES} and {@link #DEFAULT_MAX_FRAMES}. */
    public RxQueue() {
        this(DEFAULT_CAPACITY_BYTES, DEFAULT_MAX_FRAMES);
    }

    /**
     * A queue with the given bounds.
     *
     * @param capacityBytes native memory for frames and their 8-byte headers, at least enough for
     *                      one frame of {@link #MAX_FRAME_BYTES}
     * @param maxFrames     frames held at most, at least 1
     * @throws IllegalArgumentException if a bound is below its minimum
     */
    public RxQueue(int capacityBytes, int maxFrames) {
        if (capacityBytes < 2 * (HEADER + MAX_FRAME_BYTES + 8)) {
            throw new IllegalArgumentException("an RX queue of " + capacityBytes + " bytes cannot hold two frames of "
                    + MAX_FRAME_BYTES + " bytes");
        }
        if (maxFrames < 1) {
            throw new IllegalArgumentException("maxFrames must be at least 1, was " + maxFrames);
        }
        this.capacity = capacityBytes & ~7L;
        this.maxFrames = maxFrames;
        this.ring = Arena.ofAuto().allocate(capacity, 8);
    }

    /**
     * Sets what runs, in the producer's thread, after a frame was added to an empty queue: the
     * NIC's cue to look for guest buffers. It must not block; typically it wakes the NIC's
     * thread.
     *
     * @param listener the callback
     * @throws NullPointerException if listener is null
     */
    public void onFrame(Runnable listener) {
        onFrame = Objects.requireNonNull(listener, "listener");
    }

    /**
     * Adds a frame if there is room, else drops it and counts the drop. Producer only.
     *
     * @param frame the frame's bytes, 1 to {@link #MAX_FRAME_BYTES}
     * @return whether it was queued
     * @throws IllegalArgumentException if the frame is empty or larger than {@link #MAX_FRAME_BYTES}
     */
    public boolean offer(MemorySegment frame) {
        check(frame.byteSize());
        if (closed || !tryAdd(frame, null, (int) frame.byteSize())) {
            dropped.incrementAndGet();
            return false;
        }
        return true;
    }

    /**
     * Adds a frame, waiting up to {@code timeoutNanos} for room (the consumer frees it). Producer
     * only. A frame still without room after that, or offered to a closed queue, is dropped and
     * counted.
     *
     * @param frame        the frame's bytes, 1 to {@link #MAX_FRAME_BYTES}
     * @param timeoutNanos how long to wait for room; {@link Long#MAX_VALUE} waits until there is
     *                     room or the queue is closed
     * @return whether it was queued
     * @throws IllegalArgumentException if the frame is empty or larger than {@link #MAX_FRAME_BYTES}
     * @throws InterruptedException     if interrupted while waiting (the frame is not queued)
     */
    public boolean offer(MemorySegment frame, long timeoutNanos) throws InterruptedException {
        check(frame.byteSize());
        long deadline = System.nanoTime() + Math.min(timeoutNanos, Long.MAX_VALUE / 4);
        waitingProducer = Thread.currentThread();
        try {
            while (!closed) {
                if (tryAdd(frame, null, (int) frame.byteSize())) {
                    return true;
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    break;
                }
                // Woken by removeHead; the bound covers a wake-up that raced with the check above.
                LockSupport.parkNanos(this, Math.min(left, TimeUnit.MILLISECONDS.toNanos(10)));
                if (Thread.interrupted()) {
                    throw new InterruptedException("waiting for room in the RX queue");
                }
            }
        } finally {
            waitingProducer = null;
        }
        dropped.incrementAndGet();
        return false;
    }

    /**
     * Adds a frame given as pieces (the NIC's own transmission, looped back) if there is room,
     * else drops it and counts the drop. Producer only.
     *
     * @param frame the frame's bytes, 1 to {@link #MAX_FRAME_BYTES}
     * @return whether it was queued
     * @throws IllegalArgumentException if the frame is empty or larger than {@link #MAX_FRAME_BYTES}
     */
    public boolean offer(IoVector frame) {
        check(frame.size());
        if (closed || !tryAdd(null, frame, (int) frame.size())) {
            dropped.incrementAndGet();
            return false;
        }
        return true;
    }

    /** Refuses an empty frame or one past {@link #MAX_FRAME_BYTES}: shared by the backends' transmit. */
    static void check(long size) {
        if (size < 1 || size > MAX_FRAME_BYTES) {
            throw new IllegalArgumentException("a frame of " + size + " bytes (1.." + MAX_FRAME_BYTES + " allowed)");
        }
    }

    /** Copies {@code length} bytes from {@code frame}, or if it is null from {@code pieces}. */
    private boolean tryAdd(MemorySegment frame, IoVector pieces, int length) {
        long record = HEADER + ((length + 7L) & ~7L);
        long t = tail;
        long free = capacity - (t - head);
        long at = t % capacity;
        long contiguous = capacity - at;
        long needed = record <= contiguous ? record : contiguous + record;
        if (needed > free || frames.get() >= maxFrames) {
            return false;
        }
        if (record > contiguous) {
            // Frames never wrap: the rest of the ring is skipped (there are always 8 bytes for the mark).
            ring.set(ValueLayout.JAVA_INT, at, WRAP);
            t += contiguous;
            at = 0;
        }
        ring.set(ValueLayout.JAVA_INT, at, length);
        if (frame != null) {
            MemorySegment.copy(frame, 0, ring, at + HEADER, length);
        } else {
            pieces.copyTo(0, ring, at + HEADER, length);
        }
        tail = t + record;
        if (frames.getAndIncrement() == 0) {
            try {
                onFrame.run();
            } catch (RuntimeException e) {
                // The NIC's callback failing must not cost the backend its receive thread.
                LOG.log(System.Logger.Level.WARNING, "RX queue listener failed", e);
            }
        }
        return true;
    }

    /** {@return the length of the frame at the head, or -1 if the queue is empty} Consumer only. */
    public int headLength() {
        long at = headOffset();
        return at < 0 ? -1 : ring.get(ValueLayout.JAVA_INT, at);
    }

    /** The ring offset of the head frame's header, skipping a wrap mark; -1 if empty. */
    private long headOffset() {
        long h = head;
        if (h == tail) {
            return -1;
        }
        long at = h % capacity;
        if (ring.get(ValueLayout.JAVA_INT, at) == WRAP) {
            head = h + (capacity - at);
            return head == tail ? -1 : 0;
        }
        return at;
    }

    /**
     * Copies bytes of the head frame into a vector (the guest's receive buffers, mapped).
     * Consumer only.
     *
     * @param frameOffset where in the frame to start
     * @param dst         where the bytes go
     * @param dstOffset   where in {@code dst} they start
     * @param bytes       how many; the frame and the vector must both have them
     * @throws IllegalStateException     if the queue is empty
     * @throws IndexOutOfBoundsException     if the range is outside the frame or the vector
     * @throws UnsupportedOperationException if a segment of the range is read-only (nothing is copied)
     */
    public void copyHead(int frameOffset, IoVector dst, long dstOffset, int bytes) {
        long at = headOffset();
        if (at < 0) {
            throw new IllegalStateException("the RX queue is empty");
        }
        int length = ring.get(ValueLayout.JAVA_INT, at);
        Objects.checkFromIndexSize(frameOffset, bytes, length);
        Objects.checkFromIndexSize(dstOffset, bytes, dst.size());
        dst.copyFrom(dstOffset, ring, at + HEADER + frameOffset, bytes);
    }

    /**
     * Copies bytes of the head frame into a segment. Consumer only.
     *
     * @param frameOffset where in the frame to start
     * @param dst         where the bytes go, all of it
     * @throws IllegalStateException     if the queue is empty
     * @throws IndexOutOfBoundsException if the range is outside the frame
     */
    public void copyHead(int frameOffset, MemorySegment dst) {
        long at = headOffset();
        if (at < 0) {
            throw new IllegalStateException("the RX queue is empty");
        }
        int length = ring.get(ValueLayout.JAVA_INT, at);
        Objects.checkFromIndexSize(frameOffset, dst.byteSize(), length);
        MemorySegment.copy(ring, at + HEADER + frameOffset, dst, 0, dst.byteSize());
    }

    /**
     * Removes the head frame (delivered, or dropped by the NIC) and wakes a producer waiting for
     * room. Consumer only.
     *
     * @throws IllegalStateException if the queue is empty
     */
    public void removeHead() {
        long at = headOffset();
        if (at < 0) {
            throw new IllegalStateException("the RX queue is empty");
        }
        int length = ring.get(ValueLayout.JAVA_INT, at);
        head = head + HEADER + ((length + 7L) & ~7L);
        frames.decrementAndGet();
        Thread producer = waitingProducer;
        if (producer != null) {
            LockSupport.unpark(producer);
        }
    }

    /** {@return frames waiting} */
    public int size() {
        return frames.get();
    }

    /** {@return whether no frame is waiting} */
    public boolean isEmpty() {
        return frames.get() == 0;
    }

    /** {@return frames dropped because the queue was full or closed} */
    public long dropped() {
        return dropped.get();
    }

    /**
     * Refuses further frames and wakes a producer waiting for room; frames already queued can
     * still be taken. Idempotent.
     */
    public void close() {
        closed = true;
        Thread producer = waitingProducer;
        if (producer != null) {
            LockSupport.unpark(producer);
        }
    }
}
