package io.guestdma.vhostuser;

import io.guestdma.memory.posix.PosixException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One vhost-user connection's socket, message by message: a 12-byte header, then exactly the
 * payload size it names, with the descriptors that came with the header. Several messages may
 * arrive in one segment; nothing past the current message is consumed.
 *
 * <p>Descriptors in a returned {@link Message} belong to the caller. On any error the descriptors
 * received so far are closed before the exception leaves. Not thread-safe: one reader.
 */
final class Channel implements AutoCloseable {
    /** A front end broke the protocol: the connection must end. */
    static final class ViolationException extends Exception {
        private static final long serialVersionUID = 1L;

        ViolationException(String message) {
            super(message);
        }
    }

    /**
     * One message.
     *
     * @param request the request code
     * @param flags   the header flags
     * @param payload the payload, little-endian
     * @param fds     descriptors that came with it, owned by whoever holds the message
     */
    record Message(int request, int flags, ByteBuffer payload, int[] fds) {
        boolean needsReply() {
            return (flags & Protocol.FLAG_NEED_REPLY) != 0;
        }

        void closeFds() {
            for (int fd : fds) {
                Linux.closeQuietly(fd);
            }
        }
    }

    private final int fd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment buffer = arena.allocate(Protocol.MAX_PAYLOAD, 8);

    Channel(int fd) {
        this.fd = fd;
    }

    int fd() {
        return fd;
    }

    /**
     * Reads the next message.
     *
     * @return the message, or null if the front end closed the connection between messages
     * @throws ViolationException if the header is malformed, the payload too large, descriptors
     *                            come with the payload or are more than allowed, or the stream
     *                            ends inside a message
     * @throws PosixException     if the socket fails
     */
    Message read() throws ViolationException, PosixException {
        int[] fds = new int[0];
        try {
            int got = 0;
            while (got < Protocol.HEADER_SIZE) {
                Linux.Received r = Linux.receive(fd, buffer.asSlice(got, Protocol.HEADER_SIZE - got), Protocol.MAX_FDS);
                fds = append(fds, r.fds());
                if (r.truncated()) {
                    throw new ViolationException("more than " + Protocol.MAX_FDS + " descriptors in one message");
                }
                if (r.bytes() == 0) {
                    if (got == 0 && fds.length == 0) {
                        return null;
                    }
                    throw new ViolationException("connection closed inside a message header");
                }
                got += r.bytes();
            }
            int request = buffer.get(ValueLayout.JAVA_INT_UNALIGNED, 0);
            int flags = buffer.get(ValueLayout.JAVA_INT_UNALIGNED, 4);
            int size = buffer.get(ValueLayout.JAVA_INT_UNALIGNED, 8);
            if ((flags & Protocol.VERSION_MASK) != Protocol.VERSION) {
                throw new ViolationException(Protocol.name(request) + ": protocol version " + (flags & 3)
                        + ", expected " + Protocol.VERSION);
            }
            if ((flags & Protocol.FLAG_REPLY) != 0) {
                throw new ViolationException(Protocol.name(request) + ": a reply where a request belongs");
            }
            if (size < 0 || size > Protocol.MAX_PAYLOAD) {
                throw new ViolationException(Protocol.name(request) + ": payload of " + Integer.toUnsignedString(size)
                        + " bytes (at most " + Protocol.MAX_PAYLOAD + ")");
            }
            got = 0;
            while (got < size) {
                Linux.Received r = Linux.receive(fd, buffer.asSlice(got, size - got), Protocol.MAX_FDS);
                if (r.fds().length > 0 || r.truncated()) {
                    fds = append(fds, r.fds());
                    throw new ViolationException(Protocol.name(request) + ": descriptors inside the payload");
                }
                if (r.bytes() == 0) {
                    throw new ViolationException(Protocol.name(request) + ": connection closed inside the payload");
                }
                got += r.bytes();
            }
            byte[] payload = new byte[size];
            MemorySegment.copy(buffer, ValueLayout.JAVA_BYTE, 0, payload, 0, size);
            return new Message(request, flags, ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN), fds);
        } catch (ViolationException | PosixException | RuntimeException e) {
            for (int f : fds) {
                Linux.closeQuietly(f);
            }
            throw e;
        }
    }

    /**
     * Sends a reply to {@code request}.
     *
     * @param request the request answered
     * @param payload the reply's payload
     * @throws PosixException if the socket fails (EPIPE when the front end is gone)
     */
    void reply(int request, byte[] payload) throws PosixException {
        ByteBuffer b = ByteBuffer.allocate(Protocol.HEADER_SIZE + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(request).putInt(Protocol.VERSION | Protocol.FLAG_REPLY).putInt(payload.length).put(payload);
        Linux.send(fd, b.array());
    }

    /**
     * Sends a u64 reply (GET_FEATURES, GET_QUEUE_NUM, a REPLY_ACK status).
     *
     * @param request the request answered
     * @param value   the value
     * @throws PosixException if the socket fails
     */
    void replyU64(int request, long value) throws PosixException {
        reply(request, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(value).array());
    }

    /** Wakes a reader blocked in {@link #read()}; it then sees the end of the stream. */
    void shutdown() {
        Linux.shutdownQuietly(fd);
    }

    /** Closes the socket and frees the buffer; call after the reader has returned. */
    @Override
    public void close() {
        Linux.closeQuietly(fd);
        arena.close();
    }

    private static int[] append(int[] a, int[] b) {
        if (b.length == 0) {
            return a;
        }
        int[] all = new int[a.length + b.length];
        System.arraycopy(a, 0, all, 0, a.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }
}
