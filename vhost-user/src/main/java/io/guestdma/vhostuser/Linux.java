package io.guestdma.vhostuser;

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
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The system calls a vhost-user back end needs that NIO cannot make: Unix-domain stream sockets
 * whose messages carry file descriptors ({@code SCM_RIGHTS} through {@code recvmsg}/{@code sendmsg}),
 * eventfds, and {@code poll}. Each wrapper captures errno with {@link Linker.Option#captureCallState},
 * retries on EINTR and throws a {@link PosixException} naming the call. None is linked critical:
 * they block.
 *
 * <p>Descriptors received are created close-on-exec ({@code MSG_CMSG_CLOEXEC}) and belong to the
 * caller; a message carrying more than the caller allowed is truncated by the kernel, which closes
 * the excess, and reported through {@link Received#truncated()}. Layouts are Linux x86-64/aarch64.
 */
// Restricted FFM methods are this class's purpose.
@SuppressWarnings("restricted")
final class Linux {
    private Linux() {
    }

    static final int POLLIN = 1;
    static final int POLLERR = 8;
    static final int POLLHUP = 0x10;
    static final int POLLNVAL = 0x20;

    private static final int AF_UNIX = 1;
    private static final int SOCK_STREAM = 1;
    private static final int SOCK_CLOEXEC = 02000000;
    private static final int SOL_SOCKET = 1;
    private static final int SCM_RIGHTS = 1;
    private static final int MSG_CTRUNC = 0x8;
    private static final int MSG_NOSIGNAL = 0x4000;
    private static final int MSG_CMSG_CLOEXEC = 0x40000000;
    private static final int EFD_CLOEXEC = 02000000;
    private static final int SHUT_RDWR = 2;
    /** sockaddr_un: sa_family_t plus 108 bytes of path. */
    private static final int SOCKADDR_UN_SIZE = 110;
    private static final int SUN_PATH_MAX = 107;
    /** struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type; data follows, 8-byte aligned. */
    private static final int CMSG_HEADER = 16;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE = Linker.Option.captureCallState("errno");
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT;
    private static final java.lang.foreign.AddressLayout PTR = ValueLayout.ADDRESS;

    private static final MethodHandle SOCKET = downcall("socket", FunctionDescriptor.of(INT, INT, INT, INT));
    private static final MethodHandle BIND = downcall("bind", FunctionDescriptor.of(INT, INT, PTR, INT));
    private static final MethodHandle LISTEN = downcall("listen", FunctionDescriptor.of(INT, INT, INT));
    private static final MethodHandle ACCEPT4 = downcall("accept4", FunctionDescriptor.of(INT, INT, PTR, PTR, INT));
    private static final MethodHandle CONNECT = downcall("connect", FunctionDescriptor.of(INT, INT, PTR, INT));
    private static final MethodHandle RECVMSG = downcall("recvmsg", FunctionDescriptor.of(LONG, INT, PTR, INT));
    private static final MethodHandle SENDMSG = downcall("sendmsg", FunctionDescriptor.of(LONG, INT, PTR, INT));
    private static final MethodHandle SHUTDOWN = downcall("shutdown", FunctionDescriptor.of(INT, INT, INT));
    private static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(INT, INT));
    private static final MethodHandle EVENTFD = downcall("eventfd", FunctionDescriptor.of(INT, INT, INT));
    private static final MethodHandle READ = downcall("read", FunctionDescriptor.of(LONG, INT, PTR, LONG));
    private static final MethodHandle WRITE = downcall("write", FunctionDescriptor.of(LONG, INT, PTR, LONG));
    private static final MethodHandle POLL = downcall("poll", FunctionDescriptor.of(INT, PTR, LONG, INT));

    /*
     * The data path's calls (a kick read, a call write, the kick thread's poll) once per batch of
     * requests: linked without captureCallState, whose state segment would be an allocation per
     * call, and invoked exactly on segments the caller keeps. On failure they repeat the call
     * through the capturing handles above, which read errno, retry EINTR and report the rest.
     */
    private static final MethodHandle READ_PLAIN = plainDowncall("read", FunctionDescriptor.of(LONG, INT, PTR, LONG));
    private static final MethodHandle WRITE_PLAIN = plainDowncall("write", FunctionDescriptor.of(LONG, INT, PTR, LONG));
    private static final MethodHandle POLL_PLAIN = plainDowncall("poll", FunctionDescriptor.of(INT, PTR, LONG, INT));

    static {
        customizeDataPath();
    }

    /**
     * Invokes the data path's handles 128 times each with nothing to do (descriptor -1, an empty
     * poll set), so that the JDK customizes them at class initialization rather than at their
     * 128th invocation from interpreted or C1 code, whose second depends on the JIT (see
     * {@code io.guestdma.memory.internal.Posix}: a hidden class built on the heap, tens of KB).
     */
    private static void customizeDataPath() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment eight = arena.allocate(8, 8);
            long sum = 0;
            for (int i = 0; i < 128; i++) {
                sum += (long) READ_PLAIN.invokeExact(-1, eight, 8L);
                sum += (long) WRITE_PLAIN.invokeExact(-1, eight, 8L);
                sum += (int) POLL_PLAIN.invokeExact(eight, 0L, 0);
            }
            if (sum != -2L * 128) {
                throw new IllegalStateException("an eventfd call on descriptor -1 did not fail: " + sum);
            }
        } catch (Throwable t) {
            throw new ExceptionInInitializerError(t);
        }
    }

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(symbol(name), descriptor, CAPTURE);
    }

    private static MethodHandle plainDowncall(String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(symbol(name), descriptor);
    }

    private static MemorySegment symbol(String name) {
        return LIBC.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
    }

    /** What {@link #receive} got: bytes, descriptors (owned by the caller), and whether any were cut off. */
    record Received(int bytes, int[] fds, boolean truncated) {
    }

    /**
     * {@return a new Unix stream socket bound to {@code path} and listening}
     *
     * @param path the socket file; must not exist
     * @throws PosixException if a call fails (EADDRINUSE if the path exists)
     * @throws IllegalArgumentException if the path is longer than a sockaddr_un holds
     */
    static int listen(Path path) throws PosixException {
        int fd = socket();
        try {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment address = address(arena, path);
                invoke("bind(" + path + ")", BIND, fd, address, SOCKADDR_UN_SIZE);
                invoke("listen(" + path + ")", LISTEN, fd, 1);
            }
            return fd;
        } catch (PosixException | RuntimeException e) {
            closeQuietly(fd);
            throw e;
        }
    }

    /**
     * {@return a connected Unix stream socket}
     *
     * @param path the listener's socket file
     * @throws PosixException if a call fails (ENOENT, ECONNREFUSED)
     * @throws IllegalArgumentException if the path is longer than a sockaddr_un holds
     */
    static int connect(Path path) throws PosixException {
        int fd = socket();
        try (Arena arena = Arena.ofConfined()) {
            invoke("connect(" + path + ")", CONNECT, fd, address(arena, path), SOCKADDR_UN_SIZE);
            return fd;
        } catch (PosixException | RuntimeException e) {
            closeQuietly(fd);
            throw e;
        }
    }

    /**
     * {@return the next connection's descriptor, close-on-exec}
     *
     * @param listener a listening socket
     * @throws PosixException if accept fails (EINVAL once the listener was shut down)
     */
    static int accept(int listener) throws PosixException {
        return (int) invoke("accept4(fd " + listener + ")", ACCEPT4, listener, MemorySegment.NULL, MemorySegment.NULL, SOCK_CLOEXEC);
    }

    private static int socket() throws PosixException {
        return (int) invoke("socket(AF_UNIX)", SOCKET, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }

    private static MemorySegment address(Arena arena, Path path) {
        byte[] name = path.toString().getBytes(StandardCharsets.UTF_8);
        if (name.length > SUN_PATH_MAX || name.length == 0) {
            throw new IllegalArgumentException("socket path must have 1 to " + SUN_PATH_MAX + " bytes: " + path);
        }
        MemorySegment address = arena.allocate(SOCKADDR_UN_SIZE, 8);
        address.set(SHORT, 0, (short) AF_UNIX);
        MemorySegment.copy(name, 0, address, ValueLayout.JAVA_BYTE, 2, name.length);
        return address;
    }

    /**
     * Receives up to {@code buffer.byteSize()} bytes and the descriptors sent with them.
     *
     * @param fd       the socket
     * @param buffer   native memory for the bytes
     * @param maxFds   the most descriptors accepted; more are closed by the kernel
     * @return the byte count (0 at end of stream) and the descriptors
     * @throws PosixException if recvmsg fails
     */
    static Received receive(int fd, MemorySegment buffer, int maxFds) throws PosixException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment iov = arena.allocate(16, 8);
            iov.set(PTR, 0, buffer);
            iov.set(LONG, 8, buffer.byteSize());
            long controlSize = CMSG_HEADER + (((long) maxFds * 4 + 7) & ~7L);
            MemorySegment control = arena.allocate(controlSize, 8);
            MemorySegment header = arena.allocate(56, 8);
            header.set(PTR, 16, iov);
            header.set(LONG, 24, 1);
            header.set(PTR, 32, control);
            header.set(LONG, 40, controlSize);
            long n = (long) invoke("recvmsg(fd " + fd + ")", RECVMSG, fd, header, MSG_CMSG_CLOEXEC);
            int flags = header.get(INT, 48);
            long controlLength = header.get(LONG, 40);
            int[] fds = new int[0];
            // Walk every control message: each SCM_RIGHTS one installed descriptors we now own.
            long at = 0;
            while (at + CMSG_HEADER <= controlLength) {
                long length = control.get(LONG, at);
                if (length < CMSG_HEADER || at + length > controlLength) {
                    break;
                }
                int level = control.get(INT, at + 8);
                int type = control.get(INT, at + 12);
                if (level == SOL_SOCKET && type == SCM_RIGHTS) {
                    int count = (int) ((length - CMSG_HEADER) / 4);
                    int[] more = new int[fds.length + count];
                    System.arraycopy(fds, 0, more, 0, fds.length);
                    for (int i = 0; i < count; i++) {
                        more[fds.length + i] = control.get(INT, at + CMSG_HEADER + 4L * i);
                    }
                    fds = more;
                }
                at += (length + 7) & ~7L;
            }
            return new Received((int) n, fds, (flags & MSG_CTRUNC) != 0);
        }
    }

    /**
     * Sends all of {@code bytes}, with {@code fds} attached to the first byte. Never raises SIGPIPE.
     *
     * @param fd    the socket
     * @param bytes what to send
     * @param fds   descriptors to pass (borrowed), possibly none
     * @throws PosixException if sendmsg fails (EPIPE when the peer is gone)
     */
    static void send(int fd, byte[] bytes, int... fds) throws PosixException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(Math.max(1, bytes.length));
            MemorySegment.copy(bytes, 0, data, ValueLayout.JAVA_BYTE, 0, bytes.length);
            long sent = 0;
            boolean first = true;
            while (sent < bytes.length || first) {
                MemorySegment iov = arena.allocate(16, 8);
                iov.set(PTR, 0, data.asSlice(sent));
                iov.set(LONG, 8, bytes.length - sent);
                MemorySegment header = arena.allocate(56, 8);
                header.set(PTR, 16, iov);
                header.set(LONG, 24, 1);
                if (first && fds.length > 0) {
                    long controlSize = CMSG_HEADER + (((long) fds.length * 4 + 7) & ~7L);
                    MemorySegment control = arena.allocate(controlSize, 8);
                    control.set(LONG, 0, CMSG_HEADER + 4L * fds.length);
                    control.set(INT, 8, SOL_SOCKET);
                    control.set(INT, 12, SCM_RIGHTS);
                    for (int i = 0; i < fds.length; i++) {
                        control.set(INT, CMSG_HEADER + 4L * i, fds[i]);
                    }
                    header.set(PTR, 32, control);
                    header.set(LONG, 40, controlSize);
                }
                first = false;
                sent += (long) invoke("sendmsg(fd " + fd + ")", SENDMSG, fd, header, MSG_NOSIGNAL);
            }
        }
    }

    /**
     * Shuts both directions of a socket down: threads blocked in recvmsg or accept on it return.
     *
     * @param fd the socket
     */
    static void shutdownQuietly(int fd) {
        try {
            invoke("shutdown", SHUTDOWN, fd, SHUT_RDWR);
        } catch (PosixException e) {
            // Not connected any more: nothing to wake.
        }
    }

    /**
     * {@return a new eventfd, counter 0, close-on-exec}
     *
     * @throws PosixException if eventfd fails (EMFILE)
     */
    static int eventfd() throws PosixException {
        return (int) invoke("eventfd", EVENTFD, 0, EFD_CLOEXEC);
    }

    /**
     * Adds 1 to an eventfd's counter.
     *
     * @param fd the eventfd
     * @throws PosixException if write fails
     */
    static void signal(int fd) throws PosixException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment one = arena.allocate(LONG);
            one.set(LONG, 0, 1L);
            invoke("write(eventfd " + fd + ")", WRITE, fd, one, 8L);
        }
    }

    /**
     * {@return an 8-byte native value of 1 for {@link #signal(int, MemorySegment)}, freed by the GC}
     */
    static MemorySegment eventOne() {
        MemorySegment one = Arena.ofAuto().allocate(LONG);
        one.set(LONG, 0, 1L);
        return one;
    }

    /**
     * Adds 1 to an eventfd's counter without allocating.
     *
     * @param fd  the eventfd
     * @param one a native 8-byte segment holding 1 ({@link #eventOne()})
     * @throws PosixException if write fails
     */
    static void signal(int fd, MemorySegment one) throws PosixException {
        long written;
        try {
            written = (long) WRITE_PLAIN.invokeExact(fd, one, 8L);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (written != 8) {
            // Nothing was added: the capturing call adds the 1, or says why it cannot.
            invoke("write(eventfd " + fd + ")", WRITE, fd, one, 8L);
        }
    }

    /**
     * Reads (and so resets) an eventfd's counter without allocating; blocks while it is 0.
     *
     * @param fd    the eventfd
     * @param value a native 8-byte segment to read into
     * @return the counter
     * @throws PosixException if read fails
     */
    static long drain(int fd, MemorySegment value) throws PosixException {
        long read;
        try {
            read = (long) READ_PLAIN.invokeExact(fd, value, 8L);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (read != 8) {
            invoke("read(eventfd " + fd + ")", READ, fd, value, 8L);
        }
        return value.get(LONG, 0);
    }

    /**
     * {@return a native pollfd array for {@link #poll(MemorySegment, int, int)}: each descriptor
     * watched for POLLIN, freed with {@code arena}}
     *
     * @param arena where it lives
     * @param fds   the descriptors
     */
    static MemorySegment pollSet(Arena arena, int... fds) {
        MemorySegment set = arena.allocate(8L * fds.length, 8);
        for (int i = 0; i < fds.length; i++) {
            set.set(INT, 8L * i, fds[i]);
            set.set(SHORT, 8L * i + 4, (short) POLLIN);
        }
        return set;
    }

    /**
     * {@return the events poll returned for entry {@code i} of a {@link #pollSet}}
     *
     * @param set the set
     * @param i   the entry
     */
    static short revents(MemorySegment set, int i) {
        return set.get(SHORT, 8L * i + 6);
    }

    /**
     * Waits without allocating until a descriptor of a {@link #pollSet} is readable or failed.
     *
     * @param set       the set; its revents are overwritten
     * @param count     its entries
     * @param timeoutMs how long to wait, -1 for ever
     * @return how many entries have events (0 on timeout)
     * @throws PosixException if poll fails
     */
    static int poll(MemorySegment set, int count, int timeoutMs) throws PosixException {
        int ready;
        try {
            ready = (int) POLL_PLAIN.invokeExact(set, (long) count, timeoutMs);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (ready < 0) {
            // poll changes nothing but revents: asking again through the capturing handle is safe.
            ready = (int) invoke("poll", POLL, set, (long) count, timeoutMs);
        }
        return ready;
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            throw r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalStateException("a downcall threw a checked exception", t);
    }

    /**
     * Reads (and so resets) an eventfd's counter; blocks while it is 0.
     *
     * @param fd the eventfd
     * @return the counter
     * @throws PosixException if read fails
     */
    static long drain(int fd) throws PosixException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(LONG);
            invoke("read(eventfd " + fd + ")", READ, fd, value, 8L);
            return value.get(LONG, 0);
        }
    }

    /**
     * Waits until one of {@code fds} is readable or failed.
     *
     * @param fds         descriptors to watch for POLLIN
     * @param revents     filled with each descriptor's returned events
     * @param timeoutMs   how long to wait, -1 for ever
     * @return how many descriptors have events (0 on timeout)
     * @throws PosixException if poll fails
     */
    static int poll(int[] fds, short[] revents, int timeoutMs) throws PosixException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment set = pollSet(arena, fds);
            int n = (int) invoke("poll", POLL, set, (long) fds.length, timeoutMs);
            for (int i = 0; i < fds.length; i++) {
                revents[i] = revents(set, i);
            }
            return n;
        }
    }

    /**
     * Closes a descriptor; errors (other than EINTR, after which Linux has closed it) are reported.
     *
     * @param fd the descriptor
     * @throws PosixException if close fails with EBADF or EIO
     */
    static void close(int fd) throws PosixException {
        MemorySegment state = Arena.ofAuto().allocate(CALL_STATE);
        int r = (int) call(CLOSE, new Object[] {state, fd});
        // Never retried: on Linux the descriptor is gone even when close reports EINTR.
        if (r < 0 && (int) ERRNO.get(state, 0L) != Errno.EINTR) {
            throw new PosixException("close(fd " + fd + ")", (int) ERRNO.get(state, 0L));
        }
    }

    /**
     * Closes a descriptor, ignoring errors (for cleanup paths where another error is reported).
     *
     * @param fd the descriptor; negative values are ignored
     */
    static void closeQuietly(int fd) {
        if (fd < 0) {
            return;
        }
        try {
            close(fd);
        } catch (PosixException e) {
            // Already reporting something else, or closing a descriptor that was already bad.
        }
    }

    /** Runs a capturing downcall until it returns something other than -1/EINTR; returns its result. */
    private static Object invoke(String call, MethodHandle handle, Object... arguments) throws PosixException {
        MemorySegment state = Arena.ofAuto().allocate(CALL_STATE);
        Object[] all = new Object[arguments.length + 1];
        all[0] = state;
        System.arraycopy(arguments, 0, all, 1, arguments.length);
        while (true) {
            Object result = call(handle, all);
            long value = result instanceof Integer i ? i : (Long) result;
            if (value != -1) {
                return result;
            }
            int errno = (int) ERRNO.get(state, 0L);
            if (errno != Errno.EINTR) {
                throw new PosixException(call, errno);
            }
        }
    }

    private static Object call(MethodHandle handle, Object[] arguments) {
        try {
            return handle.invokeWithArguments(arguments);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
