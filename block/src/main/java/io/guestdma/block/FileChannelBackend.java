package io.guestdma.block;

import io.guestdma.memory.IoVector;
import io.guestdma.memory.internal.FileChannelBuffers;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A raw image accessed through {@link FileChannel}: the portable default backend, pure JDK.
 *
 * <p>Vectored requests use FileChannel's gathering writes and scattering reads over buffers an
 * {@link IoVector} caches, so guest memory goes to the page cache with no intermediate copy. The
 * buffers are internal ones that carry no memory session (the public
 * {@link IoVector#byteBuffers()} do, and for each such buffer the JDK allocates 40 bytes per
 * vectored call to release its session): with them a request allocates nothing. They bypass FFM's
 * checks, so the backend checks every segment's liveness and thread access before each
 * {@code FileChannel} call, and read-only segments before a read, as {@link NativeBackend} does for
 * its raw iovecs; as there, the memory must stay alive until the request returns. FileChannel has no positional gathering call: the channel's position
 * must be set first, and the call stops at 1024 buffers or on a short transfer. So each request
 * borrows one channel of a small pool (several channels on the same file, each with its own
 * position), positions it, and loops until every byte moved; concurrent requests proceed in
 * parallel on different channels instead of queueing on one position lock.
 *
 * <p>A cost the JDK imposes: {@code fdatasync} is all the durability FileChannel offers through
 * {@link FileChannel#force(boolean) force(false)}, and each vectored request sets the channel's
 * position with an extra {@code lseek}. {@link NativeBackend} avoids both.
 */
public final class FileChannelBackend implements BlockBackend {
    private static final int ZERO_CHUNK = 64 * 1024;
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(ZERO_CHUNK).asReadOnlyBuffer();

    private final ImageExtent extent;
    private final FileChannel[] channels;
    private final BlockingQueue<FileChannel> idle;
    private final ImageLock lock;
    private final AtomicBoolean closed = new AtomicBoolean();

    private FileChannelBackend(ImageExtent extent, FileChannel[] channels, ImageLock lock) {
        this.extent = extent;
        this.channels = channels;
        this.idle = new ArrayBlockingQueue<>(channels.length);
        for (FileChannel c : channels) {
            idle.add(c);
        }
        this.lock = lock;
    }

    /**
     * Opens a raw image with a pool of as many channels as the machine has processors (2 to 8).
     *
     * @param image   the image file (or block device); it must exist
     * @param options how to open it; {@code direct} is not supported here
     * @return the backend
     * @throws NoSuchFileException      if the image does not exist
     * @throws ImageLockedException     if {@code options.lock()} and another user holds a conflicting lock
     * @throws IllegalArgumentException if {@code options.direct()} is set (use {@link NativeBackend})
     * @throws IOException              if the image is a directory or cannot be opened
     */
    public static FileChannelBackend open(Path image, BlockOptions options) throws IOException {
        int pool = Math.clamp(Runtime.getRuntime().availableProcessors(), 2, 8);
        return open(image, options, pool);
    }

    /**
     * Opens a raw image with a pool of {@code channels} channels: at most that many vectored
     * requests run at once.
     *
     * @param image    the image file (or block device); it must exist
     * @param options  how to open it; {@code direct} is not supported here
     * @param channels how many channels to open, at least 1
     * @return the backend
     * @throws NoSuchFileException      if the image does not exist
     * @throws ImageLockedException     if {@code options.lock()} and another user holds a conflicting lock
     * @throws IllegalArgumentException if {@code options.direct()} is set or {@code channels < 1}
     * @throws IOException              if the image is a directory or cannot be opened
     */
    public static FileChannelBackend open(Path image, BlockOptions options, int channels) throws IOException {
        Objects.requireNonNull(image, "image");
        Objects.requireNonNull(options, "options");
        if (options.direct()) {
            throw new IllegalArgumentException("FileChannelBackend cannot do O_DIRECT (the JDK does not align "
                    + "gathering buffers); open " + image + " with NativeBackend for direct I/O");
        }
        if (channels < 1) {
            throw new IllegalArgumentException("need at least one channel, got " + channels);
        }
        requireImageFile(image);
        ImageLock lock = options.lock() ? ImageLock.acquire(image, options.readOnly()) : null;
        OpenOption[] mode = options.readOnly()
                ? new OpenOption[] {StandardOpenOption.READ}
                : new OpenOption[] {StandardOpenOption.READ, StandardOpenOption.WRITE};
        FileChannel[] opened = new FileChannel[channels];
        try {
            for (int i = 0; i < channels; i++) {
                opened[i] = FileChannel.open(image, mode);
            }
            ImageExtent extent = new ImageExtent(image.toString(), opened[0].size(), options.readOnly());
            return new FileChannelBackend(extent, opened, lock);
        } catch (IOException | RuntimeException e) {
            for (FileChannel c : opened) {
                if (c != null) {
                    closeQuietly(c, e);
                }
            }
            if (lock != null) {
                closeQuietly(lock, e);
            }
            throw e;
        }
    }

    static void requireImageFile(Path image) throws IOException {
        if (!Files.exists(image)) {
            throw new NoSuchFileException(image.toString(), null, "disk image does not exist");
        }
        if (Files.isDirectory(image)) {
            throw new IOException(image + " is a directory, not a disk image");
        }
    }

    private static void closeQuietly(AutoCloseable c, Exception primary) {
        try {
            c.close();
        } catch (Exception e) {
            primary.addSuppressed(e);
        }
    }

    @Override
    public long size() {
        return extent.size();
    }

    @Override
    public boolean isReadOnly() {
        return extent.readOnly();
    }

    /** {@return how many channels the pool holds: the most vectored requests that run at once} */
    public int channels() {
        return channels.length;
    }

    /**
     * {@inheritDoc}
     *
     * <p>Read-only segments (TO_DEVICE mappings, ROM) are refused before anything is read.
     *
     * @throws IllegalArgumentException if a segment of {@code iov} is read-only
     * @throws IllegalStateException    if {@code iov}'s memory was released (guest memory closed,
     *                                  a debug-mode unmap); nothing is read into it
     * @throws WrongThreadException     if a segment belongs to a confined arena of another thread
     */
    @Override
    public void readv(long offset, IoVector iov) throws IOException {
        extent.checkReadInto(offset, iov);
        long total = iov.size();
        if (total == 0) {
            return;
        }
        ByteBuffer[] buffers = FileChannelBuffers.toRead(iov);
        int count = FileChannelBuffers.count(iov);
        FileChannel channel = borrow();
        try {
            channel.position(offset);
            int first = 0;
            long done = 0;
            while (done < total) {
                FileChannelBuffers.requireUsable(iov);
                long n = channel.read(buffers, first, count - first);
                if (n < 0) {
                    throw extent.truncated(offset + done);
                }
                done += n;
                first = skipDone(buffers, first, count);
            }
        } finally {
            idle.add(channel);
        }
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalStateException if {@code iov}'s memory was released (guest memory closed, a
     *                               debug-mode unmap); nothing more is written from it
     * @throws WrongThreadException  if a segment belongs to a confined arena of another thread
     */
    @Override
    public void writev(long offset, IoVector iov) throws IOException {
        long total = iov.size();
        extent.checkWrite("write", offset, total);
        if (total == 0) {
            return;
        }
        ByteBuffer[] buffers = FileChannelBuffers.toWrite(iov);
        int count = FileChannelBuffers.count(iov);
        FileChannel channel = borrow();
        try {
            channel.position(offset);
            int first = 0;
            long done = 0;
            while (done < total) {
                FileChannelBuffers.requireUsable(iov);
                long n = channel.write(buffers, first, count - first);
                if (n <= 0) {
                    throw new IOException("write to " + extent.name() + " at offset " + (offset + done)
                            + " made no progress");
                }
                done += n;
                first = skipDone(buffers, first, count);
            }
        } finally {
            idle.add(channel);
        }
    }

    /** {@return the first of {@code buffers[from, count)} with bytes left to transfer, or {@code count}} */
    private static int skipDone(ByteBuffer[] buffers, int from, int count) {
        int first = from;
        while (first < count && !buffers[first].hasRemaining()) {
            first++;
        }
        return first;
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        extent.checkRead(offset, dst.remaining());
        // Positional reads do not touch the position, so any channel serves, without borrowing.
        FileChannel channel = channels[0];
        long at = offset;
        while (dst.hasRemaining()) {
            int n = channel.read(dst, at);
            if (n < 0) {
                throw extent.truncated(at);
            }
            at += n;
        }
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        extent.checkWrite("write", offset, src.remaining());
        writeFully(channels[0], offset, src);
    }

    private void writeFully(FileChannel channel, long offset, ByteBuffer src) throws IOException {
        long at = offset;
        while (src.hasRemaining()) {
            int n = channel.write(src, at);
            if (n <= 0) {
                throw new IOException("write to " + extent.name() + " at offset " + at + " made no progress");
            }
            at += n;
        }
    }

    @Override
    public void flush() throws IOException {
        if (extent.readOnly()) {
            return;
        }
        // fdatasync through any descriptor flushes the file's dirty pages, whoever wrote them.
        channels[0].force(false);
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        extent.checkWrite("discard", offset, length);
        long at = offset;
        long end = offset + length;
        while (at < end) {
            ByteBuffer zeroes = ZEROES.duplicate();
            zeroes.limit((int) Math.min(ZERO_CHUNK, end - at));
            writeFully(channels[0], at, zeroes);
            at += zeroes.limit();
        }
    }

    private FileChannel borrow() throws IOException {
        if (closed.get()) {
            throw new IOException("image " + extent.name() + " is closed");
        }
        try {
            return idle.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted waiting for a channel to " + extent.name());
        }
    }

    @Override
    public void close() throws IOException {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        IOException failure = null;
        for (FileChannel c : channels) {
            try {
                c.close();
            } catch (IOException e) {
                failure = failure == null ? e : failure;
            }
        }
        if (lock != null) {
            try {
                lock.close();
            } catch (IOException e) {
                failure = failure == null ? e : failure;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** {@return the image path and size} */
    @Override
    public String toString() {
        return "FileChannelBackend[" + extent.name() + ", " + extent.size() + " bytes"
                + (extent.readOnly() ? ", read-only" : "") + "]";
    }
}
