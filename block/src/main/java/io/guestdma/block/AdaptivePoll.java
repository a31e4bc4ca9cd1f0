package io.guestdma.block;

/**
 * How long a thread waiting for a reply polls its socket before it goes to sleep, adapted as
 * QEMU adapts its event loop's polling ({@code poll-max-ns}, {@code poll-grow},
 * {@code poll-shrink}): a reply that comes while the thread still runs saves the wake-up of an idle
 * CPU, tens of microseconds on a virtual machine, which is most of a queue-depth-1 round trip to a
 * local server. The window grows while replies come soon after the thread fell asleep (polling a
 * little longer would have caught them) and halves after a run of replies that took longer than the
 * limit (a single slow reply is noise), down to nothing, so a slow or loaded server costs no
 * spinning.
 *
 * <p>{@code -Dguestdma.nbd.pollMaxNanos=N} sets the limit (default 64 000 ns; 0 turns polling
 * off). Not thread-safe: one thread at a time (the connection's reader) uses it.
 */
final class AdaptivePoll {
    /** The limit from {@code guestdma.nbd.pollMaxNanos}: 64 us unless set. */
    static final long MAX_NANOS = Math.max(0, Long.getLong("guestdma.nbd.pollMaxNanos", 64_000));
    /** The first window after polling was off. */
    static final long START_NANOS = 4_000;

    private final long max;
    /** Replies that came later than the limit, in a row: a few are noise, many a slow server. */
    static final int SLOW_RUN = 8;

    private long window;
    private int slowInARow;

    /**
     * Creates a poll that starts off.
     *
     * @param maxNanos the longest window; 0 never polls
     */
    AdaptivePoll(long maxNanos) {
        this.max = maxNanos;
    }

    /** {@return how long to poll before the next blocking wait, in nanoseconds} */
    long window() {
        return window;
    }

    /**
     * Adapts the window after one wait.
     *
     * @param waitedNanos how long the wait took, polling included
     * @param caughtWhilePolling whether the reply came while polling
     */
    void waited(long waitedNanos, boolean caughtWhilePolling) {
        if (caughtWhilePolling || max == 0) {
            return;
        }
        if (waitedNanos <= max) {
            slowInARow = 0;
            window = window == 0 ? Math.min(START_NANOS, max) : Math.min(window * 2, max);
        } else if (++slowInARow >= SLOW_RUN) {
            slowInARow = 0;
            window /= 2;
            if (window < START_NANOS) {
                window = 0;
            }
        }
    }
}
