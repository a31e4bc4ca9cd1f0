package io.guestdma.block;

import io.guestdma.memory.IoVector;
import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.internal.Posix;
import io.guestdma.memory.posix.PosixException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * A raw image accessed with {@code preadv}/{@code pwritev} through FFM downcalls: the fast path.
 *
 * <p>A vectored request passes the {@link IoVector}'s cached native {@code struct iovec} array
 * ({@link IoVector#nativeIovecs()}) straight to the kernel: one positional system call, no
 * position lock, no buffer objects, nothing allocated (0 B/op in the benchmarks). Short transfers
 * and vectors of more than {@link Posix#IOV_MAX} segments are continued until every byte moved.
 * Errors name the call, the image and the errno ({@code pwritev(disk.img, offset 4096, 65536
 * bytes): ENOSPC (No space left on device)}).
 *
 * <p>With {@link BlockOptions#direct()} the image is opened {@code O_DIRECT}: requests whose
 * memory, offset and length are all 512-byte aligned go straight to the device; the others are
 * bounced through an aligned per-thread buffer, since the kernel rejects misaligned direct I/O.
 *
 * <p>The backend owns its file descriptor. {@link #close()} waits for requests running in other
 * threads before closing it, so a descriptor number is never reused under a running request (which
 * would write guest data into whatever file got the number next).
 */
public final class NativeBackend implements BlockBackend {
    /** The alignment O_DIRECT needs of memory, offsets and lengths (the logical block size). */
    public static final int DIRECT_ALIGNMENT = 512;

    private static final int SCRATCH_BYTES = 256 * 1024;
    private static final MemorySegment ZEROES = Arena.global().allocate(64 * 1024, 4096);
    /** Native staging for heap buffers and misaligned direct I/O, one per thread, never freed. */
    private static final ThreadLocal<MemorySegment> SCRATCH =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(SCRATCH_BYTES, 4096));

    private final ImageExtent extent;
    private final int fd;
    private final boolean direct;
    private final ImageLock lock;
    private final RequestGate gate;

    private NativeBackend(ImageExtent extent, int fd, boolean direct, ImageLock lock) {
        this.extent = extent;
        this.fd = fd;
        this.direct = direct;
        this.lock = lock;
        this.gate = new RequestGate("image " + extent.name());
    }

    /**
     * Opens a raw image.
     *
     * @param image   the image file (or block device); it must exist
     * @param options how to open it
     * @return the backend
     * @throws NoSuchFileException  if the image does not exist
     * @throws ImageLockedException if {@code options.lock()} and another user holds a conflicting lock
     * @throws PosixException       naming the call and errno if the image cannot be opened (for
     *                              example EACCES), or with EINVAL if {@code direct} was asked on a
     *                              file system without O_DIRECT (tmpfs)
     * @throws IOException          if the image is a directory
     */
    public static NativeBackend open(Path image, BlockOptions options) throws IOException {
        Objects.requireNonNull(image, "image");
        Objects.requireNonNull(options, "options");
        FileChannelBackend.requireImageFile(image);
        ImageLock lock = options.lock() ? ImageLock.acquire(image, options.readOnly()) : null;
        int flags = (options.readOnly() ? Posix.O_RDONLY : Posix.O_RDWR) | (options.direct() ? Posix.O_DIRECT : 0);
        int fd;
        try {
            fd = Posix.open(image, flags, 0);
        } catch (PosixException e) {
            if (lock != null) {
                closeQuietly(lock, e);
            }
            if (options.direct() && e.errno() == Errno.EINVAL) {
                PosixException hint = new PosixException("open(" + image + ", O_DIRECT) - the file system does not "
                        + "support direct I/O (tmpfs?); open without BlockOptions.direct", e.errno());
                hint.initCause(e);
                throw hint;
            }
            throw e;
        }
        try {
            long size = Posix.fileSize(fd);
            return new NativeBackend(new ImageExtent(image.toString(), size, options.readOnly()), fd, options.direct(), lock);
        } catch (PosixException e) {
            try {
                Posix.close(fd);
            } catch (PosixException suppressed) {
                e.addSuppressed(suppressed);
            }
            if (lock != null) {
                closeQuietly(lock, e);
            }
            throw e;
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

    /** {@return whether the image was opened with {@code O_DIRECT}} */
    public boolean isDirect() {
        return direct;
    }

    /**
     * {@inheritDoc}
     *
     * <p>The kernel writes through raw addresses that bypass FFM's read-only check, so read-only
     * segments (TO_DEVICE mappings, ROM) are refused here, before anything is read, as
     * {@code FileChannel} refuses read-only buffers.
     *
     * @throws IllegalArgumentException if a segment of {@code iov} is read-only
     */
    @Override
    public void readv(long offset, IoVector iov) throws IOException {
        extent.checkReadInto(offset, iov);
        long total = iov.size();
        if (total == 0) {
            return;
        }
        enter();
        try {
            if (direct && !directCapable(offset, iov)) {
                bounced(false, offset, iov, total);
            } else {
                vectored(false, offset, iov, total);
            }
        } finally {
            exit();
        }
    }

    @Override
    public void writev(long offset, IoVector iov) throws IOException {
        long total = iov.size();
        extent.checkWrite("write", offset, total);
        if (total == 0) {
            return;
        }
        enter();
        try {
            if (direct && !directCapable(offset, iov)) {
                bounced(true, offset, iov, total);
            } else {
                vectored(true, offset, iov, total);
            }
        } finally {
            exit();
        }
    }

    /**
     * The common case in one system call and no loop: a vector of at most IOV_MAX entries that the
     * kernel moves completely. Anything else (a short transfer, a longer vector) is finished by
     * {@link #finishVectored}.
     */
    private void vectored(boolean write, long offset, IoVector iov, long total) throws IOException {
        MemorySegment iovecs = iov.nativeIovecs();
        int count = iov.nativeIovecCount();
        long moved = 0;
        if (count <= Posix.IOV_MAX) {
            try {
                moved = write ? Posix.pwritev(fd, iovecs, count, offset) : Posix.preadv(fd, iovecs, count, offset);
            } catch (PosixException e) {
                throw named(write ? "pwritev" : "preadv", offset, total, e);
            }
            if (moved == total) {
                return;
            }
            if (moved == 0) {
                throw write ? noProgress(offset) : extent.truncated(offset);
            }
        }
        finishVectored(write, offset, iov, iovecs, count, total, moved);
    }

    /**
     * Continues a request after its first {@code done} bytes: one preadv/pwritev per batch of up to
     * IOV_MAX entries; after a short transfer the partly done segment is finished with pread/pwrite
     * on its tail, then vectored calls resume. The cached iovec array itself is never modified, so
     * it stays valid for the next request.
     */
    private void finishVectored(boolean write, long offset, IoVector iov, MemorySegment iovecs, int count,
                                long total, long done) throws IOException {
        int first = 0;
        long intoFirst = 0;
        long advance = done;
        try {
            while (true) {
                while (advance > 0) {
                    long length = iov.length(first) - intoFirst;
                    if (advance >= length) {
                        advance -= length;
                        first++;
                        intoFirst = 0;
                    } else {
                        intoFirst += advance;
                        advance = 0;
                    }
                }
                if (done == total) {
                    return;
                }
                long n;
                if (intoFirst == 0) {
                    int batch = Math.min(count - first, Posix.IOV_MAX);
                    MemorySegment entries = first == 0 ? iovecs : iovecs.asSlice(first * IoVector.IOVEC.byteSize());
                    n = write ? Posix.pwritev(fd, entries, batch, offset + done)
                            : Posix.preadv(fd, entries, batch, offset + done);
                } else {
                    MemorySegment rest = iov.segment(first).asSlice(intoFirst);
                    n = write ? Posix.pwrite(fd, rest, offset + done) : Posix.pread(fd, rest, offset + done);
                }
                if (n == 0) {
                    throw write ? noProgress(offset + done) : extent.truncated(offset + done);
                }
                done += n;
                advance = n;
            }
        } catch (PosixException e) {
            throw named(write ? "pwritev" : "preadv", offset, total, e);
        }
    }

    private boolean directCapable(long offset, IoVector iov) {
        if ((offset | iov.size()) % DIRECT_ALIGNMENT != 0) {
            return false;
        }
        for (int i = 0; i < iov.count(); i++) {
            if (!iov.isNative(i) || (iov.address(i) | iov.length(i)) % DIRECT_ALIGNMENT != 0) {
                return false;
            }
        }
        return true;
    }

    private void bounced(boolean write, long offset, IoVector iov, long total) throws IOException {
        if ((offset | total) % DIRECT_ALIGNMENT != 0) {
            throw new IOException("O_DIRECT image " + extent.name() + " needs offsets and lengths aligned to "
                    + DIRECT_ALIGNMENT + " bytes; got " + total + " bytes at offset " + offset);
        }
        MemorySegment scratch = SCRATCH.get();
        long done = 0;
        while (done < total) {
            int n = (int) Math.min(SCRATCH_BYTES, total - done);
            MemorySegment piece = scratch.asSlice(0, n);
            if (write) {
                iov.copyTo(done, piece);
                writeFully(offset + done, piece);
            } else {
                readFully(offset + done, piece);
                iov.copyFrom(done, piece);
            }
            done += n;
        }
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalArgumentException if {@code dst} is read-only, as {@code FileChannel.read} does
     */
    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("read from " + extent.name() + " into a read-only buffer");
        }
        int length = dst.remaining();
        extent.checkRead(offset, length);
        if (length == 0) {
            return;
        }
        enter();
        try {
            MemorySegment target = MemorySegment.ofBuffer(dst);
            if (target.isNative() && (!direct || aligned(target, offset))) {
                readFully(offset, target);
            } else {
                requireDirectOffsets(offset, length);
                MemorySegment scratch = SCRATCH.get();
                for (long done = 0; done < length; ) {
                    int n = (int) Math.min(SCRATCH_BYTES, length - done);
                    readFully(offset + done, scratch.asSlice(0, n));
                    MemorySegment.copy(scratch, 0, target, done, n);
                    done += n;
                }
            }
            dst.position(dst.limit());
        } finally {
            exit();
        }
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        int length = src.remaining();
        extent.checkWrite("write", offset, length);
        if (length == 0) {
            return;
        }
        enter();
        try {
            MemorySegment source = MemorySegment.ofBuffer(src);
            if (source.isNative() && (!direct || aligned(source, offset))) {
                writeFully(offset, source);
            } else {
                requireDirectOffsets(offset, length);
                MemorySegment scratch = SCRATCH.get();
                for (long done = 0; done < length; ) {
                    int n = (int) Math.min(SCRATCH_BYTES, length - done);
                    MemorySegment.copy(source, done, scratch, 0, n);
                    writeFully(offset + done, scratch.asSlice(0, n));
                    done += n;
                }
            }
            src.position(src.limit());
        } finally {
            exit();
        }
    }

    private static boolean aligned(MemorySegment s, long offset) {
        return ((s.address() | s.byteSize() | offset) % DIRECT_ALIGNMENT) == 0;
    }

    private void requireDirectOffsets(long offset, long length) throws IOException {
        if (direct && ((offset | length) % DIRECT_ALIGNMENT) != 0) {
            throw new IOException("O_DIRECT image " + extent.name() + " needs offsets and lengths aligned to "
                    + DIRECT_ALIGNMENT + " bytes; got " + length + " bytes at offset " + offset);
        }
    }

    private void readFully(long offset, MemorySegment dst) throws IOException {
        long done = 0;
        long total = dst.byteSize();
        try {
            while (done < total) {
                long n = Posix.pread(fd, done == 0 ? dst : dst.asSlice(done), offset + done);
                if (n == 0) {
                    throw extent.truncated(offset + done);
                }
                done += n;
            }
        } catch (PosixException e) {
            throw named("pread", offset, total, e);
        }
    }

    private void writeFully(long offset, MemorySegment src) throws IOException {
        long done = 0;
        long total = src.byteSize();
        try {
            while (done < total) {
                long n = Posix.pwrite(fd, done == 0 ? src : src.asSlice(done), offset + done);
                if (n == 0) {
                    throw noProgress(offset + done);
                }
                done += n;
            }
        } catch (PosixException e) {
            throw named("pwrite", offset, total, e);
        }
    }

    @Override
    public void flush() throws IOException {
        if (extent.readOnly()) {
            return;
        }
        enter();
        try {
            Posix.fdatasync(fd);
        } catch (PosixException e) {
            throw new PosixException("fdatasync(" + extent.name() + ")", e.errno());
        } finally {
            exit();
        }
    }

    /**
     * Punches a hole ({@code fallocate(PUNCH_HOLE | KEEP_SIZE)}), so the range reads as zeroes and
     * its blocks return to the file system; where the file system cannot punch holes, writes zeroes.
     */
    @Override
    public void discard(long offset, long length) throws IOException {
        extent.checkWrite("discard", offset, length);
        if (length == 0) {
            return;
        }
        enter();
        try {
            try {
                Posix.fallocate(fd, Posix.FALLOC_FL_PUNCH_HOLE | Posix.FALLOC_FL_KEEP_SIZE, offset, length);
            } catch (PosixException e) {
                if (e.errno() != Errno.EOPNOTSUPP && e.errno() != Errno.ENOSYS) {
                    throw new PosixException("fallocate(" + extent.name() + ", PUNCH_HOLE, offset " + offset
                            + ", " + length + " bytes)", e.errno());
                }
                for (long at = offset; at < offset + length; ) {
                    long n = Math.min(ZEROES.byteSize(), offset + length - at);
                    writeFully(at, ZEROES.asSlice(0, n));
                    at += n;
                }
            }
        } finally {
            exit();
        }
    }

    private IOException noProgress(long at) {
        return new IOException("write to " + extent.name() + " at offset " + at + " made no progress");
    }

    private PosixException named(String call, long offset, long total, PosixException e) {
        PosixException named = new PosixException(call + "(" + extent.name() + ", offset " + offset + ", "
                + total + " bytes)", e.errno());
        named.initCause(e);
        return named;
    }

    private void enter() throws IOException {
        gate.enter();
    }

    private void exit() {
        gate.exit();
    }

    /**
     * Refuses new requests, waits for running ones, then closes the descriptor and the lock.
     *
     * @throws IOException if {@code close(2)} fails (EIO: earlier writes may not have reached the disk)
     */
    @Override
    public void close() throws IOException {
        if (!gate.close(Long.MAX_VALUE)) {
            return;
        }
        try {
            Posix.close(fd);
        } catch (PosixException e) {
            throw new PosixException("close(" + extent.name() + ")", e.errno());
        } finally {
            if (lock != null) {
                lock.close();
            }
        }
    }

    /** {@return the image path and size} */
    @Override
    public String toString() {
        return "NativeBackend[" + extent.name() + ", " + extent.size() + " bytes"
                + (extent.readOnly() ? ", read-only" : "") + (direct ? ", O_DIRECT" : "") + "]";
    }
}
