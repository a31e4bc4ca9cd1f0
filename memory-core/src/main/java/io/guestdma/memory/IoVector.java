package io.guestdma.memory;

import io.guestdma.memory.internal.FileChannelBuffers;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Objects;

/**
 * An I/O vector (QEMU's {@code QEMUIOVector}): an ordered, growable list of memory segments that
 * together form one logical byte range, the unit the block layer reads into and writes from.
 *
 * <p>An I/O vector does not own its segments: it holds references to slices of guest memory (or
 * anything else) that somebody mapped, and it is reused request after request. {@link #reset()}
 * empties it without releasing capacity, so a device that keeps one vector per request slot stops
 * allocating once the vector has grown to its working size.
 *
 * <p>Two views are built for the I/O layer and cached, so that presenting the same shape again
 * allocates nothing:
 * <ul>
 *   <li>{@link #byteBuffers()}: a {@code ByteBuffer[]} for {@code FileChannel}'s gathering and
 *       scattering calls. A buffer is rebuilt only when its segment changed (another address, size,
 *       scope or access mode); otherwise the cached buffer is rewound. Segments larger than
 *       {@value #MAX_BUFFER_BYTES} bytes are presented as several buffers, since a
 *       {@code ByteBuffer} cannot exceed 2 GiB.</li>
 *   <li>{@link #nativeIovecs()}: a native {@code struct iovec[]} for {@code preadv}/{@code pwritev}.
 *       It is rewritten only after the vector changed, in memory owned by the vector.</li>
 * </ul>
 * The block layer's FileChannel backend uses a third, internal view
 * ({@code io.guestdma.memory.internal.FileChannelBuffers}): buffers that carry no memory session,
 * for which the JDK's vectored calls allocate nothing (for each {@link #byteBuffers()} buffer they
 * allocate 40 bytes per call to release its session). Like the native view they bypass FFM's
 * checks, so they are never handed out, and the backend checks liveness before each call.
 *
 * <p><b>Lifetime.</b> The native view holds raw addresses: the segments' memory must stay alive
 * (mappings not unmapped, arenas not closed) until the system call that uses it has returned.
 *
 * <p><b>Thread safety.</b> Not thread-safe: an I/O vector belongs to one request at a time. Hand it
 * to another thread only with a happens-before edge (an executor submission, a future).
 */
public final class IoVector {
    /** The largest {@code ByteBuffer} that {@link #byteBuffers()} builds from one segment. */
    public static final int MAX_BUFFER_BYTES = 1 << 30;

    /** {@code struct iovec { void *iov_base; size_t iov_len; }} on LP64 Linux. */
    public static final StructLayout IOVEC = MemoryLayout.structLayout(
            ValueLayout.ADDRESS.withName("iov_base"), ValueLayout.JAVA_LONG.withName("iov_len"));

    private static final long IOVEC_BYTES = IOVEC.byteSize();

    /**
     * Piece i is bytes {@code [pieceAt[i], pieceAt[i] + pieceLength[i])} of {@code segments[i]}: the segment as
     * added, or for a window ({@link #addWindow}) the larger memory it was cut from, so that
     * mapping a piece of guest RAM allocates no slice. {@link #segment} cuts the slice on demand.
     */
    private MemorySegment[] segments;
    private long[] pieceAt;
    private long[] pieceLength;
    private int count;
    private long size;
    /** Bumped on every change so the native view knows it is stale. */
    private long version;

    private ByteBuffer[] buffers = new ByteBuffer[0];
    /** The segment (or the sub-slice of a large one) each cached buffer was built from. */
    private MemorySegment[] bufferSources = new MemorySegment[0];
    private long[] bufferOffsets = new long[0];
    private long[] bufferLengths = new long[0];
    private int bufferCount;

    /** The internal FileChannel view's buffers, over raw addresses and so keyed by them alone. */
    private ByteBuffer[] channelBuffers = new ByteBuffer[0];
    private long[] channelAddresses = new long[0];
    private int channelBufferCount;

    private MemorySegment iovecs = MemorySegment.NULL;
    private long iovecsVersion = -1;

    static {
        FileChannelBuffers.register(new FileChannelBuffers.Access() {
            @Override
            public ByteBuffer[] buffers(IoVector iov, boolean intoVector) {
                return iov.channelBuffers(intoVector);
            }

            @Override
            public int count(IoVector iov) {
                return iov.channelBufferCount;
            }

            @Override
            public void requireUsable(IoVector iov) {
                iov.requireUsableByCurrentThread();
            }
        });
    }

