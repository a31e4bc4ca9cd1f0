package io.guestdma.memory.internal;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.invoke.VarHandle;
import java.nio.file.Path;

/**
 * Linux system calls through FFM downcalls, each returning its result or throwing a
 * {@link PosixException} that names the call, its subject and the errno.
 *
 * <p>Every wrapper reads {@code errno} through {@link Linker.Option#captureCallState} (into a
 * per-thread buffer) and retries on {@code EINTR}. No call is marked critical: they may block, and a
 * critical call would stall the garbage collector while it does.
 *
 * <p>The data-path calls ({@link #preadv}, {@link #pwritev}, {@link #pread}, {@link #pwrite}) are
 * linked twice. A capturing downcall slices its capture segment inside the JDK on every call, an
 * allocation only C2's escape analysis removes, and only when it happens to inline the whole chain;
 * a fork where it does not keeps 40 bytes per system call for its whole life. So these calls go
 * first through a handle linked without {@code captureCallState}, which allocates nothing on any
 * JIT tier, and only a {@code -1} return repeats the same positional call through the capturing
 * handle to learn the errno. Repeating is safe: a positional transfer that returned {@code -1}
 * moved nothing and changed no file offset, so the repeat either fails again (its errno is the one
 * reported) or succeeds (its count is returned, as if the first attempt had been interrupted).
 * {@link #fdatasync} and {@link #fsync} are never repeated that way: Linux reports a writeback error
 * to each open file once, so a repeat could return 0 and hide lost data.
 *
 * <p>Constants are the Linux x86-64/aarch64 values (the ones that differ between architectures are
 * not used). All methods are thread-safe.
 */
// Restricted FFM methods are this class's purpose; users enable them with --enable-native-access.
@SuppressWarnings("restricted")
public final class Posix {
    private Posix() {
    }

    /** open: read only. */ public static final int O_RDONLY = 0;
    /** open: write only. */ public static final int O_WRONLY = 1;
    /** open: read and write. */ public static final int O_RDWR = 2;
    /** The bits of the file status flags that hold the access mode. */ public static final int O_ACCMODE = 3;
    /** open: create if missing. */ public static final int O_CREAT = 0100;
    /** open: fail if it exists (with O_CREAT). */ public static final int O_EXCL = 0200;
    /** open: truncate to 0. */ public static final int O_TRUNC = 01000;
    /** open: bypass the page cache (x86-64 value). */ public static final int O_DIRECT = 040000;
    /** open: close on exec. */ public static final int O_CLOEXEC = 02000000;

    /** mmap: readable. */ public static final int PROT_READ = 1;
    /** mmap: writable. */ public static final int PROT_WRITE = 2;
    /** mmap: shared with other mappers of the file. */ public static final int MAP_SHARED = 0x01;
    /** mmap: private copy-on-write. */ public static final int MAP_PRIVATE = 0x02;
    /** mmap: not backed by a file. */ public static final int MAP_ANONYMOUS = 0x20;
    /** mmap: do not reserve swap; commit pages only when touched. */ public static final int MAP_NORESERVE = 0x4000;

    /** madvise: back with transparent huge pages. */ public static final int MADV_HUGEPAGE = 14;
    /** madvise: give the pages back; anonymous memory reads zero afterwards. */ public static final int MADV_DONTNEED = 4;
    /** madvise: leave out of core dumps. */ public static final int MADV_DONTDUMP = 16;

    /** fallocate: keep the file size. */ public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    /** fallocate: deallocate the range (needs KEEP_SIZE); it reads zero afterwards. */ public static final int FALLOC_FL_PUNCH_HOLE = 0x02;

    /** flock: shared lock. */ public static final int LOCK_SH = 1;
    /** flock: exclusive lock. */ public static final int LOCK_EX = 2;
    /** flock: fail instead of waiting. */ public static final int LOCK_NB = 4;
    /** flock: unlock. */ public static final int LOCK_UN = 8;

    /** memfd_create: close on exec. */ public static final int MFD_CLOEXEC = 1;

