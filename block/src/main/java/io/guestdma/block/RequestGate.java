package io.guestdma.block;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * Admits a backend's requests until it is closed; closing waits for the admitted ones to leave,
 * so that what they use (a file descriptor, a connection) is never released under them.
 */
final class RequestGate {
    private static final long CLOSED = Long.MIN_VALUE;

    /** Sign bit: closed. Low bits: requests admitted and not yet left. */
    private final AtomicLong state = new AtomicLong();
    private final String subject;

    /** @param subject what is closed, for the message of a refused request ("image disk.img") */
    RequestGate(String subject) {
        this.subject = subject;
    }

    /** Admits a request; pair with {@link #exit()} in a finally block. */
    void enter() throws IOException {
        long s;
        do {
            s = state.get();
            if (s < 0) {
                throw new IOException(subject + " is closed");
            }
        } while (!state.compareAndSet(s, s + 1));
    }

    void exit() {
        state.decrementAndGet();
    }

    boolean isClosed() {
        return state.get() < 0;
    }

    /**
     * Refuses new requests, then waits until the admitted ones have left or the wait has lasted
     * {@code maxWaitNanos}.
     *
     * @return false if the gate was closed already (the caller has nothing left to release)
     */
    boolean close(long maxWaitNanos) {
        long s;
        do {
            s = state.get();
            if (s < 0) {
                return false;
            }
        } while (!state.compareAndSet(s, s | CLOSED));
        long start = System.nanoTime();
        while ((state.get() & ~CLOSED) != 0 && System.nanoTime() - start < maxWaitNanos) {
            LockSupport.parkNanos(100_000);
        }
        return true;
    }
}