    /** Creates an empty vector with room for 8 segments. */
    public IoVector() {
        this(8);
    }

    /**
     * Creates an empty vector.
     *
     * @param initialCapacity how many segments to make room for before growing
     * @throws IllegalArgumentException if {@code initialCapacity} is negative
     */
    public IoVector(int initialCapacity) {
        if (initialCapacity < 0) {
            throw new IllegalArgumentException("initialCapacity must not be negative: " + initialCapacity);
        }
        segments = new MemorySegment[Math.max(initialCapacity, 1)];
        pieceAt = new long[segments.length];
        pieceLength = new long[segments.length];
    }

    /**
     * Appends a segment. Empty segments are ignored, so {@link #count()} counts only segments that
     * carry bytes (a zero-length iovec means nothing to the kernel either).
     *
     * @param segment the memory to append, native or heap; read-only segments may be added but
     *                cannot be the target of {@link #copyFrom} or {@link #fill}
     * @return this vector
     * @throws NullPointerException     if {@code segment} is null
     * @throws IllegalArgumentException if the total size would overflow a {@code long}
     */
    public IoVector add(MemorySegment segment) {
        Objects.requireNonNull(segment, "segment");
        return append(segment, 0, segment.byteSize());
    }

    /**
     * Appends bytes {@code [offset, offset + bytes)} of {@code from} without cutting a slice for
     * them: {@link #segment} cuts it if somebody asks, the copies and the native view do not.
     * For the DMA mappers, which hand out pieces of a RAM backing packet after packet.
     *
     * @throws IndexOutOfBoundsException if the range is outside {@code from}
     */
    IoVector addWindow(MemorySegment from, long offset, long bytes) {
        Objects.checkFromIndexSize(offset, bytes, from.byteSize());
        return append(from, offset, bytes);
    }

    private IoVector append(MemorySegment from, long offset, long bytes) {
        if (bytes == 0) {
            return this;
        }
        if (size + bytes < 0) {
            throw new IllegalArgumentException("I/O vector size would overflow");
        }
        if (count == segments.length) {
            segments = Arrays.copyOf(segments, segments.length * 2);
            pieceAt = Arrays.copyOf(pieceAt, segments.length);
            pieceLength = Arrays.copyOf(pieceLength, segments.length);
        }
        segments[count] = from;
        pieceAt[count] = offset;
        pieceLength[count] = bytes;
        count++;
        size += bytes;
        version++;
        return this;
    }

    /**
     * Appends every segment of {@code other} (the same segments, not copies of the bytes).
     *
     * @param other the vector whose segments to append; may be this vector, which doubles it
     * @return this vector
     * @throws NullPointerException if {@code other} is null
     */
    public IoVector addAll(IoVector other) {
        Objects.requireNonNull(other, "other");
        int n = other.count;
        for (int i = 0; i < n; i++) {
            append(other.segments[i], other.pieceAt[i], other.pieceLength[i]);
        }
        return this;
    }

    /**
     * Appends the byte range {@code [offset, offset + length)} of {@code source} as slices of its
     * segments ({@code qemu_iovec_concat}): no bytes are copied.
     *
     * @param source the vector to take segments from; must not be this vector
     * @param offset where in {@code source} the range starts
     * @param length how many bytes to append
     * @return this vector
     * @throws NullPointerException      if {@code source} is null
     * @throws IllegalArgumentException  if {@code source} is this vector
     * @throws IndexOutOfBoundsException if the range is not within {@code source}
     */
    public IoVector concat(IoVector source, long offset, long length) {
        Objects.requireNonNull(source, "source");
        if (source == this) {
            throw new IllegalArgumentException("cannot concat a vector onto itself; use addAll or a copy");
        }
        Objects.checkFromIndexSize(offset, length, source.size);
        int i = 0;
        long skip = offset;
        while (length > 0) {
            long bytes = source.pieceLength[i];
            if (skip >= bytes) {
                skip -= bytes;
                i++;
                continue;
            }
            long take = Math.min(bytes - skip, length);
            append(source.segments[i], source.pieceAt[i] + skip, take);
            i++;
            length -= take;
            skip = 0;
        }
        return this;
    }

    /**
     * Returns a new vector over the byte range {@code [offset, offset + length)} of this one, as
     * slices of the same memory.
     *
     * @param offset where the range starts
     * @param length how many bytes
     * @return a new vector sharing this vector's memory
     * @throws IndexOutOfBoundsException if the range is not within this vector
     */
    public IoVector slice(long offset, long length) {
        return new IoVector(Math.max(count, 1)).concat(this, offset, length);
    }

