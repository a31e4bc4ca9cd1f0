package io.guestdma.block;

import io.guestdma.block.BlkdebugConfig.Event;
import io.guestdma.block.BlkdebugConfig.InjectError;
import io.guestdma.block.BlkdebugConfig.IoType;
import io.guestdma.block.BlkdebugConfig.Rule;
import io.guestdma.block.BlkdebugConfig.SetState;
import io.guestdma.block.FaultInjectingBackend.Operation;
import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * QEMU's blkdebug block driver over a backend ({@code file=blkdebug:CONFIG:IMAGE}): requests
 * raise the events a raw image raises in QEMU, the rules of a {@link BlkdebugConfig} react to
 * them by failing later requests or changing the state, and breakpoints ({@link #breakpoint},
 * QEMU's {@code qemu-io DRIVE "break EVENT TAG"}) hold the request that raised an event until
 * {@link #resume}. Failures are injected through a {@link FaultInjectingBackend}, so they are
 * {@code PosixException}s with the rule's errno and the request moves nothing.
 *
 * <p>The state machine follows QEMU: the state starts at 1; when an event happens, every rule for
 * it whose state is 0 or the current state acts, {@code [set-state]} rules taking effect after all
 * of them; an event with {@code [inject-error]} rules replaces the active ones. An active rule
 * fails each request of its I/O types that covers its sector (any request if it has none; a flush
 * only if it has none) until another event replaces it, or once with {@code once}. A flush raises
 * {@code flush_to_os}, and {@code flush_to_disk} only if something was written since the last
 * successful flush (otherwise it returns at once, as QEMU's does).
 *
 * <p>Thread-safe. Requests are serialised (the rule check and the request, so that an armed
 * failure lands on the request it was meant for), except that a request held at a breakpoint
 * holds nothing but its own thread. Closing releases held requests and closes the wrapped
 * backend.
 */
public final class BlkdebugBackend implements BlockBackend {
    private final FaultInjectingBackend faults;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private final Object io = new Object();
    private final List<Rule> rules;
    private final List<InjectError> active = new ArrayList<>();
    private final List<Breakpoint> breakpoints = new ArrayList<>();
    private final List<Held> held = new ArrayList<>();
    private long state = 1;
    private boolean dirty;
    private boolean closed;
    private volatile Runnable onHold = () -> { };

    private record Breakpoint(Event event, String tag) {
    }

    /** A request held at a breakpoint. */
    private static final class Held {
        final String tag;
        boolean released;

        Held(String tag) {
            this.tag = tag;
        }
    }

    /**
     * Wraps a backend with the rules of a configuration.
     *
     * @param inner the image
     * @param config the rules (an empty configuration: breakpoints only)
     * @throws NullPointerException if an argument is null
     */
    public BlkdebugBackend(BlockBackend inner, BlkdebugConfig config) {
        this.faults = new FaultInjectingBackend(Objects.requireNonNull(inner, "inner"));
        this.rules = new ArrayList<>(Objects.requireNonNull(config, "config").rules());
    }

    /**
     * Sets what runs on a request's thread just before it blocks at a breakpoint: an executor
     * that waits for its tasks uses it to let the caller go on (see the machine's I/O executor).
     *
     * @param listener the action, run with no lock held
     * @throws NullPointerException if listener is null
     */
    public void onHold(Runnable listener) {
        onHold = Objects.requireNonNull(listener, "listener");
    }

    /**
     * Sets a breakpoint: the next request that raises the event is held until
     * {@link #resume(String)} with the tag; the breakpoint is then gone.
     *
     * @param eventName QEMU's event name, e.g. {@code flush_to_os}
     * @param tag the tag
     * @throws IllegalArgumentException if no event of this layer has that name
     * @throws NullPointerException if an argument is null
     */
    public void breakpoint(String eventName, String tag) {
        Event event = Event.of(Objects.requireNonNull(eventName, "eventName"));
        Objects.requireNonNull(tag, "tag");
        lock.lock();
        try {
            breakpoints.add(new Breakpoint(event, tag));
        } finally {
            lock.unlock();
        }
    }

    /**
     * Removes the breakpoints with a tag and releases the requests held by it.
     *
     * @param tag the tag
     * @return whether a breakpoint or held request had the tag
     */
    public boolean removeBreakpoint(String tag) {
        lock.lock();
        try {
            boolean found = breakpoints.removeIf(b -> b.tag().equals(tag));
            return release(tag, true) || found;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Releases the first request held with a tag.
     *
     * @param tag the tag
     * @return false if no request is held with that tag
     */
    public boolean resume(String tag) {
        lock.lock();
        try {
            return release(tag, false);
        } finally {
            lock.unlock();
        }
    }

    private boolean release(String tag, boolean all) {
        boolean found = false;
        for (Iterator<Held> it = held.iterator(); it.hasNext(); ) {
            Held h = it.next();
            if (h.tag.equals(tag)) {
                h.released = true;
                it.remove();
                found = true;
                if (!all) {
                    break;
                }
            }
        }
        changed.signalAll();
        return found;
    }

    /** Drops every breakpoint and releases every held request: they go on as if resumed. */
    public void releaseAll() {
        lock.lock();
        try {
            breakpoints.clear();
            for (Held h : held) {
                h.released = true;
            }
            held.clear();
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * {@return whether a request is held with the tag}
     *
     * @param tag the tag
     */
    public boolean isHeld(String tag) {
        lock.lock();
        try {
            return held.stream().anyMatch(h -> h.tag.equals(tag));
        } finally {
            lock.unlock();
        }
    }

    /**
     * Waits until a request is held with the tag (QEMU's {@code wait_break}).
     *
     * @param tag the tag
     * @param timeout how long to wait at most
     * @param unit its unit
     * @return whether a request is held with the tag
     * @throws InterruptedException if the thread is interrupted while waiting
     */
    public boolean awaitHeld(String tag, long timeout, TimeUnit unit) throws InterruptedException {
        long nanos = unit.toNanos(timeout);
        lock.lock();
        try {
            while (held.stream().noneMatch(h -> h.tag.equals(tag))) {
                if (nanos <= 0) {
                    return false;
                }
                nanos = changed.awaitNanos(nanos);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** {@return the current state of the rules' state machine (1 at the start)} */
    public long state() {
        lock.lock();
        try {
            return state;
        } finally {
            lock.unlock();
        }
    }

    /** {@return the faults injected so far, in order} */
    public List<FaultInjectingBackend.Injected> injected() {
        return faults.injected();
    }

    /** Processes an event: the rules act, then a breakpoint on it holds this request. */
    private void event(Event event) throws IOException {
        List<Held> holds = new ArrayList<>();
        lock.lock();
        try {
            long next = state;
            boolean injected = false;
            // QEMU keeps each event's rules newest first, so the last matching rule of the file
            // is the first active one
            for (int i = rules.size() - 1; i >= 0; i--) {
                Rule rule = rules.get(i);
                if (rule.event() != event || (rule.state() != 0 && rule.state() != state)) {
                    continue;
                }
                switch (rule) {
                    case InjectError inject -> {
                        if (!injected) {
                            active.clear();
                            injected = true;
                        }
                        active.add(inject);
                    }
                    case SetState set -> next = set.newState();
                }
            }
            state = next;
            for (Iterator<Breakpoint> it = breakpoints.iterator(); it.hasNext(); ) {
                Breakpoint b = it.next();
                if (b.event() == event) {
                    it.remove();
                    Held h = new Held(b.tag());
                    held.add(h);
                    holds.add(h);
                }
            }
            if (!holds.isEmpty()) {
                changed.signalAll();
            }
        } finally {
            lock.unlock();
        }
        for (Held h : holds) {
            hold(h);
        }
    }

    private void hold(Held h) throws IOException {
        onHold.run();
        lock.lock();
        try {
            while (!h.released && !closed) {
                changed.awaitUninterruptibly();
            }
            if (closed && !h.released) {
                throw new IOException("blkdebug: the image was closed while a request was held at '" + h.tag + "'");
            }
        } finally {
            lock.unlock();
        }
    }

    /** Arms the first active rule that matches the request for the request about to be made. */
    private void check(IoType type, Operation operation, long offset, long bytes) {
        lock.lock();
        try {
            for (Iterator<InjectError> it = active.iterator(); it.hasNext(); ) {
                InjectError rule = it.next();
                long at = rule.sector() * 512;
                boolean covers = rule.sector() == -1 || (bytes > 0 && at >= offset && at < offset + bytes);
                if (covers && rule.ioTypes().contains(type)) {
                    if (rule.once()) {
                        it.remove();
                        rules.remove(rule);
                    }
                    faults.failAt(operation, faults.requests(operation) + 1, rule.errno());
                    return;
                }
            }
        } finally {
            lock.unlock();
        }
    }

    /** One request of the wrapped backend. */
    @FunctionalInterface
    private interface Request {
        void run() throws IOException;
    }

    private void read(long offset, long bytes, Request request) throws IOException {
        event(Event.READ_AIO);
        synchronized (io) {
            check(IoType.READ, Operation.READ, offset, bytes);
            request.run();
        }
    }

    private void write(long offset, long bytes, Request request) throws IOException {
        event(Event.WRITE_AIO);
        event(Event.PWRITEV);
        try {
            synchronized (io) {
                check(IoType.WRITE, Operation.WRITE, offset, bytes);
                dirty = true;
                request.run();
            }
        } finally {
            event(Event.PWRITEV_DONE);
        }
    }

    @Override
    public long size() {
        return faults.size();
    }

    @Override
    public boolean isReadOnly() {
        return faults.isReadOnly();
    }

    @Override
    public void readv(long offset, IoVector iov) throws IOException {
        read(offset, iov.size(), () -> faults.readv(offset, iov));
    }

    @Override
    public void writev(long offset, IoVector iov) throws IOException {
        write(offset, iov.size(), () -> faults.writev(offset, iov));
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        read(offset, dst.remaining(), () -> faults.read(offset, dst));
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        write(offset, src.remaining(), () -> faults.write(offset, src));
    }

    @Override
    public void flush() throws IOException {
        event(Event.FLUSH_TO_OS);
        synchronized (io) {
            if (!dirty) {
                return;
            }
        }
        event(Event.FLUSH_TO_DISK);
        synchronized (io) {
            check(IoType.FLUSH, Operation.FLUSH, 0, 0);
            faults.flush();
            dirty = false;
        }
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        synchronized (io) {
            check(IoType.DISCARD, Operation.DISCARD, offset, length);
            dirty = true;
            faults.discard(offset, length);
        }
    }

    /** Releases held requests (they fail) and closes the wrapped backend. */
    @Override
    public void close() throws IOException {
        lock.lock();
        try {
            closed = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        faults.close();
    }
}
