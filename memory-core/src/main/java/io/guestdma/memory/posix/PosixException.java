package io.guestdma.memory.posix;

import java.io.IOException;

/**
 * A system call failed. The message names the call, its subject (a path, a file descriptor) and
 * the errno by its symbolic name, for example {@code "pwritev(fd 7): ENOSPC (No space left on device)"}.
 */
public final class PosixException extends IOException {
    private static final long serialVersionUID = 1L;

    /** The call and its subject. */
    private final String call;
    /** The errno value. */
    private final int errno;

    /**
     * Creates the exception for a failed call.
     *
     * @param call    the call and its subject, for example {@code "open(/tmp/disk.img)"}
     * @param errno   the errno value captured right after the call
     */
    public PosixException(String call, int errno) {
        super(call + ": " + Errno.name(errno) + " (" + Errno.describe(errno) + ")");
        this.call = call;
        this.errno = errno;
    }

    /** {@return the call and its subject, as given to the constructor} */
    public String call() {
        return call;
    }

    /** {@return the errno value (for example 28 for ENOSPC)} */
    public int errno() {
        return errno;
    }

    /**
     * {@return the symbolic errno name (for example {@code "ENOSPC"}), or {@code "errno N"} if
     * unknown}
     */
    public String errnoName() {
        return Errno.name(errno);
    }
}
