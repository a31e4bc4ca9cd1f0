package io.guestdma.machine;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;

/**
 * The IDE controller's I/O executor in a machine with blkdebug drives: each task runs on an I/O
 * thread while the submitting thread waits for it, so that, as with a direct executor, a command
 * completes inside the register access that started it; but a task that blocks at a blkdebug
 * breakpoint ({@link #holding()}) lets the submitter go on, leaving the command busy, as QEMU's
 * suspended coroutine does, until the breakpoint is resumed on another thread (the monitor's).
 * Tasks submitted from an I/O thread run there at once.
 */
final class HandOffExecutor implements Executor, AutoCloseable {
    private static final ThreadLocal<Task> CURRENT = new ThreadLocal<>();

    private final ExecutorService threads = Executors.newCachedThreadPool(
            Thread.ofPlatform().daemon().name("ide-io-", 0).factory());

    /** One submitted task: done when it finished or went to wait at a breakpoint. */
    private static final class Task {
        private boolean released;

        synchronized void release() {
            released = true;
            notifyAll();
        }

        synchronized void awaitRelease() {
            boolean interrupted = false;
            while (!released) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void execute(Runnable command) {
        if (CURRENT.get() != null) {
            command.run();
            return;
        }
        Task task = new Task();
        threads.execute(() -> {
            CURRENT.set(task);
            try {
                command.run();
            } finally {
                CURRENT.remove();
                task.release();
            }
        });
        task.awaitRelease();
    }

    /** Called on an I/O thread about to block at a breakpoint: its submitter need not wait. */
    static void holding() {
        Task task = CURRENT.get();
        if (task != null) {
            task.release();
        }
    }

    /** Stops the I/O threads; requests still held at breakpoints were released by closing their images. */
    @Override
    public void close() {
        threads.shutdown();
        try {
            threads.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
