package io.guestdma.migration;

import java.io.Serial;

/**
 * The incoming migration stream or one of its sections is not acceptable: truncated, corrupt,
 * of an unknown version, for a device the destination does not have, or with a value the
 * destination's hardware could not hold. The destination does not start a machine from a stream
 * that raised it.
 */
public final class MigrationFormatException extends Exception {
    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what was wrong and where (section, field, offset), for the operator
     */
    public MigrationFormatException(String message) {
        super(message);
    }

    /**
     * Creates the exception with the failure that revealed the problem.
     *
     * @param message what was wrong and where
     * @param cause the underlying failure
     */
    public MigrationFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
