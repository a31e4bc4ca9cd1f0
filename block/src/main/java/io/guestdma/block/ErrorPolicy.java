package io.guestdma.block;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;

/**
 * What a disk device does when its backend fails a request: QEMU's {@code rerror}/{@code werror}
 * ({@code BlockdevOnError}), shared by the device models that sit on the block layer. A device asks
 * {@link #actionFor} what to do with one failure; the answer is never {@link #ENOSPC}.
 */
public enum ErrorPolicy {
    /** The guest sees the error (the device's error status) and the request completes. */
    REPORT,
    /** The error is swallowed and the request completes as if it had succeeded. */
    IGNORE,
    /**
     * The device stops holding the failed request, as QEMU stops the VM; resuming retries it, so
     * nothing is lost and the guest sees nothing but a slow request.
     */
    STOP,
    /**
     * {@link #STOP} when the host disk is full (the failure's errno is ENOSPC), {@link #REPORT}
     * otherwise: QEMU's default {@code werror}, so that a guest survives a full host disk once
     * space is freed and {@code cont} retries.
     */
    ENOSPC;

    /** How far {@link #errno} follows a cause chain. */
    private static final int MAX_CAUSE_DEPTH = 32;

    /**
     * What to do with one failed request under this policy.
     *
     * @param cause the backend's failure (its cause chain is searched for a {@link PosixException}),
     *     or null when the device refused the request itself
     * @return REPORT, IGNORE or STOP
     */
    public ErrorPolicy actionFor(Throwable cause) {
        if (this != ENOSPC) {
            return this;
        }
        return errno(cause) == Errno.ENOSPC ? STOP : REPORT;
    }

    /**
     * Whether a device with these policies keeps QEMU's I/O status, which is when QEMU's
     * BLOCK_IO_ERROR event carries its {@code nospace} member: a stop policy for reads, or a stop
     * or enospc policy for writes.
     *
     * @param read the {@code rerror} policy
     * @param write the {@code werror} policy
     * @return whether the I/O status is kept
     */
    public static boolean keepsIoStatus(ErrorPolicy read, ErrorPolicy write) {
        return read == STOP || write == STOP || write == ENOSPC;
    }

    /**
     * The errno a failure carries: that of the first {@link PosixException} in its cause chain.
     *
     * @param cause the failure, or null
     * @return the errno, EIO when there is none
     */
    public static int errno(Throwable cause) {
        // bounded: initCause lets two exceptions name each other as causes
        Throwable t = cause;
        for (int depth = 0; t != null && depth < MAX_CAUSE_DEPTH; depth++, t = t.getCause()) {
            if (t instanceof PosixException p) {
                return p.errno();
            }
        }
        return Errno.EIO;
    }
}