    /** socket: Unix-domain. */ public static final int AF_UNIX = 1;
    /** socket: IPv4. */ public static final int AF_INET = 2;
    /** socket: IPv6. */ public static final int AF_INET6 = 10;
    /** socket: a byte stream. */ public static final int SOCK_STREAM = 1;
    /** socket: close on exec. */ public static final int SOCK_CLOEXEC = 02000000;
    /** setsockopt level: the socket itself. */ public static final int SOL_SOCKET = 1;
    /** setsockopt: send keepalive probes on an idle connection. */ public static final int SO_KEEPALIVE = 9;
    /** setsockopt: receive timeout ({@code struct timeval}). */ public static final int SO_RCVTIMEO = 20;
    /** setsockopt: send timeout ({@code struct timeval}); also bounds a blocking connect. */ public static final int SO_SNDTIMEO = 21;
    /** setsockopt level: TCP. */ public static final int IPPROTO_TCP = 6;
    /** setsockopt: send small segments at once (no Nagle delay). */ public static final int TCP_NODELAY = 1;
    /** shutdown: both directions; wakes threads blocked on the socket. */ public static final int SHUT_RDWR = 2;
    /** shutdown: the sending direction. */ public static final int SHUT_WR = 1;

    /** The most entries one preadv/pwritev accepts on Linux ({@code IOV_MAX}). */
    public static final int IOV_MAX = 1024;

    private static final int SEEK_END = 2;
    private static final long MAP_FAILED = -1L;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE = Linker.Option.captureCallState("errno");

    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG;
    private static final ValueLayout PTR = ValueLayout.ADDRESS;

    private static final MethodHandle OPEN = downcall("open", FunctionDescriptor.of(INT, PTR, INT, INT),
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(INT, INT));
    private static final FunctionDescriptor VECTORED = FunctionDescriptor.of(LONG, INT, PTR, INT, LONG);
    private static final FunctionDescriptor POSITIONAL = FunctionDescriptor.of(LONG, INT, PTR, LONG, LONG);
    // The data-path calls: a fast handle without errno capture, and the capturing one for a -1 return.
    private static final MethodHandle PREADV_FAST = fastDowncall("preadv", VECTORED);
    private static final MethodHandle PWRITEV_FAST = fastDowncall("pwritev", VECTORED);
    private static final MethodHandle PREAD_FAST = fastDowncall("pread", POSITIONAL);
    private static final MethodHandle PWRITE_FAST = fastDowncall("pwrite", POSITIONAL);
    private static final MethodHandle PREADV = repeatable(downcall("preadv", VECTORED));
    private static final MethodHandle PWRITEV = repeatable(downcall("pwritev", VECTORED));
    private static final MethodHandle PREAD = repeatable(downcall("pread", POSITIONAL));
    private static final MethodHandle PWRITE = repeatable(downcall("pwrite", POSITIONAL));
    private static final MethodHandle FDATASYNC = downcall("fdatasync", FunctionDescriptor.of(INT, INT));
    private static final MethodHandle FSYNC = downcall("fsync", FunctionDescriptor.of(INT, INT));
    private static final MethodHandle FALLOCATE = downcall("fallocate", FunctionDescriptor.of(INT, INT, INT, LONG, LONG));
    private static final MethodHandle FTRUNCATE = downcall("ftruncate", FunctionDescriptor.of(INT, INT, LONG));
    private static final MethodHandle LSEEK = downcall("lseek", FunctionDescriptor.of(LONG, INT, LONG, INT));
    private static final MethodHandle FLOCK = downcall("flock", FunctionDescriptor.of(INT, INT, INT));
    // fcntl is variadic; F_GETFL passes no third argument, so the two fixed ones are the whole call.
    private static final MethodHandle FCNTL = downcall("fcntl", FunctionDescriptor.of(INT, INT, INT));
    private static final MethodHandle MEMFD_CREATE = downcall("memfd_create", FunctionDescriptor.of(INT, PTR, INT));
    private static final MethodHandle MMAP = downcall("mmap", FunctionDescriptor.of(PTR, PTR, LONG, INT, INT, INT, LONG));
    private static final MethodHandle MUNMAP = downcall("munmap", FunctionDescriptor.of(INT, PTR, LONG));
    private static final MethodHandle MADVISE = downcall("madvise", FunctionDescriptor.of(INT, PTR, LONG, INT));
    private static final MethodHandle SOCKET = downcall("socket", FunctionDescriptor.of(INT, INT, INT, INT));
    private static final MethodHandle CONNECT = downcall("connect", FunctionDescriptor.of(INT, INT, PTR, INT));
    private static final MethodHandle SETSOCKOPT = downcall("setsockopt", FunctionDescriptor.of(INT, INT, INT, INT, PTR, INT));
    private static final MethodHandle SHUTDOWN = downcall("shutdown", FunctionDescriptor.of(INT, INT, INT));
    // Stream calls (sockets) on the data path: fast handles too. A call that returned -1 moved
    // nothing, so its capturing repeat is a fresh attempt whose result stands.
    private static final FunctionDescriptor STREAM_READ = FunctionDescriptor.of(LONG, INT, PTR, LONG);
    private static final FunctionDescriptor STREAM_VECTORED = FunctionDescriptor.of(LONG, INT, PTR, INT);
    private static final MethodHandle READ_FAST = fastDowncall("read", STREAM_READ);
    private static final MethodHandle RECV_FAST = fastDowncall("recv", FunctionDescriptor.of(LONG, INT, PTR, LONG, INT));
    /** recv: return at once instead of waiting for data. */
    private static final int MSG_DONTWAIT = 0x40;
    private static final MethodHandle READV_FAST = fastDowncall("readv", STREAM_VECTORED);
    private static final MethodHandle WRITEV_FAST = fastDowncall("writev", STREAM_VECTORED);
    private static final MethodHandle READ = streamRepeatable(downcall("read", STREAM_READ));
    private static final MethodHandle READV = streamRepeatable(downcall("readv", STREAM_VECTORED));
    private static final MethodHandle WRITEV = streamRepeatable(downcall("writev", STREAM_VECTORED));
    /** The offset a stream call does not have, for {@link #repeatCapturing}. */
    private static final long NO_OFFSET = -1;
    private static final MethodHandle GETPAGESIZE = LINKER.downcallHandle(
            LIBC.find("getpagesize").orElseThrow(), FunctionDescriptor.of(INT));

