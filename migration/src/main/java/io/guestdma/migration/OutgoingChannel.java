package io.guestdma.migration;

import io.guestdma.memory.internal.IovecWindow;
import io.guestdma.memory.internal.Posix;
import io.guestdma.memory.internal.SocketFd;
import io.guestdma.memory.posix.PosixException;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

/**
 * The source's end of the stream, driven through its file descriptor so that pages go from guest
 * RAM to the socket or file in one {@code writev} per batch, with no buffer object and no copy on
 * the Java heap. Used by the migration thread only, apart from {@link #abort()}.
 */
final class OutgoingChannel implements AutoCloseable {
    private static final long CONNECT_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final SocketFd socket;
    private final int fileFd;
    private final MemorySegment scratchIovec = Arena.ofAuto().allocate(IovecWindow.ENTRY, 8);
    private boolean closed;

    private OutgoingChannel(SocketFd socket, int fileFd) {
        this.socket = socket;
        this.fileFd = fileFd;
    }

    /**
     * Connects to a listening destination or creates (replaces) the snapshot file.
     *
     * @throws IOException naming the endpoint and the reason (refused, no such socket, no permission...)
     */
    static OutgoingChannel open(MigrationUri uri) throws IOException {
        try {
            return switch (uri) {
                case MigrationUri.Tcp tcp -> fromSocket(SocketFd.connect(tcp.socketAddress(), CONNECT_TIMEOUT_NANOS));
                case MigrationUri.Unix unix -> fromSocket(SocketFd.connect(unix.socketAddress(), CONNECT_TIMEOUT_NANOS));
                case MigrationUri.File file -> new OutgoingChannel(null, Posix.open(file.path(),
                        Posix.O_WRONLY | Posix.O_CREAT | Posix.O_TRUNC | Posix.O_CLOEXEC, 0600));
            };
        } catch (IOException e) {
            throw new IOException("cannot open migration stream " + uri + ": " + e.getMessage(), e);
        }
    }

    private static OutgoingChannel fromSocket(SocketFd socket) throws IOException {
        try {
            socket.clearTimeouts();
        } catch (PosixException e) {
            socket.close();
            throw e;
        }
        return new OutgoingChannel(socket, -1);
    }

    /** {@return whether the destination is a live peer that acknowledges the end of the stream} */
    boolean acknowledges() {
        return socket != null;
    }

    /**
     * Writes every byte of the first {@code count} entries of a native iovec array, which it
     * consumes: after a short write the entries left move to the front of the array (no slice per
     * short write: a socket's writev is short whenever its buffer fills, many times a pass).
     *
     * @return the bytes written
     */
    long writeAll(MemorySegment iovecs, int count) throws IOException {
        long total = 0;
        int left = count;
        while (left > 0) {
            int entries = Math.min(left, Posix.IOV_MAX);
            long n = socket != null ? socket.writev(iovecs, entries) : Posix.writev(fileFd, iovecs, entries);
            total += n;
            left = IovecWindow.consume(iovecs, left, n);
        }
        return total;
    }

    /** Writes all of a native segment. */
    long writeAll(MemorySegment bytes) throws IOException {
        scratchIovec.set(ValueLayout.JAVA_LONG, 0, bytes.address());
        scratchIovec.set(ValueLayout.JAVA_LONG, 8, bytes.byteSize());
        return writeAll(scratchIovec, 1);
    }

    /**
     * Waits for the destination's acknowledgement that it loaded the whole stream.
     *
     * @throws IOException if the destination closed the connection instead (it refused the stream)
     *     or did not answer in time
     */
    void awaitAck(long timeoutNanos) throws IOException {
        socket.shutdownOutput();
        socket.receiveTimeout(timeoutNanos);
        MemorySegment reply = Arena.ofAuto().allocate(1);
        try {
            socket.readFully(reply);
        } catch (EOFException e) {
            throw new IOException("the destination closed the connection without accepting the stream", e);
        } catch (PosixException e) {
            throw new IOException("no acknowledgement from the destination: " + e.getMessage(), e);
        }
        if (reply.get(ValueLayout.JAVA_BYTE, 0) != StreamFormat.ACK) {
            throw new IOException("the destination answered 0x"
                    + Integer.toHexString(reply.get(ValueLayout.JAVA_BYTE, 0) & 0xff) + " instead of accepting");
        }
    }

    /** Wakes the migration thread if it is blocked writing to a socket (any thread may call it). */
    void abort() {
        if (socket != null) {
            socket.shutdown();
        }
    }

    /**
     * Releases the socket or file; a file is synced first, so a completed snapshot is on disk.
     *
     * @throws IOException if the sync or the close fails
     */
    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        if (socket != null) {
            socket.close();
        } else {
            try {
                Posix.fsync(fileFd);
            } finally {
                Posix.close(fileFd);
            }
        }
    }
}
