package io.guestdma.memory;

import java.util.Objects;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A one-shot wish to be told when bounce space frees (QEMU's map client). Created by
 * {@link GuestMemory#registerMapClient}; its callback runs at most once, on the executor given at
 * registration, after which the client is done. Thread-safe.
 */
public final class MapClient {
    private static final int PENDING = 0;
    private static final int FIRED = 1;
    private static final int CANCELLED = 2;

    private final Executor executor;
    private final Runnable callback;
    private final AtomicInteger state = new AtomicInteger(PENDING);

    MapClient(Executor executor, Runnable callback) {
        this.executor = Objects.requireNonNull(executor, "executor");
        this.callback = Objects.requireNonNull(callback, "callback");
    }

    /**
     * Withdraws the wish.
     *
     * @return true if the callback will now never run; false if it already ran or was submitted
     *         (or the client was already cancelled)
     */
    public boolean cancel() {
        return state.compareAndSet(PENDING, CANCELLED);
    }

    /** {@return whether the callback has been handed to its executor} */
    public boolean hasFired() {
        return state.get() == FIRED;
    }

    /** {@return whether {@link #cancel()} succeeded} */
    public boolean isCancelled() {
        return state.get() == CANCELLED;
    }

    /** {@return false if the client was already done (fired or cancelled)} */
    boolean fire() {
        if (!state.compareAndSet(PENDING, FIRED)) {
            return false;
        }
        try {
            executor.execute(callback);
        } catch (RejectedExecutionException e) {
            // Dropping the callback would leave the device waiting forever: run it here instead.
            callback.run();
        }
        return true;
    }

    boolean isPending() {
        return state.get() == PENDING;
    }
}