    /** {@return how many segments the vector holds} */
    public int count() {
        return count;
    }

    /** {@return the total number of bytes over all segments} */
    public long size() {
        return size;
    }

    /** {@return whether the vector holds no bytes} */
    public boolean isEmpty() {
        return count == 0;
    }

    /**
     * {@return the segment at {@code index}: as added, or a slice of it after a discard trimmed it
     * or when a DMA mapper added a piece of a larger memory (cut on the first call, then kept)}
     *
     * @param index which segment, from 0
     * @throws IndexOutOfBoundsException if {@code index} is not in {@code [0, count())}
     */
    public MemorySegment segment(int index) {
        Objects.checkIndex(index, count);
        MemorySegment s = segments[index];
        if (pieceAt[index] != 0 || pieceLength[index] != s.byteSize()) {
            s = s.asSlice(pieceAt[index], pieceLength[index]);
            segments[index] = s; // cut once; the piece is the same bytes
            pieceAt[index] = 0;
        }
        return s;
    }

    /**
     * {@return the bytes of entry {@code index}}
     *
     * @param index which entry, from 0
     * @throws IndexOutOfBoundsException if {@code index} is not in {@code [0, count())}
     */
    public long length(int index) {
        Objects.checkIndex(index, count);
        return pieceLength[index];
    }

    /**
     * {@return the address of entry {@code index}'s first byte, as {@link MemorySegment#address()}
     * of its segment gives it (for a heap segment, an offset in its array)}, without cutting the
     * slice {@link #segment} would
     *
     * @param index which entry, from 0
     * @throws IndexOutOfBoundsException if {@code index} is not in {@code [0, count())}
     */
    public long address(int index) {
        Objects.checkIndex(index, count);
        return segments[index].address() + pieceAt[index];
    }

    /**
     * {@return whether entry {@code index}'s memory is read-only}
     *
     * @param index which entry, from 0
     * @throws IndexOutOfBoundsException if {@code index} is not in {@code [0, count())}
     */
    public boolean isReadOnly(int index) {
        Objects.checkIndex(index, count);
        return segments[index].isReadOnly();
    }

    /**
     * {@return whether entry {@code index} is native memory (not a heap array)}
     *
     * @param index which entry, from 0
     * @throws IndexOutOfBoundsException if {@code index} is not in {@code [0, count())}
     */
    public boolean isNative(int index) {
        Objects.checkIndex(index, count);
        return segments[index].isNative();
    }

    /**
     * {@return whether entry {@code index}'s memory is still alive (its scope not closed)}
     *
     * @param index which entry, from 0
     * @throws IndexOutOfBoundsException if {@code index} is not in {@code [0, count())}
     */
    public boolean isAlive(int index) {
        Objects.checkIndex(index, count);
        return segments[index].scope().isAlive();
    }

    /**
     * {@return whether {@code thread} may access entry {@code index}'s memory: always for shared,
     * global and automatic memory, only its owner for memory of a confined arena} Asynchronous I/O
     * whose completion runs on another thread needs memory every thread may access.
     *
     * @param index  which entry, from 0
     * @param thread the thread that would access it
     * @throws IndexOutOfBoundsException if {@code index} is not in {@code [0, count())}
     * @throws NullPointerException      if {@code thread} is null
     */
    public boolean isAccessibleBy(int index, Thread thread) {
        Objects.checkIndex(index, count);
        return segments[index].isAccessibleBy(thread);
    }

    /**
     * Empties the vector, keeping its capacity and cached views for reuse. References to the
     * dropped segments are cleared so that a reset vector does not keep guest memory reachable.
     */
    public void reset() {
        Arrays.fill(segments, 0, count, null);
        count = 0;
        size = 0;
        version++;
    }

    /**
     * Copies bytes out of the vector into a contiguous segment (flatten, {@code qemu_iovec_to_buf}).
     *
     * @param offset where in the vector to start reading
     * @param dst    where to copy to; at most {@code dst.byteSize()} bytes are copied
     * @return the number of bytes copied: {@code min(dst.byteSize(), size() - offset)}
     * @throws IndexOutOfBoundsException if {@code offset} is negative or beyond {@code size()}
     * @throws IllegalStateException     if a segment's memory is no longer alive
     */
    public long copyTo(long offset, MemorySegment dst) {
        Objects.checkIndex(offset, size + 1);
        long total = Math.min(dst.byteSize(), size - offset);
        copyTo(offset, dst, 0, total);
        return total;
    }

