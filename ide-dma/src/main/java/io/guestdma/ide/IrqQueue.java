package io.guestdma.ide;

/**
 * Hands a channel's interrupt-line transitions to the {@link IrqLine} in the order they happened,
 * without ever calling the line while a channel lock is held.
 *
 * <p>The channel records each change of level while it holds its lock ({@link #record}). Whoever
 * releases the channel lock then calls {@link #deliver()}: the first such thread becomes the
 * deliverer and passes on every recorded transition, including ones recorded by other threads
 * meanwhile; the others return at once instead of waiting for it. So the line sees every
 * transition exactly once and in order, and an {@code IrqLine} may take the emulator's own locks
 * (even one a vCPU holds while it calls into the controller) without risk of deadlock. The price:
 * with a multi-threaded I/O executor a register access may return just before its transition
 * has reached the line, as if the interrupt were a few nanoseconds late.
 *
 * <p>Its own monitor is a leaf lock: nothing is called while it is held.
 */
final class IrqQueue {
    private static final int CAPACITY = 64;

    private final IrqLine line;
    private final boolean[] levels = new boolean[CAPACITY];
    // Written only under the monitor; volatile so that deliver() can see "nothing pending" without
    // taking it, which is the case on almost every register access.
    private volatile int head;
    private volatile int tail;
    private boolean level;
    private boolean delivering;

    IrqQueue(IrqLine line) {
        this.line = line;
    }

    /** The level as the device model last set it. */
    synchronized boolean level() {
        return level;
    }

    /** Records a level; repeats of the current level are not transitions and are dropped. */
    synchronized void record(boolean newLevel) {
        if (newLevel == level) {
            return;
        }
        level = newLevel;
        if (tail - head == CAPACITY) {
            // Only a runaway deliverer could let this many pile up; two opposite transitions in a
            // row at the end cancel out, which keeps the final level right.
            tail--;
            if (levels[(tail - 1) & (CAPACITY - 1)] == newLevel) {
                return;
            }
        }
        levels[tail & (CAPACITY - 1)] = newLevel;
        tail++;
    }

    /** Passes recorded transitions to the line; call with no channel lock held. */
    void deliver() {
        if (head == tail) {
            // Nothing recorded. A transition recorded after this read is delivered by the thread
            // that recorded it, which calls deliver() after releasing the channel lock.
            return;
        }
        synchronized (this) {
            if (delivering || head == tail) {
                return;
            }
            delivering = true;
        }
        boolean done = false;
        try {
            while (true) {
                boolean next;
                synchronized (this) {
                    if (head == tail) {
                        delivering = false;
                        notifyAll();
                        done = true;
                        return;
                    }
                    next = levels[head & (CAPACITY - 1)];
                    head++;
                }
                line.set(next);
            }
        } finally {
            if (!done) {
                synchronized (this) {
                    delivering = false;
                    notifyAll();
                }
            }
        }
    }

    /**
     * Waits until every transition recorded so far has reached the line: delivers them itself
     * when nobody is, else waits for the thread that is. For an observer that must not answer
     * before the line shows what the device did (qtest's reply to a port access comes after the
     * IRQ lines that access caused). Call with no lock held that the line may take, or this waits
     * for a deliverer that waits for it.
     *
     * @throws InterruptedException if interrupted while waiting; the transitions are still delivered
     *     by the thread delivering them
     */
    void awaitDelivered() throws InterruptedException {
        deliver();
        synchronized (this) {
            while (delivering) {
                wait();
            }
        }
        // A transition recorded after the deliverer finished is delivered by its own thread; one
        // recorded before it finished was delivered by it. What remains was recorded after this
        // call began, which the caller did not ask about.
    }
}
