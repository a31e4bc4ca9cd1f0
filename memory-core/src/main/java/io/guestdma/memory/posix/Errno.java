package io.guestdma.memory.posix;

/** Linux x86-64 errno values the project reports by name. */
public final class Errno {
    private Errno() {
    }

    /** Operation not permitted. */ public static final int EPERM = 1;
    /** No such file or directory. */ public static final int ENOENT = 2;
    /** Interrupted system call: retried by every wrapper. */ public static final int EINTR = 4;
    /** I/O error. */ public static final int EIO = 5;
    /** Bad file descriptor. */ public static final int EBADF = 9;
    /** Resource temporarily unavailable (also EWOULDBLOCK). */ public static final int EAGAIN = 11;
    /** Out of memory. */ public static final int ENOMEM = 12;
    /** Permission denied. */ public static final int EACCES = 13;
    /** Bad address. */ public static final int EFAULT = 14;
    /** Device or resource busy. */ public static final int EBUSY = 16;
    /** File exists. */ public static final int EEXIST = 17;
    /** Is a directory. */ public static final int EISDIR = 21;
    /** Invalid argument. */ public static final int EINVAL = 22;
    /** File too large. */ public static final int EFBIG = 27;
    /** No space left on device. */ public static final int ENOSPC = 28;
    /** Read-only file system. */ public static final int EROFS = 30;
    /** Function not implemented. */ public static final int ENOSYS = 38;
    /** Value too large for defined data type (NBD: a read too large to send unfragmented). */ public static final int EOVERFLOW = 75;
    /** Operation not supported. */ public static final int EOPNOTSUPP = 95;
    /** Broken pipe: the peer closed the connection. */ public static final int EPIPE = 32;
    /** Connection reset by peer. */ public static final int ECONNRESET = 104;
    /** Cannot send after transport endpoint shutdown (NBD: the server is shutting down). */ public static final int ESHUTDOWN = 108;
    /** Connection refused. */ public static final int ECONNREFUSED = 111;
    /** Operation now in progress (a connect that hit its timeout). */ public static final int EINPROGRESS = 115;
    /** No medium found (a removable drive that is empty). */ public static final int ENOMEDIUM = 123;

    /**
     * {@return its symbolic name, or {@code "errno N"} for a value this class does not know}
     *
     * @param errno an errno value
     */
    public static String name(int errno) {
        return switch (errno) {
            case EPERM -> "EPERM";
            case ENOENT -> "ENOENT";
            case EINTR -> "EINTR";
            case EIO -> "EIO";
            case EBADF -> "EBADF";
            case EAGAIN -> "EAGAIN";
            case ENOMEM -> "ENOMEM";
            case EACCES -> "EACCES";
            case EFAULT -> "EFAULT";
            case EBUSY -> "EBUSY";
            case EEXIST -> "EEXIST";
            case EISDIR -> "EISDIR";
            case EINVAL -> "EINVAL";
            case EFBIG -> "EFBIG";
            case ENOSPC -> "ENOSPC";
            case EROFS -> "EROFS";
            case ENOSYS -> "ENOSYS";
            case EOVERFLOW -> "EOVERFLOW";
            case EOPNOTSUPP -> "EOPNOTSUPP";
            case EPIPE -> "EPIPE";
            case ECONNRESET -> "ECONNRESET";
            case ESHUTDOWN -> "ESHUTDOWN";
            case ECONNREFUSED -> "ECONNREFUSED";
            case EINPROGRESS -> "EINPROGRESS";
            case ENOMEDIUM -> "ENOMEDIUM";
            default -> "errno " + errno;
        };
    }

    /**
     * {@return a short English description, as strerror would give for the known values}
     *
     * @param errno an errno value
     */
    public static String describe(int errno) {
        return switch (errno) {
            case EPERM -> "Operation not permitted";
            case ENOENT -> "No such file or directory";
            case EINTR -> "Interrupted system call";
            case EIO -> "Input/output error";
            case EBADF -> "Bad file descriptor";
            case EAGAIN -> "Resource temporarily unavailable";
            case ENOMEM -> "Cannot allocate memory";
            case EACCES -> "Permission denied";
            case EFAULT -> "Bad address";
            case EBUSY -> "Device or resource busy";
            case EEXIST -> "File exists";
            case EISDIR -> "Is a directory";
            case EINVAL -> "Invalid argument";
            case EFBIG -> "File too large";
            case ENOSPC -> "No space left on device";
            case EROFS -> "Read-only file system";
            case ENOSYS -> "Function not implemented";
            case EOVERFLOW -> "Value too large for defined data type";
            case EOPNOTSUPP -> "Operation not supported";
            case EPIPE -> "Broken pipe";
            case ECONNRESET -> "Connection reset by peer";
            case ESHUTDOWN -> "Cannot send after transport endpoint shutdown";
            case ECONNREFUSED -> "Connection refused";
            case EINPROGRESS -> "Operation now in progress";
            case ENOMEDIUM -> "No medium found";
            default -> "unknown error";
        };
    }
}
