package io.guestdma.block;

import java.io.IOException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;

/**
 * Runs one blocking backend request on an executor and reports it through a future; reports a
 * request's outcome to its {@link BlockCompletion}.
 */
final class BlockRequest {
    private BlockRequest() {
    }

    /** A backend call. */
    @FunctionalInterface
    interface Io {
        void run() throws IOException;
    }

    static CompletableFuture<Void> submit(Executor executor, Io io) {
        CompletableFuture<Void> future = new CompletableFuture<>();
        try {
            executor.execute(() -> {
                // A cancelled request never reaches the image: that is what cancellation promises.
                if (future.isDone()) {
                    return;
                }
                try {
                    io.run();
                    future.complete(null);
                } catch (IOException | RuntimeException e) {
                    future.completeExceptionally(e);
                } catch (Error e) {
                    future.completeExceptionally(e);
                    throw e;
                }
            });
        } catch (RejectedExecutionException e) {
            future.completeExceptionally(e);
        }
        return future;
    }

    /**
     * Calls the completion with the outcome (null: success). An exception it throws goes to the
     * calling thread's uncaught exception handler: it must not undo a request that is over, nor
     * end the thread that reads a connection's replies.
     */
    static void report(BlockCompletion completion, IOException failure) {
        try {
            if (failure == null) {
                completion.completed();
            } else {
                completion.failed(failure);
            }
        } catch (RuntimeException e) {
            Thread me = Thread.currentThread();
            me.getUncaughtExceptionHandler().uncaughtException(me, e);
        }
    }
}
