package io.guestdma.memory.internal;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * A connected stream socket owned through its file descriptor, so that vectored socket I/O can
 * take an {@link io.guestdma.memory.IoVector}'s native {@code struct iovec} array as it is:
 * {@code writev}/{@code readv} straight from and into guest memory, no buffer objects, nothing
 * allocated per call (NIO's gathering calls allocate per buffer per call).
 *
 * <p>The descriptor number must never be used after {@link #close()}, when the kernel may give it
 * to another file: the owner closes only once no thread can still use it. To wake threads
 * blocked on the socket, {@link #shutdown()} (which close would not do).
 */
public final class SocketFd {
    private static final int UNIX_PATH_MAX = 108;

    private final int fd;
    /** Guarded by this, like closed: a shutdown racing the close must not hit a reused number. */
    private boolean shut;
    private boolean closed;

    private SocketFd(int fd) {
        this.fd = fd;
    }

    /**
     * Connects, with {@code SO_SNDTIMEO} and {@code SO_RCVTIMEO} set to the timeout so that the
     * connect and every later call fail rather than block for longer ({@link #clearTimeouts()}
     * lifts them).
     *
     * @param target       a Unix-domain or resolved IPv4/IPv6 address
     * @param timeoutNanos the bound on the connect and on every later call
     * @return the connected socket, owned by the caller
     * @throws IOException naming the target and the errno (ECONNREFUSED, ENOENT...), or saying the
     *                     connect timed out
     */
    public static SocketFd connect(SocketAddress target, long timeoutNanos) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment address;
            int family;
            switch (target) {
                case UnixDomainSocketAddress unix -> {
                    byte[] path = unix.getPath().toString().getBytes(StandardCharsets.UTF_8);
                    if (path.length >= UNIX_PATH_MAX) {
                        throw new IOException("Unix socket path " + unix.getPath() + " is longer than "
                                + (UNIX_PATH_MAX - 1) + " bytes");
                    }
                    family = Posix.AF_UNIX;
                    address = arena.allocate(2 + UNIX_PATH_MAX);
                    address.set(ValueLayout.JAVA_SHORT, 0, (short) family);
                    MemorySegment.copy(path, 0, address, ValueLayout.JAVA_BYTE, 2, path.length);
                }
                case InetSocketAddress inet when inet.getAddress() instanceof Inet4Address v4 -> {
                    family = Posix.AF_INET;
                    address = arena.allocate(16);
                    address.set(ValueLayout.JAVA_SHORT, 0, (short) family);
                    address.set(ValueLayout.JAVA_SHORT.withOrder(ByteOrder.BIG_ENDIAN), 2, (short) inet.getPort());
                    MemorySegment.copy(v4.getAddress(), 0, address, ValueLayout.JAVA_BYTE, 4, 4);
                }
                case InetSocketAddress inet when inet.getAddress() != null -> {
                    family = Posix.AF_INET6;
                    address = arena.allocate(28);
                    address.set(ValueLayout.JAVA_SHORT, 0, (short) family);
                    address.set(ValueLayout.JAVA_SHORT.withOrder(ByteOrder.BIG_ENDIAN), 2, (short) inet.getPort());
                    MemorySegment.copy(inet.getAddress().getAddress(), 0, address, ValueLayout.JAVA_BYTE, 8, 16);
                    if (inet.getAddress() instanceof java.net.Inet6Address v6) {
                        address.set(ValueLayout.JAVA_INT, 24, v6.getScopeId());
                    }
                }
                default -> throw new IOException("cannot connect to " + target + ": unresolved or unsupported address");
            }
            SocketFd socket = new SocketFd(Posix.socket(family, Posix.SOCK_STREAM | Posix.SOCK_CLOEXEC, 0));
            try {
                socket.setTimeouts(arena, timeoutNanos);
                try {
                    Posix.connect(socket.fd, address);
                } catch (PosixException e) {
                    if (e.errno() == Errno.EINPROGRESS || e.errno() == Errno.EAGAIN) {
                        throw new IOException("connecting timed out after "
                                + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms", e);
                    }
                    throw new IOException(Errno.describe(e.errno()) + " (" + e.errnoName() + ")", e);
                }
                if (family != Posix.AF_UNIX) {
                    MemorySegment one = arena.allocate(ValueLayout.JAVA_INT);
                    one.set(ValueLayout.JAVA_INT, 0, 1);
                    Posix.setsockopt(socket.fd, Posix.IPPROTO_TCP, Posix.TCP_NODELAY, one);
                    Posix.setsockopt(socket.fd, Posix.SOL_SOCKET, Posix.SO_KEEPALIVE, one);
                }
                return socket;
            } catch (IOException | RuntimeException e) {
                socket.close();
                throw e;
            }
        }
    }

    private void setTimeouts(Arena arena, long nanos) throws PosixException {
        MemorySegment timeval = arena.allocate(16);
        timeval.set(ValueLayout.JAVA_LONG, 0, nanos / 1_000_000_000L);
        timeval.set(ValueLayout.JAVA_LONG, 8, (nanos % 1_000_000_000L) / 1000);
        Posix.setsockopt(fd, Posix.SOL_SOCKET, Posix.SO_SNDTIMEO, timeval);
        Posix.setsockopt(fd, Posix.SOL_SOCKET, Posix.SO_RCVTIMEO, timeval);
    }

    /**
     * Bounds every later read (and write) to {@code nanos}: a call that waits longer fails with EAGAIN.
     *
     * @param nanos the bound
     * @throws PosixException if the socket refuses the option
     */
    public void receiveTimeout(long nanos) throws PosixException {
        try (Arena arena = Arena.ofConfined()) {
            setTimeouts(arena, Math.max(nanos, 1000));
        }
    }

    /**
     * Lifts the connect-time timeouts: from now on calls block until they can proceed.
     *
     * @throws PosixException if the socket refuses the option
     */
    public void clearTimeouts() throws PosixException {
        try (Arena arena = Arena.ofConfined()) {
            setTimeouts(arena, 0);
        }
    }

    /**
     * Fills {@code dst} completely.
     *
     * @param dst native memory to fill
     * @throws EOFException if the peer closed the connection first
     * @throws PosixException if a read fails (EAGAIN: the receive timeout passed)
     */
    public void readFully(MemorySegment dst) throws IOException {
        boolean ignored = readFully(dst, 0);
    }

    /**
     * Fills {@code dst} completely, first polling the socket for up to {@code pollNanos} before
     * blocking: a reply that comes back within that time is taken without the thread going to
     * sleep and being woken, which on an idle (virtual) CPU costs tens of microseconds each time.
     * Between polls the thread yields its CPU rather than spinning on it: a server (or its worker
     * thread) waiting for that CPU runs at once, instead of after the window: with an NBD client
     * and qemu-nbd pinned to one CPU, 64 KiB writes at queue depth 1 went from 11 000-13 600 a
     * second (spinning) to 24 000-26 300 (yielding).
     *
     * @param dst native memory to fill
     * @param pollNanos how long to poll before a blocking read; 0 blocks at once
     * @return whether the first bytes came while polling
     * @throws EOFException if the peer closed the connection first
     * @throws PosixException if a read fails (EAGAIN: the receive timeout passed)
     */
    public boolean readFully(MemorySegment dst, long pollNanos) throws IOException {
        long done = 0;
        long total = dst.byteSize();
        if (pollNanos > 0) {
            long start = System.nanoTime();
            do {
                long n = Posix.recvNow(fd, dst);
                if (n == 0) {
                    throw new EOFException("the server closed the connection");
                }
                if (n > 0) {
                    done = n;
                    break;
                }
                Thread.yield();
            } while (System.nanoTime() - start < pollNanos);
        }
        boolean polled = done > 0;
        while (done < total) {
            long n = Posix.read(fd, done == 0 ? dst : dst.asSlice(done));
            if (n == 0) {
                throw new EOFException("the server closed the connection");
            }
            done += n;
        }
        return polled;
    }

    /**
     * Writes all of {@code src}.
     *
     * @param src   the bytes
     * @param iovec scratch native memory for one {@code struct iovec}
     * @throws IOException if a write fails (EPIPE: the peer is gone)
     */
    public void writeFully(MemorySegment src, MemorySegment iovec) throws IOException {
        iovec.set(ValueLayout.JAVA_LONG, 0, src.address());
        iovec.set(ValueLayout.JAVA_LONG, 8, src.byteSize());
        long left = src.byteSize();
        while (left > 0) {
            long n = Posix.writev(fd, iovec, 1);
            left -= n;
            IovecWindow.advance(iovec, 0, 1, n);
        }
    }

    /**
     * One scattering read.
     *
     * @param iovecs a native {@code struct iovec} array
     * @param count  entries to use (at most {@link Posix#IOV_MAX} are)
     * @return bytes read into the iovecs; 0 when the peer closed the connection
     * @throws PosixException if the read fails
     */
    public long readv(MemorySegment iovecs, int count) throws PosixException {
        return Posix.readv(fd, iovecs, Math.min(count, Posix.IOV_MAX));
    }

    /**
     * One gathering write.
     *
     * @param iovecs a native {@code struct iovec} array
     * @param count  entries to use (at most {@link Posix#IOV_MAX} are)
     * @return bytes written from the iovecs
     * @throws PosixException if the write fails
     */
    public long writev(MemorySegment iovecs, int count) throws PosixException {
        return Posix.writev(fd, iovecs, Math.min(count, Posix.IOV_MAX));
    }

    /** Wakes every thread blocked on the socket and makes later calls fail. Idempotent. */
    public synchronized void shutdown() {
        if (!shut && !closed) {
            shut = true;
            try {
                Posix.shutdown(fd, Posix.SHUT_RDWR);
            } catch (PosixException ignored) {
                // ENOTCONN: the peer is gone already, which is what shutting down wants.
            }
        }
    }

    /** Shuts down the sending side only: the peer reads end of file, replies can still arrive. */
    public synchronized void shutdownOutput() {
        if (shut || closed) {
            return;
        }
        try {
            Posix.shutdown(fd, Posix.SHUT_WR);
        } catch (PosixException ignored) {
            // ENOTCONN: nothing left to shut.
        }
    }

    /** Shuts down and releases the descriptor. Idempotent. Only when no thread can still use it. */
    public synchronized void close() {
        if (!closed) {
            shutdown();
            closed = true;
            try {
                Posix.close(fd);
            } catch (PosixException ignored) {
                // A socket's close reports nothing the client could act on.
            }
        }
    }
}
