package io.guestdma.machine;

import java.util.Objects;
import java.util.PriorityQueue;

/**
 * The machine's virtual clock (QEMU's QEMU_CLOCK_VIRTUAL under qtest): time in nanoseconds that
 * stands still until the test moves it ({@code clock_step}, {@code clock_set}), and the timers
 * devices arm on it, which fire, in deadline order, when it passes their deadline. Starts at 0.
 *
 * <p>Thread-safe. Timer actions run on the thread that moves the clock, with no clock lock held,
 * the clock reading their deadline; an action may arm or cancel timers (one armed for a deadline
 * already passed fires in the same move).
 */
public final class VirtualClock {
    private final PriorityQueue<Timer> timers = new PriorityQueue<>();
    private long now;
    private long sequence;

    /** Creates a clock at 0 with no timers. */
    public VirtualClock() {
    }

    /** A timer armed on the clock. */
    public final class Timer implements Comparable<Timer> {
        private final long deadline;
        private final long order;
        private final Runnable action;
        private boolean cancelled;

        private Timer(long deadline, long order, Runnable action) {
            this.deadline = deadline;
            this.order = order;
            this.action = action;
        }

        /** {@return the deadline, in the clock's nanoseconds} */
        public long deadline() {
            return deadline;
        }

        /**
         * Disarms the timer; does nothing if it fired or was cancelled already.
         *
         * @return whether it was still armed
         */
        public boolean cancel() {
            synchronized (VirtualClock.this) {
                if (cancelled || !timers.remove(this)) {
                    return false;
                }
                cancelled = true;
                return true;
            }
        }

        @Override
        public int compareTo(Timer other) {
            int c = Long.compare(deadline, other.deadline);
            return c != 0 ? c : Long.compare(order, other.order);
        }
    }

    /** {@return the current time in nanoseconds} */
    public synchronized long nanos() {
        return now;
    }

    /**
     * Arms a timer. Timers with the same deadline fire in the order they were armed.
     *
     * @param deadline when it fires, in the clock's nanoseconds (in the past: at the next move)
     * @param action what it does
     * @return the timer, for {@link Timer#cancel()}
     * @throws NullPointerException if action is null
     */
    public synchronized Timer schedule(long deadline, Runnable action) {
        Timer t = new Timer(deadline, sequence++, Objects.requireNonNull(action, "action"));
        timers.add(t);
        return t;
    }

    /** {@return the earliest deadline of an armed timer, or -1 if none is armed} */
    public synchronized long nextDeadline() {
        Timer t = timers.peek();
        return t == null ? -1 : t.deadline;
    }

    /**
     * Moves the clock forward to {@code target}, firing every timer due by then in order; never
     * moves it back (QEMU's qtest_clock_warp).
     *
     * @param target the time to reach
     * @return the time afterwards
     */
    public long advanceTo(long target) {
        while (true) {
            Timer due;
            synchronized (this) {
                Timer t = timers.peek();
                if (t == null || t.deadline > target) {
                    now = Math.max(now, target);
                    return now;
                }
                timers.poll();
                now = Math.max(now, t.deadline);
                due = t;
            }
            due.action.run();
        }
    }

    /**
     * {@code clock_step}: moves the clock by {@code nanos}.
     *
     * @param nanos how far; 0 or less leaves it
     * @return the time afterwards
     */
    public long step(long nanos) {
        long target;
        synchronized (this) {
            target = nanos > 0 ? now + nanos : now;
        }
        return advanceTo(target);
    }

    /**
     * {@code clock_step} without an argument: to the next deadline, firing that timer; without
     * timers the clock stays where it is.
     *
     * @return the time afterwards
     */
    public long stepToNextDeadline() {
        long next = nextDeadline();
        return next < 0 ? nanos() : advanceTo(next);
    }
}