    /**
     * Copies {@code bytes} bytes out of the vector into {@code dst} at {@code dstOffset}, without
     * slicing either side (nothing is allocated).
     *
     * @param offset    where in the vector to start reading
     * @param dst       where to copy to
     * @param dstOffset where in {@code dst}
     * @param bytes     how many; the vector and {@code dst} must both have them
     * @throws IndexOutOfBoundsException if a range is outside the vector or {@code dst}
     * @throws IllegalStateException     if a segment's memory is no longer alive
     */
    public void copyTo(long offset, MemorySegment dst, long dstOffset, long bytes) {
        Objects.checkFromIndexSize(offset, bytes, size);
        Objects.checkFromIndexSize(dstOffset, bytes, dst.byteSize());
        copy(offset, dst, dstOffset, bytes, false);
    }

    /**
     * Copies {@code bytes} bytes of {@code src} from {@code srcOffset} into the vector, without
     * slicing either side (nothing is allocated).
     *
     * @param offset    where in the vector to start writing
     * @param src       the bytes to copy
     * @param srcOffset where in {@code src}
     * @param bytes     how many; the vector and {@code src} must both have them
     * @throws IndexOutOfBoundsException     if a range is outside the vector or {@code src}
     * @throws UnsupportedOperationException if a segment that would be written is read-only
     *                                       (nothing is written then)
     * @throws IllegalStateException         if a segment's memory is no longer alive
     */
    public void copyFrom(long offset, MemorySegment src, long srcOffset, long bytes) {
        Objects.checkFromIndexSize(offset, bytes, size);
        Objects.checkFromIndexSize(srcOffset, bytes, src.byteSize());
        requireWritable(offset, bytes);
        copy(offset, src, srcOffset, bytes, true);
    }

    /**
     * Copies between the vector's range from {@code offset} and {@code other}'s from
     * {@code otherOffset}, into the vector or out of it. A loop rather than {@link #walk}'s
     * lambda, which would capture the arguments and be allocated per call.
     */
    private void copy(long offset, MemorySegment other, long otherOffset, long bytes, boolean intoVector) {
        long done = 0;
        long skip = offset;
        for (int i = 0; i < count && done < bytes; i++) {
            long pieceBytes = pieceLength[i];
            if (skip >= pieceBytes) {
                skip -= pieceBytes;
                continue;
            }
            long n = Math.min(pieceBytes - skip, bytes - done);
            if (intoVector) {
                MemorySegment.copy(other, otherOffset + done, segments[i], pieceAt[i] + skip, n);
            } else {
                MemorySegment.copy(segments[i], pieceAt[i] + skip, other, otherOffset + done, n);
            }
            done += n;
            skip = 0;
        }
    }

    /**
     * Copies bytes out of the vector into an array.
     *
     * @param offset   where in the vector to start reading
     * @param dst      the array to fill
     * @param dstIndex where in {@code dst} to start
     * @param length   the most bytes to copy
     * @return the number of bytes copied: {@code min(length, size() - offset)}
     * @throws IndexOutOfBoundsException if {@code offset} is outside the vector or the array range
     *                                   is outside {@code dst}
     */
    public long copyTo(long offset, byte[] dst, int dstIndex, int length) {
        Objects.checkFromIndexSize(dstIndex, length, dst.length);
        return copyTo(offset, MemorySegment.ofArray(dst).asSlice(dstIndex, length));
    }

    /**
     * Copies bytes from a contiguous segment into the vector (unflatten, {@code qemu_iovec_from_buf}).
     *
     * @param offset where in the vector to start writing
     * @param src    the bytes to copy; at most {@code src.byteSize()} are copied
     * @return the number of bytes copied: {@code min(src.byteSize(), size() - offset)}
     * @throws IndexOutOfBoundsException     if {@code offset} is negative or beyond {@code size()}
     * @throws UnsupportedOperationException if a segment that would be written is read-only
     * @throws IllegalStateException         if a segment's memory is no longer alive
     */
    public long copyFrom(long offset, MemorySegment src) {
        Objects.checkIndex(offset, size + 1);
        long total = Math.min(src.byteSize(), size - offset);
        copyFrom(offset, src, 0, total);
        return total;
    }

