package io.guestdma.block;

import java.io.IOException;

/**
 * Where a request submitted with {@link BlockBackend#submitReadv}, {@link BlockBackend#submitWritev},
 * {@link BlockBackend#submitFlush} or {@link BlockBackend#submitDiscard} reports its outcome: the
 * allocation-free counterpart of the {@code ...Async} methods' futures. The caller owns the
 * object and may reuse it for its next request once it was called (a device keeps one per
 * request slot or buffer), so a request costs no allocation on a backend whose own path is
 * allocation-free ({@link NbdBackend}'s).
 *
 * <p><b>Exactly once.</b> Every submission that returns normally leads to exactly one call, of
 * {@link #completed()} or {@link #failed(IOException)}; a submission that throws (a null
 * argument, a read-only or heap segment, memory of a confined arena...) leads to none. The
 * request's memory belongs to the backend until then.
 *
 * <p><b>Which thread.</b> The backend's: for the {@link BlockBackend} default, the submitting
 * thread, before the submission returns; for {@link NbdBackend}, the thread that read the reply
 * (the connection's reply thread, or a synchronous caller of the same backend reading replies
 * meanwhile) or the one that found the connection dead, and the submitting thread when the
 * request failed before it was sent or had to run as the synchronous call. So the call may come
 * before the submission returns, or at the same time on another thread: set up whatever it
 * touches before submitting.
 *
 * <p><b>Reentrancy.</b> The call is made holding no lock of the backend and not in the role of
 * reading replies, so it may submit further requests, synchronous ones included (a device
 * submitting the next request of its queue from the completion is the intended use). It must
 * be short, since other replies wait meanwhile; it must not block waiting for another
 * asynchronous request of the same backend (that reply might only be read by this very thread:
 * the wait then ends by the backend's timeout, with {@code EIO}), and must not close the backend
 * (closing waits for pending requests, this one included). A completion called before the
 * submission returned that submits again may be called again, nested: retrying at once from
 * {@link #failed} on a backend that is down can recurse without end; hand the retry to the I/O
 * thread instead.
 *
 * <p><b>Failures.</b> An exception a method of this interface throws is handed to the uncaught
 * exception handler of the thread that called it and is otherwise ignored: the request counts as
 * completed, and the backend carries on.
 */
public interface BlockCompletion {
    /**
     * The request succeeded: every byte was read or written, the flush is durable, the range
     * reads as zeroes. The request's memory is the caller's again.
     */
    void completed();

    /**
     * The request failed. A write may have written a prefix, as with the synchronous call. The
     * request's memory is the caller's again.
     *
     * @param failure what the synchronous call would have thrown: for instance a
     *                {@link io.guestdma.memory.posix.PosixException} with the errno
     *                ({@code EIO} when the connection to a server was lost, or its reply did not
     *                come within the timeout; the server's errno when it reported an error), an
     *                {@link IOException} for a range outside the image or a closed backend, or a
     *                {@link ReadOnlyImageException}
     */
    void failed(IOException failure);
}
