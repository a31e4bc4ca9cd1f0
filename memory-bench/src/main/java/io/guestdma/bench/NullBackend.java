package io.guestdma.bench;

import io.guestdma.block.BlockBackend;
import io.guestdma.memory.IoVector;
import java.nio.ByteBuffer;

/**
 * A disk that stores nothing and reads nothing: every request succeeds at once, leaving buffers as
 * they were. Under a device it leaves exactly the device's own cost (registers, PRD walk, mapping,
 * I/O vector, unmapping) to measure.
 *
 * @param size the capacity the device reports
 */
public record NullBackend(long size) implements BlockBackend {

    /** @return false: writes are accepted (and dropped) */
    @Override
    public boolean isReadOnly() {
        return false;
    }

    /** Does nothing: the vector's memory keeps its contents. */
    @Override
    public void readv(long offset, IoVector iov) {
    }

    /** Does nothing. */
    @Override
    public void writev(long offset, IoVector iov) {
    }

    /** Marks the buffer as filled without changing it. */
    @Override
    public void read(long offset, ByteBuffer dst) {
        dst.position(dst.limit());
    }

    /** Marks the buffer as written. */
    @Override
    public void write(long offset, ByteBuffer src) {
        src.position(src.limit());
    }

    /** Does nothing. */
    @Override
    public void flush() {
    }

    /** Does nothing. */
    @Override
    public void discard(long offset, long length) {
    }

    /** Does nothing. */
    @Override
    public void close() {
    }
}
