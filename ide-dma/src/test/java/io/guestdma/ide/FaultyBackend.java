package io.guestdma.ide;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.ForwardingBackend;
import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A test decorator that fails reads, writes, flushes or discards on demand with an I/O error, and
 * counts the requests that reach the real backend.
 */
final class FaultyBackend extends ForwardingBackend {
    final AtomicBoolean failReads = new AtomicBoolean();
    final AtomicBoolean failWrites = new AtomicBoolean();
    final AtomicBoolean failFlushes = new AtomicBoolean();
    final AtomicBoolean failDiscards = new AtomicBoolean();
    final AtomicInteger flushes = new AtomicInteger();
    final AtomicInteger writes = new AtomicInteger();
    final AtomicInteger discards = new AtomicInteger();
    /** When set, writes announce themselves on {@link #writeEntered} and wait for the gate. */
    volatile CountDownLatch writeGate;
    final CountDownLatch writeEntered = new CountDownLatch(1);

    FaultyBackend(BlockBackend inner) {
        super(inner);
    }

    private void passGate() throws IOException {
        CountDownLatch gate = writeGate;
        if (gate != null) {
            writeEntered.countDown();
            try {
                if (!gate.await(10, TimeUnit.SECONDS)) {
                    throw new IOException("test gate never opened");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException(e);
            }
        }
    }

    /** When set, every request throws what it supplies (an Error, say), as a broken backend would. */
    volatile java.util.function.Supplier<? extends Throwable> throwing;

    private void failIf(AtomicBoolean flag, String what) throws IOException {
        java.util.function.Supplier<? extends Throwable> t = throwing;
        if (t != null) {
            throw FaultyBackend.<RuntimeException>sneaky(t.get());
        }
        if (flag.get()) {
            throw new IOException("injected " + what + " failure");
        }
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> T sneaky(Throwable t) throws T {
        throw (T) t;
    }

    @Override
    public void readv(long offset, IoVector iov) throws IOException {
        failIf(failReads, "read");
        delegate().readv(offset, iov);
    }

    @Override
    public void writev(long offset, IoVector iov) throws IOException {
        passGate();
        failIf(failWrites, "write");
        writes.incrementAndGet();
        delegate().writev(offset, iov);
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        failIf(failReads, "read");
        delegate().read(offset, dst);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        passGate();
        failIf(failWrites, "write");
        writes.incrementAndGet();
        delegate().write(offset, src);
    }

    @Override
    public void flush() throws IOException {
        failIf(failFlushes, "flush");
        flushes.incrementAndGet();
        delegate().flush();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        failIf(failDiscards, "discard");
        discards.incrementAndGet();
        delegate().discard(offset, length);
    }

    @Override
    public void close() throws IOException {
        // the rig closes the real backend
    }
}
