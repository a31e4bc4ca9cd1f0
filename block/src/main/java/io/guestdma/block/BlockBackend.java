package io.guestdma.block;

import io.guestdma.memory.IoVector;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * A disk image as a device model sees it: a fixed number of bytes with positional, vectored reads
 * and writes, flush and discard (QEMU's {@code BlockBackend}).
 *
 * <p>Every transfer is complete or fails: a backend loops on short transfers, so when a call
 * returns normally all requested bytes were moved, and when it throws, the exception says what
 * failed (for native I/O, the errno by name). A failed write may have written a prefix of the
 * request, as a real disk may; the caller reports the error to the guest, which retries.
 *
 * <p>Requests are checked against the image before any I/O: a range outside {@code [0, size())}
 * fails with an {@link IOException} naming the image, never grows the file; on a read-only image
 * writes and discards fail with {@link ReadOnlyImageException}.
 *
 * <p>Implementations are thread-safe: requests from several threads may run concurrently, and a
 * request is atomic with respect to none other (as with a disk, overlapping concurrent writes
 * leave either's bytes). The memory an {@link IoVector} refers to must stay alive until the call
 * returns (or the future completes, or the {@link BlockCompletion} is called).
 *
 * <p><b>Asynchronous requests</b> come in two forms. {@link #submitReadv}, {@link #submitWritev},
 * {@link #submitFlush} and {@link #submitDiscard} report to a {@link BlockCompletion} the caller
 * owns and reuses: the form for a device's I/O thread, which allocates nothing per request where
 * the backend's own path does not ({@link NbdBackend}). The defaults run the synchronous call in
 * the submitting thread, then the completion. {@link #readvAsync} and its siblings return a
 * {@link CompletableFuture} (an object per request) completed on an executor.
 */
public interface BlockBackend extends AutoCloseable {
    /** {@return the image's size in bytes, fixed when it was opened} */
    long size();

    /** {@return whether the image was opened read-only} */
    boolean isReadOnly();

    /**
     * Reads {@code iov.size()} bytes starting at {@code offset} into the vector's segments, in order
     * (a scattering read).
     *
     * @param offset the image offset
     * @param iov    where the bytes go; its segments must be writable
     * @throws IllegalArgumentException if a segment is read-only (nothing is read)
     * @throws IOException              if the range is outside the image or the read fails
     */
    void readv(long offset, IoVector iov) throws IOException;

    /**
     * Writes the vector's bytes, in order, starting at {@code offset} (a gathering write).
     *
     * @param offset the image offset
     * @param iov    the bytes to write
     * @throws ReadOnlyImageException if the image is read-only
     * @throws IOException            if the range is outside the image or the write fails
     */
    void writev(long offset, IoVector iov) throws IOException;

    /**
     * Reads {@code dst.remaining()} bytes starting at {@code offset} into {@code dst}, advancing its
     * position to its limit.
     *
     * @param offset the image offset
     * @param dst    where the bytes go
     * @throws IOException if the range is outside the image or the read fails
     */
    void read(long offset, ByteBuffer dst) throws IOException;

    /**
     * Writes {@code src.remaining()} bytes starting at {@code offset}, advancing the buffer's
     * position to its limit.
     *
     * @param offset the image offset
     * @param src    the bytes to write
     * @throws ReadOnlyImageException if the image is read-only
     * @throws IOException            if the range is outside the image or the write fails
     */
    void write(long offset, ByteBuffer src) throws IOException;

    /**
     * Makes every write that completed before this call durable: when it returns, the bytes are on
     * stable storage ({@code fdatasync}); nothing is held in user-space buffers. On a read-only image
     * it does nothing.
     *
     * @throws IOException if the flush fails; written data may then be lost, and the caller must
     *                     report the failure to the guest
     */
    void flush() throws IOException;

    /**
     * Tells the image that a range is no longer needed (TRIM). Afterwards the range reads as zeroes:
     * the native backend punches a hole, the FileChannel backend writes zeroes.
     *
     * @param offset the image offset
     * @param length bytes in the range
     * @throws ReadOnlyImageException if the image is read-only
     * @throws IOException            if the range is outside the image or the operation fails
     */
    void discard(long offset, long length) throws IOException;

    /**
     * Closes the image and releases its lock. Requests running in other threads are waited for
     * (native) or fail with {@link java.nio.channels.ClosedChannelException} (FileChannel); later
     * requests fail with an {@link IOException}. Idempotent. Does not flush: call {@link #flush()}
     * first if written data must be durable.
     *
     * @throws IOException if closing the underlying file fails
     */
    @Override
    void close() throws IOException;

    /**
     * {@link #readv} on {@code executor}, completing the returned future with its outcome.
     * Cancelling the future before the request has started prevents it from running; a request
     * that has started runs to completion (a system call cannot be withdrawn), but the future stays
     * cancelled.
     *
     * <p>An implementation with an asynchronous path of its own may start the request in the
     * calling thread and use {@code executor} only to complete the future (then cancellation
     * never prevents the request); {@link NbdBackend} does, and says so.
     *
     * @param offset   the image offset
     * @param iov      where the bytes go; keep it and its memory untouched until the future completes
     * @param executor where the request runs
     * @return a future completed normally when every byte was read, or exceptionally with the
     *         request's {@link IOException}
     */
    default CompletableFuture<Void> readvAsync(long offset, IoVector iov, Executor executor) {
        return BlockRequest.submit(executor, () -> readv(offset, iov));
    }

    /**
     * {@link #writev} on {@code executor}; cancellation as for {@link #readvAsync}.
     *
     * @param offset   the image offset
     * @param iov      the bytes to write; keep it and its memory untouched until the future completes
     * @param executor where the request runs
     * @return a future completed normally when every byte was written, or exceptionally with the
     *         request's {@link IOException}
     */
    default CompletableFuture<Void> writevAsync(long offset, IoVector iov, Executor executor) {
        return BlockRequest.submit(executor, () -> writev(offset, iov));
    }

    /**
     * {@link #flush} on {@code executor}; cancellation as for {@link #readvAsync}.
     *
     * @param executor where the request runs
     * @return a future completed when the flush is durable, or exceptionally with its {@link IOException}
     */
    default CompletableFuture<Void> flushAsync(Executor executor) {
        return BlockRequest.submit(executor, this::flush);
    }

    /**
     * {@link #discard} on {@code executor}; cancellation as for {@link #readvAsync}.
     *
     * @param offset   the image offset
     * @param length   bytes in the range
     * @param executor where the request runs
     * @return a future completed when the range is discarded, or exceptionally with its {@link IOException}
     */
    default CompletableFuture<Void> discardAsync(long offset, long length, Executor executor) {
        return BlockRequest.submit(executor, () -> discard(offset, length));
    }

    /**
     * Starts {@link #readv}, reporting its outcome to {@code completion} (see {@link BlockCompletion}
     * for the thread, the exactly-once rule and reentrancy). The default runs the synchronous
     * call in this thread and calls the completion before returning; {@link NbdBackend} sends the
     * request and returns, and allocates nothing per request.
     *
     * @param offset     the image offset
     * @param iov        where the bytes go; its segments must be writable; keep it and its memory
     *                   untouched until the completion is called
     * @param completion called once with the outcome: {@link BlockCompletion#failed} with the
     *                   {@link IOException} the synchronous call would throw
     * @throws NullPointerException     if {@code iov} or {@code completion} is null (the completion is
     *                                  then not called)
     * @throws IllegalArgumentException if a segment is read-only, or otherwise unusable by the
     *                                  backend (the completion is then not called)
     */
    default void submitReadv(long offset, IoVector iov, BlockCompletion completion) {
        // Spelled out in each default rather than a shared helper taking a lambda: a lambda that
        // captures the arguments would be an object per request, and these defaults serve
        // backends whose synchronous calls allocate nothing (NativeBackend).
        Objects.requireNonNull(completion, "completion");
        IOException failure = null;
        try {
            readv(offset, iov);
        } catch (IOException e) {
            failure = e;
        }
        BlockRequest.report(completion, failure);
    }

    /**
     * Starts {@link #writev}, reporting its outcome to {@code completion}; otherwise as
     * {@link #submitReadv}.
     *
     * @param offset     the image offset
     * @param iov        the bytes to write; keep it and its memory untouched until the completion
     *                   is called
     * @param completion called once with the outcome ({@link ReadOnlyImageException} on a
     *                   read-only image)
     * @throws NullPointerException     if {@code iov} or {@code completion} is null
     * @throws IllegalArgumentException if a segment is unusable by the backend (heap memory for a
     *                                  socket, for instance)
     */
    default void submitWritev(long offset, IoVector iov, BlockCompletion completion) {
        Objects.requireNonNull(completion, "completion");
        IOException failure = null;
        try {
            writev(offset, iov);
        } catch (IOException e) {
            failure = e;
        }
        BlockRequest.report(completion, failure);
    }

    /**
     * Starts {@link #flush}, reporting its outcome to {@code completion}: it is called once every
     * write that completed before this call is durable. Otherwise as {@link #submitReadv}.
     *
     * @param completion called once with the outcome
     * @throws NullPointerException if {@code completion} is null
     */
    default void submitFlush(BlockCompletion completion) {
        Objects.requireNonNull(completion, "completion");
        IOException failure = null;
        try {
            flush();
        } catch (IOException e) {
            failure = e;
        }
        BlockRequest.report(completion, failure);
    }

    /**
     * Starts {@link #discard}, reporting its outcome to {@code completion}; otherwise as
     * {@link #submitReadv}.
     *
     * @param offset     the image offset
     * @param length     bytes in the range
     * @param completion called once with the outcome ({@link ReadOnlyImageException} on a
     *                   read-only image)
     * @throws NullPointerException if {@code completion} is null
     */
    default void submitDiscard(long offset, long length, BlockCompletion completion) {
        Objects.requireNonNull(completion, "completion");
        IOException failure = null;
        try {
            discard(offset, length);
        } catch (IOException e) {
            failure = e;
        }
        BlockRequest.report(completion, failure);
    }
}
