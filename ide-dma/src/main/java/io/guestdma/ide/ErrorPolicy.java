package io.guestdma.ide;

/** What a drive does when its backend fails a read or a write (QEMU's rerror / werror). */
public enum ErrorPolicy {
    /** The guest sees the error: ERR in status, ABRT in the error register, an interrupt. */
    REPORT,
    /** The error is swallowed and the command completes as if it had succeeded. */
    IGNORE,
    /**
     * The controller pauses holding the failed request; {@link PiixIde#resume()} retries it, so
     * nothing is lost and the guest sees nothing but a slow command.
     */
    STOP
}
