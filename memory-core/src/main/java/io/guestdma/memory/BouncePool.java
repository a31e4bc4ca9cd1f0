package io.guestdma.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The bounded buffer space that DMA to non-RAM (MMIO, ROM writes, unassigned space) is bounced
 * through, and the map clients waiting for it.
 *
 * <p>The bound is on bytes in flight (QEMU's default is 4096), so a guest cannot make the host
 * allocate without limit by pointing DMA at MMIO. Any number of bounce mappings may be in flight
 * up to the bound (QEMU allowed one until 2024, and devices that needed two deadlocked). The
 * accounting is one lock-free counter. Buffers are recycled per power-of-two size class, so steady
 * state maps allocate no native memory; the native memory held never exceeds about twice the bound
 * per size class.
 *
 * <p>Map clients: {@link #registerClient} queues a one-shot callback; every release of bounce
 * space wakes all queued clients. A registration racing with the last release is not lost: the
 * registering thread publishes its client and then re-reads the counter, the releasing thread
 * publishes the counter and then reads the queue (both sides are sequentially consistent atomic
 * operations, the pairing QEMU does with two memory barriers), so at least one of them sees the
 * other. A client registered while nothing is in flight at all runs at once.
 *
 * <p>Thread-safe. Owned and closed by its {@link GuestMemory}.
 */
public final class BouncePool {
    /** QEMU's default bound on bounce bytes in flight per address space. */
    public static final long DEFAULT_CAPACITY = 4096;

    private static final int MIN_CLASS_SHIFT = 6; // 64-byte buffers are the smallest worth keeping

    private final long capacity;
    private final AtomicLong inFlight = new AtomicLong();
    private final ConcurrentLinkedQueue<MapClient> clients = new ConcurrentLinkedQueue<>();
    private final Arena arena = Arena.ofShared();
    private final ArrayDeque<MemorySegment>[] freeBuffers;
    private volatile boolean closed;

    @SuppressWarnings("unchecked")
    BouncePool(long capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("bounce pool capacity must be at least 1 byte, was " + capacity);
        }
        this.capacity = capacity;
        int classes = classOf(capacity) + 1;
        @SuppressWarnings({"unchecked", "rawtypes"}) // no generic array creation in Java
        ArrayDeque<MemorySegment>[] lists = new ArrayDeque[classes];
        freeBuffers = lists;
        for (int i = 0; i < classes; i++) {
            freeBuffers[i] = new ArrayDeque<>();
        }
    }

    /** {@return the bound on bounce bytes in flight} */
    public long capacity() {
        return capacity;
    }

    /** {@return bounce bytes currently mapped (0 when no bounce mapping is live)} */
    public long bytesInFlight() {
        return inFlight.get();
    }

    /** {@return the number of map clients registered and not yet fired or cancelled} */
    public int waitingClients() {
        int n = 0;
        for (MapClient c : clients) {
            if (c.isPending()) {
                n++;
            }
        }
        return n;
    }

    /**
     * Reserves up to {@code wanted} bytes of the bound.
     *
     * @return the bytes granted, {@code 0} when the pool is full
     */
    long reserve(long wanted) {
        long used = inFlight.get();
        while (true) {
            long grant = Math.min(wanted, capacity - used);
            if (grant <= 0) {
                return 0;
            }
            long witness = inFlight.compareAndExchange(used, used + grant);
            if (witness == used) {
                return grant;
            }
            used = witness;
        }
    }

    /** Returns reserved bytes and wakes the waiting map clients. */
    void release(long bytes) {
        inFlight.addAndGet(-bytes);
        if (!clients.isEmpty()) {
            wakeClients();
        }
    }

    /** A whole buffer of at least {@code length} bytes, reused when one of its size class is free. */
    MemorySegment takeBuffer(long length) {
        int sizeClass = classOf(length);
        ArrayDeque<MemorySegment> free = freeBuffers[sizeClass];
        MemorySegment buffer;
        synchronized (free) {
            buffer = free.pollFirst();
        }
        if (buffer == null) {
            if (closed) {
                throw new IllegalStateException("guest memory is closed");
            }
            buffer = arena.allocate(1L << (sizeClass + MIN_CLASS_SHIFT), 64);
        }
        return buffer;
    }

    /** Gives back a whole buffer obtained from {@link #takeBuffer}. */
    void returnBuffer(MemorySegment whole) {
        ArrayDeque<MemorySegment> free = freeBuffers[classOf(whole.byteSize())];
        synchronized (free) {
            free.addFirst(whole);
        }
    }

    MapClient registerClient(Executor executor, Runnable callback) {
        MapClient client = new MapClient(executor, callback);
        clients.add(client);
        // Pairs with release(): publish the client, then look at the counter.
        if (inFlight.get() == 0) {
            wakeClients();
        }
        return client;
    }

    private void wakeClients() {
        MapClient client;
        while ((client = clients.poll()) != null) {
            client.fire();
        }
    }

    void close() {
        closed = true;
        arena.close();
    }

    private static int classOf(long length) {
        long rounded = Math.max(length, 1L << MIN_CLASS_SHIFT);
        int shift = 64 - Long.numberOfLeadingZeros(rounded - 1);
        return shift - MIN_CLASS_SHIFT;
    }
}