    /** One errno capture buffer per thread: the hot calls must not allocate. */
    private static final ThreadLocal<MemorySegment> CALL_STATE_BUFFER =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CALL_STATE));

    /**
     * More than the JDK's {@code java.lang.invoke.MethodHandle.CUSTOMIZE_THRESHOLD} (127 at most):
     * how often a data-path handle is invoked when its class is initialized, so that the JDK
     * customizes it then ({@link #customizeDataPath}).
     */
    public static final int CUSTOMIZE_CALLS = 128;

    static {
        customizeDataPath();
    }

    /**
     * Invokes every data-path handle {@link #CUSTOMIZE_CALLS} times on descriptor -1 (EBADF: the
     * kernel looks at nothing else), so that the JDK customizes them now. The JDK compiles a
     * handle's own invoker (a hidden class: 33 to 200 KB of heap to build, measured in an
     * interpreted JVM) the 128th time the handle is invoked from interpreted or C1-compiled code;
     * C2 code does not count. When that 128th time comes depends on when the JIT deoptimizes a
     * caller, so a process in steady state could pay it in any second: NBD's 64 KiB writes at depth 1 allocated ~3 B per write in one of the
     * three 1 s iterations of 1 fork in 5 (75 KB: the fast {@code read} handle and its adapter,
     * traced with {@code -Xlog:class+load+cause}). Here it costs the first use of this class a few
     * milliseconds, once.
     */
    private static void customizeDataPath() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment memory = arena.allocate(16, 8);
            MemorySegment state = arena.allocate(CALL_STATE);
            long sum = 0;
            for (int i = 0; i < CUSTOMIZE_CALLS; i++) {
                sum += (long) PREADV_FAST.invokeExact(-1, memory, 1, 0L);
                sum += (long) PWRITEV_FAST.invokeExact(-1, memory, 1, 0L);
                sum += (long) PREAD_FAST.invokeExact(-1, memory, 1L, 0L);
                sum += (long) PWRITE_FAST.invokeExact(-1, memory, 1L, 0L);
                sum += (long) READ_FAST.invokeExact(-1, memory, 1L);
                sum += (long) RECV_FAST.invokeExact(-1, memory, 1L, MSG_DONTWAIT);
                sum += (long) READV_FAST.invokeExact(-1, memory, 1);
                sum += (long) WRITEV_FAST.invokeExact(-1, memory, 1);
                for (MethodHandle capturing : new MethodHandle[] {PREADV, PWRITEV, PREAD, PWRITE, READ, READV, WRITEV}) {
                    sum += (long) capturing.invokeExact(state, -1, memory, 1L, 0L);
                }
            }
            if (sum != -15L * CUSTOMIZE_CALLS) {
                throw new IllegalStateException("a data-path call on descriptor -1 did not fail: " + sum);
            }
        } catch (Throwable t) {
            throw new ExceptionInInitializerError(t);
        }
    }

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor, Linker.Option... extra) {
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = CAPTURE;
        System.arraycopy(extra, 0, options, 1, extra.length);
        return LINKER.downcallHandle(symbol(name), descriptor, options);
    }

    /** Linked without errno capture: nothing to slice, so no allocation whatever the JIT inlines. */
    private static MethodHandle fastDowncall(String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(symbol(name), descriptor);
    }

    private static MemorySegment symbol(String name) {
        return LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no symbol " + name));
    }

    /**
     * One shape, {@code (state, fd, memory, long, offset) long}, for the capturing handles of all
     * four data-path calls, so one slow path serves them; the iovec count narrows back to int.
     */
    private static MethodHandle repeatable(MethodHandle capturing) {
        return MethodHandles.explicitCastArguments(capturing, MethodType.methodType(long.class,
                MemorySegment.class, int.class, MemorySegment.class, long.class, long.class));
    }

    /** A stream call's capturing handle in the positional calls' shape, with an ignored offset. */
    private static MethodHandle streamRepeatable(MethodHandle capturing) {
        return repeatable(MethodHandles.dropArguments(capturing, capturing.type().parameterCount(), long.class));
    }

    /**
     * The slow path of a data-path call whose fast attempt returned -1: the same positional call
     * again, capturing errno, until it succeeds or fails with something other than EINTR.
     */
    private static long repeatCapturing(MethodHandle capturing, String call, int fd, MemorySegment memory,
                                        long countOrLength, long offset) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            while (true) {
                long n = (long) capturing.invokeExact(state, fd, memory, countOrLength, offset);
                if (n >= 0) {
                    return n;
                }
                int err = errno(state);
                if (err != Errno.EINTR) {
                    throw new PosixException(call + "(fd " + fd + (offset == NO_OFFSET ? "" : ", offset " + offset) + ")",
                            err);
                }
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException("unexpected checked exception from a downcall", t);
    }

    /** {@return the system page size in bytes} */
    public static long pageSize() {
        try {
            return (int) GETPAGESIZE.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Opens a file ({@code open(2)}). {@code O_CLOEXEC} is always added.
     *
     * @param path  the file
     * @param flags {@code O_*} flags
     * @param mode  permission bits used when the file is created
     * @return the new file descriptor, which the caller owns and must {@link #close}
     * @throws PosixException if the call fails, for example {@code open(/x): ENOENT (No such file or directory)}
     */
    public static int open(Path path, int flags, int mode) throws PosixException {
        String name = path.toString();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cPath = arena.allocateFrom(name);
            MemorySegment state = CALL_STATE_BUFFER.get();
            while (true) {
                int fd = (int) OPEN.invokeExact(state, cPath, flags | O_CLOEXEC, mode);
                if (fd >= 0) {
                    return fd;
                }
                int err = errno(state);
                if (err != Errno.EINTR) {
                    throw new PosixException("open(" + name + ")", err);
                }
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Closes a file descriptor ({@code close(2)}). Not retried on EINTR: Linux releases the
     * descriptor even then, and a retry could close a descriptor another thread just opened.
     *
     * @param fd the descriptor
     * @throws PosixException if the call fails (EIO here means earlier writes may be lost)
     */
    public static void close(int fd) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) CLOSE.invokeExact(state, fd);
            if (r != 0) {
                int err = errno(state);
                if (err != Errno.EINTR) {
                    throw new PosixException("close(fd " + fd + ")", err);
                }
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Scattering read at an offset ({@code preadv(2)}). One call: the result may be short.
     *
     * @param fd     the descriptor
     * @param iovecs a native {@code struct iovec} array
     * @param count  how many entries to use, at most {@link #IOV_MAX}
     * @param offset the file offset
     * @return bytes read; 0 at end of file
     * @throws PosixException if the call fails
     */
    public static long preadv(int fd, MemorySegment iovecs, int count, long offset) throws PosixException {
        long n;
        try {
            n = (long) PREADV_FAST.invokeExact(fd, iovecs, count, offset);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return n >= 0 ? n : repeatCapturing(PREADV, "preadv", fd, iovecs, count, offset);
    }

    /**
     * Gathering write at an offset ({@code pwritev(2)}). One call: the result may be short.
     *
     * @param fd     the descriptor
     * @param iovecs a native {@code struct iovec} array
     * @param count  how many entries to use, at most {@link #IOV_MAX}
     * @param offset the file offset
     * @return bytes written
     * @throws PosixException if the call fails, for example ENOSPC
     */
    public static long pwritev(int fd, MemorySegment iovecs, int count, long offset) throws PosixException {
        long n;
        try {
            n = (long) PWRITEV_FAST.invokeExact(fd, iovecs, count, offset);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return n >= 0 ? n : repeatCapturing(PWRITEV, "pwritev", fd, iovecs, count, offset);
    }

    /**
     * Reads into native memory at an offset ({@code pread(2)}). One call: the result may be short.
     *
     * @param fd     the descriptor
     * @param dst    native memory to fill; all of it is offered to the call
     * @param offset the file offset
     * @return bytes read; 0 at end of file
     * @throws PosixException           if the call fails
     * @throws IllegalArgumentException if {@code dst} is a heap segment
     */
    public static long pread(int fd, MemorySegment dst, long offset) throws PosixException {
        requireNative(dst);
        long n;
        try {
            n = (long) PREAD_FAST.invokeExact(fd, dst, dst.byteSize(), offset);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return n >= 0 ? n : repeatCapturing(PREAD, "pread", fd, dst, dst.byteSize(), offset);
    }

    /**
     * Writes native memory at an offset ({@code pwrite(2)}). One call: the result may be short.
     *
     * @param fd     the descriptor
     * @param src    native memory to write; all of it is offered to the call
     * @param offset the file offset
     * @return bytes written
     * @throws PosixException           if the call fails
     * @throws IllegalArgumentException if {@code src} is a heap segment
     */
    public static long pwrite(int fd, MemorySegment src, long offset) throws PosixException {
        requireNative(src);
        long n;
        try {
            n = (long) PWRITE_FAST.invokeExact(fd, src, src.byteSize(), offset);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return n >= 0 ? n : repeatCapturing(PWRITE, "pwrite", fd, src, src.byteSize(), offset);
    }

    /**
     * Flushes written data to stable storage ({@code fdatasync(2)}).
     *
     * @param fd the descriptor
     * @throws PosixException if the call fails (EIO: data may be lost)
     */
    public static void fdatasync(int fd) throws PosixException {
        simple(FDATASYNC, fd, "fdatasync");
    }

    /**
     * Flushes data and metadata to stable storage ({@code fsync(2)}).
     *
     * @param fd the descriptor
     * @throws PosixException if the call fails
     */
    public static void fsync(int fd) throws PosixException {
        simple(FSYNC, fd, "fsync");
    }

    private static void simple(MethodHandle handle, int fd, String name) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            while (true) {
                int r = (int) handle.invokeExact(state, fd);
                if (r == 0) {
                    return;
                }
                int err = errno(state);
                if (err != Errno.EINTR) {
                    throw new PosixException(name + "(fd " + fd + ")", err);
                }
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Manipulates allocated space ({@code fallocate(2)}), for example punching a hole with
     * {@code FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}.
     *
     * @param fd     the descriptor
     * @param mode   {@code FALLOC_FL_*} flags
     * @param offset start of the range
     * @param length length of the range
     * @throws PosixException if the call fails; EOPNOTSUPP when the file system cannot do it
     */
    public static void fallocate(int fd, int mode, long offset, long length) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            while (true) {
                int r = (int) FALLOCATE.invokeExact(state, fd, mode, offset, length);
                if (r == 0) {
                    return;
                }
                int err = errno(state);
                if (err != Errno.EINTR) {
                    throw new PosixException("fallocate(fd " + fd + ", offset " + offset + ", length " + length + ")", err);
                }
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Sets a file's size ({@code ftruncate(2)}).
     *
     * @param fd   the descriptor
     * @param size the new size in bytes
     * @throws PosixException if the call fails
     */
    public static void ftruncate(int fd, long size) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            while (true) {
                int r = (int) FTRUNCATE.invokeExact(state, fd, size);
                if (r == 0) {
                    return;
                }
                int err = errno(state);
                if (err != Errno.EINTR) {
                    throw new PosixException("ftruncate(fd " + fd + ", " + size + ")", err);
                }
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * The size of an open file or block device, from {@code lseek(fd, 0, SEEK_END)} (which, unlike
     * {@code fstat}, also gives a block device's size). The descriptor's own offset moves, which the
     * positional calls here never use.
     *
     * @param fd the descriptor
     * @return the size in bytes
     * @throws PosixException if the call fails
     */
    public static long fileSize(int fd) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            long r = (long) LSEEK.invokeExact(state, fd, 0L, SEEK_END);
            if (r < 0) {
                throw new PosixException("lseek(fd " + fd + ", SEEK_END)", errno(state));
            }
            return r;
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fcntl: get the file status flags (access mode and {@code O_*} flags). */
    private static final int F_GETFL = 3;

    /**
     * The file status flags of an open descriptor ({@code fcntl(fd, F_GETFL)}): its access mode
     * ({@code flags & O_ACCMODE} is {@link #O_RDONLY}, {@link #O_WRONLY} or {@link #O_RDWR}) and
     * flags such as {@link #O_DIRECT}.
     *
     * @param fd the descriptor
     * @return the flags
     * @throws PosixException if the call fails (EBADF: not an open descriptor)
     */
    public static int statusFlags(int fd) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) FCNTL.invokeExact(state, fd, F_GETFL);
            if (r < 0) {
                throw new PosixException("fcntl(fd " + fd + ", F_GETFL)", errno(state));
            }
            return r;
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Applies or removes an advisory whole-file lock ({@code flock(2)}).
     *
     * @param fd        the descriptor
     * @param operation {@code LOCK_SH}, {@code LOCK_EX} or {@code LOCK_UN}, optionally {@code | LOCK_NB}
     * @throws PosixException if the call fails; EAGAIN (EWOULDBLOCK) when {@code LOCK_NB} was given
     *                        and another open file description holds a conflicting lock
     */
    public static void flock(int fd, int operation) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            while (true) {
                int r = (int) FLOCK.invokeExact(state, fd, operation);
                if (r == 0) {
                    return;
                }
                int err = errno(state);
                if (err != Errno.EINTR) {
                    throw new PosixException("flock(fd " + fd + ")", err);
                }
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Creates an anonymous file in memory ({@code memfd_create(2)}) that other processes can map
     * when given the descriptor (or {@code /proc/PID/fd/N}).
     *
     * @param name  a name for debugging, shown in {@code /proc/PID/fd}
     * @param flags {@code MFD_*} flags; {@code MFD_CLOEXEC} is always added
     * @return the new descriptor, owned by the caller
     * @throws PosixException if the call fails
     */
    public static int memfdCreate(String name, int flags) throws PosixException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cName = arena.allocateFrom(name);
            MemorySegment state = CALL_STATE_BUFFER.get();
            int fd = (int) MEMFD_CREATE.invokeExact(state, cName, flags | MFD_CLOEXEC);
            if (fd < 0) {
                throw new PosixException("memfd_create(" + name + ")", errno(state));
            }
            return fd;
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Maps memory ({@code mmap(2)}) at an address of the kernel's choice.
     *
     * @param length bytes to map
     * @param prot   {@code PROT_*}
     * @param flags  {@code MAP_*}
     * @param fd     the file to map, or -1 for anonymous memory
     * @param offset offset in the file, a multiple of the page size
     * @return the address of the mapping as a zero-length segment; the caller reinterprets it and
     *         owns the mapping ({@link #munmap})
     * @throws PosixException if the call fails, for example ENOMEM
     */
    public static MemorySegment mmap(long length, int prot, int flags, int fd, long offset) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            MemorySegment p = (MemorySegment) MMAP.invokeExact(state, MemorySegment.NULL, length, prot, flags, fd, offset);
            if (p.address() == MAP_FAILED) {
                throw new PosixException("mmap(" + length + " bytes" + (fd >= 0 ? ", fd " + fd : "") + ")", errno(state));
            }
            return p;
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Unmaps memory ({@code munmap(2)}).
     *
     * @param address the start of the mapping (only its address is used)
     * @param length  bytes to unmap
     * @throws PosixException if the call fails
     */
    public static void munmap(MemorySegment address, long length) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) MUNMAP.invokeExact(state, MemorySegment.ofAddress(address.address()), length);
            if (r != 0) {
                throw new PosixException("munmap(" + length + " bytes)", errno(state));
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Gives the kernel advice about a range of memory ({@code madvise(2)}).
     *
     * @param address start of the range, page aligned (only its address is used)
     * @param length  bytes in the range
     * @param advice  {@code MADV_*}
     * @throws PosixException if the call fails; EINVAL when the kernel does not know the advice
     *                        (for example MADV_HUGEPAGE without transparent huge page support)
     */
    public static void madvise(MemorySegment address, long length, int advice) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) MADVISE.invokeExact(state, MemorySegment.ofAddress(address.address()), length, advice);
            if (r != 0) {
                throw new PosixException("madvise(" + length + " bytes, advice " + advice + ")", errno(state));
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Creates a socket ({@code socket(2)}).
     *
     * @param domain   {@link #AF_UNIX}, {@link #AF_INET} or {@link #AF_INET6}
     * @param type     {@link #SOCK_STREAM}, optionally with {@link #SOCK_CLOEXEC}
     * @param protocol 0 for the domain's default
     * @return the descriptor
     * @throws PosixException if the call fails (EMFILE, EAFNOSUPPORT...)
     */
    public static int socket(int domain, int type, int protocol) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int fd = (int) SOCKET.invokeExact(state, domain, type, protocol);
            if (fd < 0) {
                throw new PosixException("socket(domain " + domain + ")", errno(state));
            }
            return fd;
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Connects a socket ({@code connect(2)}), blocking; with {@link #SO_SNDTIMEO} set, a connect
     * that takes longer fails with EINPROGRESS. EINTR is reported, not retried: an interrupted
     * connect goes on in the background and cannot simply be repeated.
     *
     * @param fd      the socket
     * @param address a native {@code struct sockaddr_*}; all of it is passed as the length
     * @throws PosixException if the call fails (ECONNREFUSED, ENOENT for a missing Unix socket...)
     */
    public static void connect(int fd, MemorySegment address) throws PosixException {
        requireNative(address);
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) CONNECT.invokeExact(state, fd, address, (int) address.byteSize());
            if (r != 0) {
                throw new PosixException("connect(fd " + fd + ")", errno(state));
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Sets a socket option ({@code setsockopt(2)}).
     *
     * @param fd    the socket
     * @param level {@link #SOL_SOCKET} or {@link #IPPROTO_TCP}
     * @param name  the option
     * @param value the option's value in native memory (an int, a {@code struct timeval}...)
     * @throws PosixException if the call fails
     */
    public static void setsockopt(int fd, int level, int name, MemorySegment value) throws PosixException {
        requireNative(value);
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) SETSOCKOPT.invokeExact(state, fd, level, name, value, (int) value.byteSize());
            if (r != 0) {
                throw new PosixException("setsockopt(fd " + fd + ", option " + name + ")", errno(state));
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Shuts a socket down ({@code shutdown(2)}); with {@link #SHUT_RDWR}, threads blocked reading
     * or writing it return at once, unlike with close.
     *
     * @param fd  the socket
     * @param how {@link #SHUT_RDWR} or {@link #SHUT_WR}
     * @throws PosixException if the call fails (ENOTCONN if it never connected)
     */
    public static void shutdown(int fd, int how) throws PosixException {
        try {
            MemorySegment state = CALL_STATE_BUFFER.get();
            int r = (int) SHUTDOWN.invokeExact(state, fd, how);
            if (r != 0) {
                throw new PosixException("shutdown(fd " + fd + ")", errno(state));
            }
        } catch (PosixException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Reads from a descriptor's current position or a socket ({@code read(2)}). One call: the
     * result may be short; EINTR is retried.
     *
     * @param fd  the descriptor
     * @param dst native memory to fill; all of it is offered to the call
     * @return bytes read; 0 at end of file or when the peer closed the connection
     * @throws PosixException if the call fails (EAGAIN after {@link #SO_RCVTIMEO})
     */
    public static long read(int fd, MemorySegment dst) throws PosixException {
        requireNative(dst);
        long n;
        try {
            n = (long) READ_FAST.invokeExact(fd, dst, dst.byteSize());
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return n >= 0 ? n : repeatCapturing(READ, "read", fd, dst, dst.byteSize(), NO_OFFSET);
    }

    /**
     * Takes whatever a socket has already received, without waiting ({@code recv(2)} with
     * {@code MSG_DONTWAIT}). For polling before a blocking read: a failure is not reported here,
     * since the blocking read that follows meets it again and reports it with its errno.
     *
     * @param fd  the socket
     * @param dst native memory to fill; all of it is offered to the call
     * @return bytes read; 0 when the peer closed the connection; -1 when nothing is there yet or
     *     the call failed
     */
    public static long recvNow(int fd, MemorySegment dst) {
        requireNative(dst);
        try {
            return (long) RECV_FAST.invokeExact(fd, dst, dst.byteSize(), MSG_DONTWAIT);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Scattering read from a descriptor's current position or a socket ({@code readv(2)}). One
     * call: the result may be short; EINTR is retried.
     *
     * @param fd     the descriptor
     * @param iovecs a native {@code struct iovec} array
     * @param count  how many entries to use, at most {@link #IOV_MAX}
     * @return bytes read; 0 at end of file or when the peer closed the connection
     * @throws PosixException if the call fails
     */
    public static long readv(int fd, MemorySegment iovecs, int count) throws PosixException {
        long n;
        try {
            n = (long) READV_FAST.invokeExact(fd, iovecs, count);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return n >= 0 ? n : repeatCapturing(READV, "readv", fd, iovecs, count, NO_OFFSET);
    }

    /**
     * Gathering write to a descriptor's current position or a socket ({@code writev(2)}). One
     * call: the result may be short; EINTR is retried. (The JVM ignores SIGPIPE: writing to a
     * closed connection fails with EPIPE.)
     *
     * @param fd     the descriptor
     * @param iovecs a native {@code struct iovec} array
     * @param count  how many entries to use, at most {@link #IOV_MAX}
     * @return bytes written
     * @throws PosixException if the call fails (EPIPE, ECONNRESET, EAGAIN after {@link #SO_SNDTIMEO})
     */
    public static long writev(int fd, MemorySegment iovecs, int count) throws PosixException {
        long n;
        try {
            n = (long) WRITEV_FAST.invokeExact(fd, iovecs, count);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return n >= 0 ? n : repeatCapturing(WRITEV, "writev", fd, iovecs, count, NO_OFFSET);
    }

    private static void requireNative(MemorySegment segment) {
        if (!segment.isNative()) {
            throw new IllegalArgumentException("system calls need native memory, not a heap segment");
        }
    }
}
