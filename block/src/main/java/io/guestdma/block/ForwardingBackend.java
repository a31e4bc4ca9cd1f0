package io.guestdma.block;

import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * A backend that passes every synchronous call to another backend. Extend it to change a few
 * operations of a backend (ignore discards, count writes, fail on cue) without restating the rest;
 * each method's contract is the wrapped backend's. The asynchronous methods keep
 * {@link BlockBackend}'s defaults, which run this object's synchronous methods on the executor,
 * so an override of {@code writev} also changes what {@code writevAsync} does.
 */
public abstract class ForwardingBackend implements BlockBackend {
    private final BlockBackend delegate;

    /**
     * Wraps a backend.
     *
     * @param delegate the backend calls go to
     * @throws NullPointerException if delegate is null
     */
    protected ForwardingBackend(BlockBackend delegate) {
        this.delegate = Objects.requireNonNull(delegate, "delegate");
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
}
