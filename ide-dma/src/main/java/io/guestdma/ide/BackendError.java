package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import java.util.Objects;

/**
 * A drive's backend failed a request, and the drive's {@link ErrorPolicy} decided what happens:
 * what QEMU reports as a {@code BLOCK_IO_ERROR} event. ATAPI reads are not included: their
 * errors reach the guest as sense data, with no policy.
 *
 * @param channel 0 for primary, 1 for secondary
 * @param unit 0 for master, 1 for slave
 * @param operation whether a read, or a write, flush or TRIM failed
 * @param action what the policy did: reported it to the guest, ignored it, or stopped the
 *     controller holding the request
 * @param cause what the backend threw
 */
public record BackendError(int channel, int unit, Operation operation, ErrorPolicy action, Throwable cause) {

    /** QEMU's IoOperationType: which policy applies, {@code rerror} or {@code werror}. */
    public enum Operation {
        /** A read: {@code rerror}. */
        READ,
        /** A write, flush or TRIM: {@code werror}. */
        WRITE
    }

    /**
     * Validates the report.
     *
     * @throws NullPointerException if operation, action or cause is null
     */
    public BackendError {
        Objects.requireNonNull(operation, "operation");
        Objects.requireNonNull(action, "action");
        Objects.requireNonNull(cause, "cause");
    }
}