    /**
     * Copies bytes from an array into the vector.
     *
     * @param offset   where in the vector to start writing
     * @param src      the array to copy from
     * @param srcIndex where in {@code src} to start
     * @param length   the most bytes to copy
     * @return the number of bytes copied: {@code min(length, size() - offset)}
     * @throws IndexOutOfBoundsException     if {@code offset} or the array range is out of bounds
     * @throws UnsupportedOperationException if a segment that would be written is read-only
     */
    public long copyFrom(long offset, byte[] src, int srcIndex, int length) {
        Objects.checkFromIndexSize(srcIndex, length, src.length);
        return copyFrom(offset, MemorySegment.ofArray(src).asSlice(srcIndex, length));
    }

    /**
     * {@return a new array holding all bytes of the vector in order}
     *
     * @throws IllegalStateException if the vector holds more than {@code Integer.MAX_VALUE - 8} bytes
     */
    public byte[] toByteArray() {
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("I/O vector of " + size + " bytes does not fit in an array");
        }
        byte[] bytes = new byte[(int) size];
        copyTo(0, MemorySegment.ofArray(bytes));
        return bytes;
    }

    /**
     * Sets bytes of the vector to one value ({@code qemu_iovec_memset}).
     *
     * @param offset where in the vector to start
     * @param value  the byte to store
     * @param length the most bytes to set
     * @return the number of bytes set: {@code min(length, size() - offset)}
     * @throws IndexOutOfBoundsException     if {@code offset} is negative or beyond {@code size()},
     *                                       or {@code length} is negative
     * @throws UnsupportedOperationException if a segment that would be written is read-only
     */
    public long fill(long offset, byte value, long length) {
        Objects.checkIndex(offset, size + 1);
        if (length < 0) {
            throw new IndexOutOfBoundsException("negative length " + length);
        }
        long total = Math.min(length, size - offset);
        requireWritable(offset, total);
        return walk(offset, total, (i, s, at, done, n) -> s.asSlice(at, n).fill(value));
    }

    /** Checks the whole range before writing any of it, so a refused write changes nothing. */
    private void requireWritable(long offset, long total) {
        walk(offset, total, (i, s, at, done, n) -> {
            if (s.isReadOnly()) {
                throw new UnsupportedOperationException("segment " + i + " of the I/O vector is read-only"
                        + " (a TO_DEVICE mapping?); nothing was written");
            }
        });
    }

    /** What {@link #walk} does with each piece of a byte range; segmentOffset is into {@code segments[index]}. */
    @FunctionalInterface
    private interface PieceAction {
        void apply(int index, MemorySegment segment, long segmentOffset, long rangeOffset, long length);
    }

    /** Visits {@code [offset, offset + total)} segment piece by segment piece; returns {@code total}. */
    private long walk(long offset, long total, PieceAction action) {
        long done = 0;
        long skip = offset;
        for (int i = 0; i < count && done < total; i++) {
            long bytes = pieceLength[i];
            if (skip >= bytes) {
                skip -= bytes;
                continue;
            }
            long n = Math.min(bytes - skip, total - done);
            action.apply(i, segments[i], pieceAt[i] + skip, done, n);
            done += n;
            skip = 0;
        }
        return done;
    }

    /**
     * Drops bytes from the front of the vector ({@code qemu_iovec_discard_front}): whole segments
     * are removed and the first remaining one is replaced by its tail slice.
     *
     * @param bytes how many bytes to drop
     * @return how many were dropped: {@code min(bytes, size())}
     * @throws IllegalArgumentException if {@code bytes} is negative
     */
    public long discardFront(long bytes) {
        requireNonNegative(bytes);
        long target = Math.min(bytes, size);
        long left = target;
        int drop = 0;
        while (left > 0 && pieceLength[drop] <= left) {
            left -= pieceLength[drop];
            drop++;
        }
        if (drop > 0) {
            System.arraycopy(segments, drop, segments, 0, count - drop);
            System.arraycopy(pieceAt, drop, pieceAt, 0, count - drop);
            System.arraycopy(pieceLength, drop, pieceLength, 0, count - drop);
            Arrays.fill(segments, count - drop, count, null);
            count -= drop;
        }
        if (left > 0) {
            pieceAt[0] += left;
            pieceLength[0] -= left;
        }
        size -= target;
        version++;
        return target;
    }

    /**
     * Drops bytes from the back of the vector ({@code qemu_iovec_discard_back}).
     *
     * @param bytes how many bytes to drop
     * @return how many were dropped: {@code min(bytes, size())}
     * @throws IllegalArgumentException if {@code bytes} is negative
     */
    public long discardBack(long bytes) {
        requireNonNegative(bytes);
        long target = Math.min(bytes, size);
        long left = target;
        while (left > 0) {
            long n = pieceLength[count - 1];
            if (n <= left) {
                segments[--count] = null;
                left -= n;
            } else {
                pieceLength[count - 1] = n - left;
                left = 0;
            }
        }
        size -= target;
        version++;
        return target;
    }

    /**
     * Compares the bytes of two vectors ({@code qemu_iovec_compare}), regardless of how each is cut
     * into segments.
     *
     * @param other the vector to compare with
     * @return the offset of the first differing byte, or {@code -1} if both hold the same bytes;
     *         when one is a prefix of the other, the length of the shorter one
     * @throws NullPointerException if {@code other} is null
     */
    public long compare(IoVector other) {
        Objects.requireNonNull(other, "other");
        long common = Math.min(size, other.size);
        int ia = 0;
        int ib = 0;
        long offA = 0;
        long offB = 0;
        long pos = 0;
        while (pos < common) {
            MemorySegment a = segments[ia];
            MemorySegment b = other.segments[ib];
            long n = Math.min(pieceLength[ia] - offA, other.pieceLength[ib] - offB);
            long fromA = pieceAt[ia] + offA;
            long fromB = other.pieceAt[ib] + offB;
            long mismatch = MemorySegment.mismatch(a, fromA, fromA + n, b, fromB, fromB + n);
            if (mismatch >= 0) {
                return pos + mismatch;
            }
            pos += n;
            offA += n;
            offB += n;
            if (offA == pieceLength[ia]) {
                ia++;
                offA = 0;
            }
            if (offB == other.pieceLength[ib]) {
                ib++;
                offB = 0;
            }
        }
        return size == other.size ? -1 : common;
    }

    /** {@return whether every byte of the vector is zero (true for an empty vector)} */
    public boolean isZero() {
        return isZero(0, size);
    }

    /**
     * Tells whether a byte range of the vector is all zero ({@code qemu_iovec_is_zero}), the test a
     * block layer uses to turn a write of zeroes into a discard.
     *
     * @param offset where the range starts
     * @param length how many bytes
     * @return whether every byte in the range is zero
     * @throws IndexOutOfBoundsException if the range is not within the vector
     */
    public boolean isZero(long offset, long length) {
        Objects.checkFromIndexSize(offset, length, size);
        long skip = offset;
        for (int i = 0; i < count && length > 0; i++) {
            long bytes = pieceLength[i];
            if (skip >= bytes) {
                skip -= bytes;
                continue;
            }
            long n = Math.min(bytes - skip, length);
            if (!allZero(segments[i], pieceAt[i] + skip, n)) {
                return false;
            }
            length -= n;
            skip = 0;
        }
        return true;
    }

    private static boolean allZero(MemorySegment s, long from, long n) {
        long i = 0;
        for (; i + 8 <= n; i += 8) {
            if (s.get(ValueLayout.JAVA_LONG_UNALIGNED, from + i) != 0) {
                return false;
            }
        }
        for (; i < n; i++) {
            if (s.get(ValueLayout.JAVA_BYTE, from + i) != 0) {
                return false;
            }
        }
        return true;
    }

    /**
     * Presents the vector as buffers for {@code FileChannel}'s gathering and scattering calls. Use
     * entries {@code [0, byteBufferCount())} of the returned array; entries beyond are stale. Each
     * buffer is positioned at 0 with its limit at its segment's size. Buffers from read-only
     * segments are read-only.
     *
     * <p>The buffers are scoped to their segments' memory, as {@link MemorySegment#asByteBuffer()}
     * makes them: using one after its memory was released throws {@link IllegalStateException}.
     * For that, the JDK's gathering and scattering calls acquire and release each buffer's memory
     * session, allocating 40 bytes per buffer per call.
     *
     * <p>The array and the buffers are cached: calling again after {@link #reset()} and adding
     * segments equal to the previous ones (same address, size, scope and access mode, as a device
     * re-mapping the same guest pages produces) allocates nothing. The result is valid until this
     * vector is next changed.
     *
     * @return the cached buffer array, possibly longer than {@link #byteBufferCount()}
     * @throws IllegalStateException if a segment's memory is no longer alive
     */
    public ByteBuffer[] byteBuffers() {
        int needed = 0;
        for (int i = 0; i < count; i++) {
            needed += bufferPieces(pieceLength[i]);
        }
        if (needed > buffers.length) {
            int capacity = Math.max(needed, buffers.length * 2);
            buffers = Arrays.copyOf(buffers, capacity);
            bufferSources = Arrays.copyOf(bufferSources, capacity);
            bufferOffsets = Arrays.copyOf(bufferOffsets, capacity);
            bufferLengths = Arrays.copyOf(bufferLengths, capacity);
        }
        int b = 0;
        for (int i = 0; i < count; i++) {
            long bytes = pieceLength[i];
            for (long off = 0; off < bytes; off += MAX_BUFFER_BYTES) {
                cacheBuffer(b++, segments[i], pieceAt[i] + off, Math.min(MAX_BUFFER_BYTES, bytes - off));
            }
        }
        bufferCount = b;
        return buffers;
    }

    /**
     * The internal FileChannel view ({@link FileChannelBuffers}): buffers over the segments' raw
     * addresses that carry no memory session, so that NIO's gathering and scattering calls
     * allocate nothing for them. A slot's buffer is rebuilt only when its address, length or
     * access mode changed. Falls back to {@link #byteBuffers()} when a segment is a heap segment
     * (no stable address) or the JDK does not let {@link SessionlessBuffers} make such buffers.
     *
     * <p>Checks nothing about liveness: the caller checks before each call that uses the buffers
     * ({@link #requireUsableByCurrentThread}).
     *
     * @param intoVector whether the call will write into the memory (a read from a file); then
     *                   read-only segments are refused
     * @throws IllegalArgumentException if {@code intoVector} and a segment is read-only
     */
    private ByteBuffer[] channelBuffers(boolean intoVector) {
        boolean raw = SessionlessBuffers.available();
        int needed = 0;
        for (int i = 0; i < count; i++) {
            MemorySegment s = segments[i];
            if (intoVector && s.isReadOnly()) {
                throw new IllegalArgumentException("segment " + i + " of the I/O vector is read-only "
                        + "(a TO_DEVICE mapping or ROM?); nothing was read");
            }
            raw &= s.isNative();
            needed += bufferPieces(pieceLength[i]);
        }
        if (!raw) {
            ByteBuffer[] scoped = byteBuffers();
            channelBufferCount = bufferCount;
            return scoped;
        }
        if (needed > channelBuffers.length) {
            int capacity = Math.max(needed, channelBuffers.length * 2);
            channelBuffers = Arrays.copyOf(channelBuffers, capacity);
            channelAddresses = Arrays.copyOf(channelAddresses, capacity);
        }
        int b = 0;
        for (int i = 0; i < count; i++) {
            long bytes = pieceLength[i];
            long base = segments[i].address() + pieceAt[i];
            boolean readOnly = segments[i].isReadOnly();
            for (long off = 0; off < bytes; off += MAX_BUFFER_BYTES) {
                int length = (int) Math.min(MAX_BUFFER_BYTES, bytes - off);
                ByteBuffer cached = channelBuffers[b];
                if (cached != null && channelAddresses[b] == base + off && cached.capacity() == length
                        && cached.isReadOnly() == readOnly) {
                    cached.clear();
                } else {
                    channelBuffers[b] = SessionlessBuffers.of(base + off, length, readOnly);
                    channelAddresses[b] = base + off;
                }
                b++;
            }
        }
        channelBufferCount = b;
        return channelBuffers;
    }

    /**
     * Refuses memory that the session-less buffers would reach past FFM's checks: a segment whose
     * scope was closed (guest memory closed, a debug-mode unmap), or of a confined arena owned by
     * another thread.
     *
     * @throws IllegalStateException if a segment's memory is no longer alive
     * @throws WrongThreadException  if the current thread may not access a segment's memory
     */
    private void requireUsableByCurrentThread() {
        Thread current = Thread.currentThread();
        for (int i = 0; i < count; i++) {
            MemorySegment s = segments[i];
            if (!s.scope().isAlive()) {
                throw new IllegalStateException("segment " + i + " belongs to memory that was already released");
            }
            if (!s.isAccessibleBy(current)) {
                throw new WrongThreadException("segment " + i + " belongs to a confined arena of another thread");
            }
        }
    }

    /** {@return how many entries of {@link #byteBuffers()} are in use, computed by the last call} */
    public int byteBufferCount() {
        return bufferCount;
    }

    private static int bufferPieces(long bytes) {
        return (int) ((bytes + MAX_BUFFER_BYTES - 1) / MAX_BUFFER_BYTES);
    }

    /** Bytes {@code [offset, offset + length)} of {@code source} as buffer {@code slot}: the cached one if it is the same memory. */
    private void cacheBuffer(int slot, MemorySegment source, long offset, long length) {
        MemorySegment previous = bufferSources[slot];
        if (previous != null && bufferLengths[slot] == length && sameMemory(previous, bufferOffsets[slot], source, offset)) {
            buffers[slot].clear();
            return;
        }
        buffers[slot] = source.asSlice(offset, length).asByteBuffer();
        bufferSources[slot] = source;
        bufferOffsets[slot] = offset;
        bufferLengths[slot] = length;
    }

    /** Whether byte {@code offA} of {@code a} is byte {@code offB} of {@code b}, seen with the same access. */
    private static boolean sameMemory(MemorySegment a, long offA, MemorySegment b, long offB) {
        if (a == b) {
            return offA == offB;
        }
        return a.address() + offA == b.address() + offB
                && a.isNative() && b.isNative()
                && a.isReadOnly() == b.isReadOnly()
                && a.scope().equals(b.scope());
    }

    /**
     * Presents the vector as a native {@code struct iovec} array (layout {@link #IOVEC}) for
     * {@code preadv}/{@code pwritev}. The array lives in memory owned by this vector, is rewritten
     * only when the vector changed since the last call, and is valid until the vector next changes.
     * Only its first {@link #nativeIovecCount()} entries are meaningful.
     *
     * <p>The entries are raw addresses, which the kernel uses without FFM's checks, so every call
     * checks that each segment's memory is still alive, also when it returns the cached array: a
     * vector whose mappings were unmapped in debug mode, or whose guest memory was closed, is
     * refused rather than handed to the kernel (where the addresses may by then belong to other
     * memory). Keep the segments alive until the system call returns.
     *
     * <p>This view lets the kernel read the memory ({@code pwritev}, {@code writev}); use
     * {@link #writableNativeIovecs()} for calls that write into it.
     *
     * @return the native array, at least {@code count() * 16} bytes
     * @throws IllegalStateException if a segment is a heap segment (it has no stable native
     *                               address) or its memory is no longer alive
     */
    public MemorySegment nativeIovecs() {
        if (iovecsVersion == version) {
            requireAlive();
            return iovecs;
        }
        if (iovecs.byteSize() < count * IOVEC_BYTES) {
            long capacity = Math.max(count, 2L * iovecs.byteSize() / IOVEC_BYTES);
            // Automatic arena: the array is freed with the vector, and an I/O vector is long-lived.
            iovecs = Arena.ofAuto().allocate(capacity * IOVEC_BYTES, 8);
        }
        for (int i = 0; i < count; i++) {
            MemorySegment s = segments[i];
            if (!s.isNative()) {
                throw new IllegalStateException("segment " + i + " is a heap segment; native I/O needs native memory");
            }
            if (!s.scope().isAlive()) {
                throw new IllegalStateException("segment " + i + " belongs to memory that was already released");
            }
            iovecs.set(ValueLayout.JAVA_LONG, i * IOVEC_BYTES, s.address() + pieceAt[i]);
            iovecs.set(ValueLayout.JAVA_LONG, i * IOVEC_BYTES + 8, pieceLength[i]);
        }
        iovecsVersion = version;
        return iovecs;
    }

    /**
     * The native view for calls that write into the vector's memory ({@code preadv}, {@code readv}):
     * as {@link #nativeIovecs()}, and also refused when a segment is read-only (a TO_DEVICE mapping,
     * ROM), since the kernel would write into it without FFM's read-only check.
     *
     * @return the native array, as {@link #nativeIovecs()}
     * @throws UnsupportedOperationException if a segment is read-only; nothing is written
     * @throws IllegalStateException         if a segment is a heap segment or its memory is no
     *                                       longer alive
     */
    public MemorySegment writableNativeIovecs() {
        requireWritable(0, size);
        return nativeIovecs();
    }

    private void requireAlive() {
        for (int i = 0; i < count; i++) {
            if (!segments[i].scope().isAlive()) {
                throw new IllegalStateException("segment " + i + " belongs to memory that was already released");
            }
        }
    }

    /** {@return how many entries of {@link #nativeIovecs()} are meaningful: {@link #count()}} */
    public int nativeIovecCount() {
        return count;
    }

    private static void requireNonNegative(long bytes) {
        if (bytes < 0) {
            throw new IllegalArgumentException("byte count must not be negative: " + bytes);
        }
    }

    /** {@return a short description: segment count and total size} */
    @Override
    public String toString() {
        return "IoVector[" + count + " segments, " + size + " bytes]";
    }
}
