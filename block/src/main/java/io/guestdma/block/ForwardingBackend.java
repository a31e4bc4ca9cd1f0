package io.guestdma.block;

import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * A backend that passes every synchronous call to another backend. Extend it to change a few
 * operations of a backend (ignore discards, count writes, fail on cue) without restating the rest;
 * each method's contract is the wrapped backend's.
 *
 * <p>The asynchronous forms of an operation ({@code submitWritev} and {@code writevAsync} for
 * {@code writev}; {@code submitReadv} and {@code readvAsync} for {@code readv}; likewise for
 * {@code flush} and {@code discard}) go to the wrapped backend's, so that its own asynchronous
 * path ({@link NbdBackend}'s) is used, as long as the subclass does not override the synchronous
 * form. Once it does, they keep {@link BlockBackend}'s defaults, which run this object's
 * synchronous method: an override of {@code writev} also changes what {@code writevAsync} and
 * {@code submitWritev} do, and never goes around it. (Whether a method is overridden is looked up
 * once, when the object is made.)
 */
public abstract class ForwardingBackend implements BlockBackend {
    private final BlockBackend delegate;
    /** Whether the subclass left the synchronous form as it is here, so the asynchronous ones may go to the delegate. */
    private final boolean forwardReadv;
    private final boolean forwardWritev;
    private final boolean forwardFlush;
    private final boolean forwardDiscard;

    /**
     * Wraps a backend.
     *
     * @param delegate the backend calls go to
     * @throws NullPointerException if delegate is null
     */
    protected ForwardingBackend(BlockBackend delegate) {
        this.delegate = Objects.requireNonNull(delegate, "delegate");
        forwardReadv = inherited("readv", long.class, IoVector.class);
        forwardWritev = inherited("writev", long.class, IoVector.class);
        forwardFlush = inherited("flush");
        forwardDiscard = inherited("discard", long.class, long.class);
    }

    /** Whether this object's public method is the one declared here, not a subclass's override. */
    private boolean inherited(String name, Class<?>... parameters) {
        try {
            return getClass().getMethod(name, parameters).getDeclaringClass() == ForwardingBackend.class;
        } catch (NoSuchMethodException e) {
            throw new AssertionError("BlockBackend." + name + " is public", e);
        }
    }

    /** {@return the wrapped backend} */
    protected final BlockBackend delegate() {
        return delegate;
    }

    @Override
    public long size() {
        return delegate.size();
    }

    @Override
    public boolean isReadOnly() {
        return delegate.isReadOnly();
    }

    @Override
    public void readv(long offset, IoVector iov) throws IOException {
        delegate.readv(offset, iov);
    }

    @Override
    public void writev(long offset, IoVector iov) throws IOException {
        delegate.writev(offset, iov);
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        delegate.read(offset, dst);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        delegate.write(offset, src);
    }

    @Override
    public void flush() throws IOException {
        delegate.flush();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        delegate.discard(offset, length);
    }

    @Override
    public void close() throws IOException {
        delegate.close();
    }

    @Override
    public void submitReadv(long offset, IoVector iov, BlockCompletion completion) {
        if (forwardReadv) {
            delegate.submitReadv(offset, iov, completion);
        } else {
            BlockBackend.super.submitReadv(offset, iov, completion);
        }
    }

    @Override
    public void submitWritev(long offset, IoVector iov, BlockCompletion completion) {
        if (forwardWritev) {
            delegate.submitWritev(offset, iov, completion);
        } else {
            BlockBackend.super.submitWritev(offset, iov, completion);
        }
    }

    @Override
    public void submitFlush(BlockCompletion completion) {
        if (forwardFlush) {
            delegate.submitFlush(completion);
        } else {
            BlockBackend.super.submitFlush(completion);
        }
    }

    @Override
    public void submitDiscard(long offset, long length, BlockCompletion completion) {
        if (forwardDiscard) {
            delegate.submitDiscard(offset, length, completion);
        } else {
            BlockBackend.super.submitDiscard(offset, length, completion);
        }
    }

    @Override
    public CompletableFuture<Void> readvAsync(long offset, IoVector iov, Executor executor) {
        return forwardReadv ? delegate.readvAsync(offset, iov, executor) : BlockBackend.super.readvAsync(offset, iov, executor);
    }

    @Override
    public CompletableFuture<Void> writevAsync(long offset, IoVector iov, Executor executor) {
        return forwardWritev ? delegate.writevAsync(offset, iov, executor) : BlockBackend.super.writevAsync(offset, iov, executor);
    }

    @Override
    public CompletableFuture<Void> flushAsync(Executor executor) {
        return forwardFlush ? delegate.flushAsync(executor) : BlockBackend.super.flushAsync(executor);
    }

    @Override
    public CompletableFuture<Void> discardAsync(long offset, long length, Executor executor) {
        return forwardDiscard ? delegate.discardAsync(offset, length, executor)
                : BlockBackend.super.discardAsync(offset, length, executor);
    }
}
