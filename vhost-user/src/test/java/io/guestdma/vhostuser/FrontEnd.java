package io.guestdma.vhostuser;

import io.guestdma.memory.posix.PosixException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The VMM's side of vhost-user in a few lines, for tests: sends requests (well-formed or not,
 * with descriptors) and reads replies, as QEMU's vhost-user front end would.
 */
final class FrontEnd implements AutoCloseable {
    final int fd;
    private boolean closed;

    private FrontEnd(int fd) {
        this.fd = fd;
    }

    static FrontEnd connect(Path socket) throws PosixException {
        return new FrontEnd(Linux.connect(socket));
    }

    /** Sends raw bytes with descriptors. */
    void sendRaw(byte[] bytes, int... fds) throws PosixException {
        Linux.send(fd, bytes, fds);
    }

    void send(int request, int flags, byte[] payload, int... fds) throws PosixException {
        ByteBuffer b = ByteBuffer.allocate(12 + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(request).putInt(flags).putInt(payload.length).put(payload);
        sendRaw(b.array(), fds);
    }

    void send(int request, byte[] payload, int... fds) throws PosixException {
        send(request, Protocol.VERSION, payload, fds);
    }

    /** Sends a request asking for REPLY_ACK and returns the status (0 = success). */
    long sendAcked(int request, byte[] payload, int... fds) throws PosixException {
        send(request, Protocol.VERSION | Protocol.FLAG_NEED_REPLY, payload, fds);
        return u64(reply(request));
    }

    /** Reads one reply to {@code request}; fails on end of stream. */
    ByteBuffer reply(int request) throws PosixException {
        byte[] header = readExactly(12);
        ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
        if (h.getInt(0) != request || h.getInt(4) != (Protocol.VERSION | Protocol.FLAG_REPLY)) {
            throw new AssertionError("reply header " + Arrays.toString(header) + " for " + Protocol.name(request));
        }
        return ByteBuffer.wrap(readExactly(h.getInt(8))).order(ByteOrder.LITTLE_ENDIAN);
    }

    long getU64(int request) throws PosixException {
        send(request, new byte[0]);
        return u64(reply(request));
    }

    static long u64(ByteBuffer b) {
        if (b.capacity() != 8) {
            throw new AssertionError("u64 reply of " + b.capacity() + " bytes");
        }
        return b.getLong(0);
    }

    static byte[] u64(long value) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(value).array();
    }

    static byte[] state(int index, int value) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(index).putInt(value).array();
    }

    static byte[] address(int index, long desc, long used, long avail) {
        return ByteBuffer.allocate(40).order(ByteOrder.LITTLE_ENDIAN).putInt(index).putInt(0).putLong(desc)
                .putLong(used).putLong(avail).putLong(0).array();
    }

    /** A memory table payload: each region {guest, size, user, mmap offset}. */
    static byte[] memTable(long[]... regions) {
        ByteBuffer b = ByteBuffer.allocate(8 + 32 * regions.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(regions.length).putInt(0);
        for (long[] r : regions) {
            for (long v : r) {
                b.putLong(v);
            }
        }
        return b.array();
    }

    /**
     * {@return whether the back end closed the connection: end of stream within the timeout}
     *
     * @param timeoutMs how long to wait
     */
    boolean closedByPeer(int timeoutMs) throws PosixException {
        short[] events = new short[1];
        if (Linux.poll(new int[] {fd}, events, timeoutMs) == 0) {
            return false;
        }
        try (Arena arena = Arena.ofConfined()) {
            Linux.Received r = Linux.receive(fd, arena.allocate(64), 8);
            for (int f : r.fds()) {
                Linux.closeQuietly(f);
            }
            return r.bytes() == 0;
        } catch (PosixException e) {
            return true; // ECONNRESET
        }
    }

    private byte[] readExactly(int n) throws PosixException {
        byte[] out = new byte[n];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(Math.max(1, n));
            int got = 0;
            while (got < n) {
                Linux.Received r = Linux.receive(fd, buffer.asSlice(got, n - got), 8);
                for (int f : r.fds()) {
                    Linux.closeQuietly(f);
                }
                if (r.bytes() == 0) {
                    throw new AssertionError("the back end closed the connection");
                }
                got += r.bytes();
            }
            MemorySegment.copy(buffer, ValueLayout.JAVA_BYTE, 0, out, 0, n);
        }
        return out;
    }

    /** Closes the connection once: a second close could hit a descriptor number reused since. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Linux.closeQuietly(fd);
        }
    }
}
