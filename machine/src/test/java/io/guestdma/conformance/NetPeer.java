package io.guestdma.conformance;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;

/**
 * The far end of a {@code -netdev socket,connect=127.0.0.1:PORT}: a test peer on loopback that
 * sends and receives frames in QEMU's socket netdev framing (a 4-byte big-endian length, then the
 * frame). Written from the framing's description, independent of the backend under test.
 */
final class NetPeer implements AutoCloseable {
    private final ServerSocketChannel server;
    private SocketChannel peer;

    NetPeer() throws IOException {
        server = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
    }

    /** {@return the netdev option connecting a machine to this peer} */
    String netdev(String id) {
        return "socket,id=" + id + ",connect=127.0.0.1:" + ((InetSocketAddress) localAddress()).getPort();
    }

    private java.net.SocketAddress localAddress() {
        try {
            return server.getLocalAddress();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** Waits for the machine to connect (it does while it starts). */
    void accept() throws IOException {
        server.socket().setSoTimeout(20_000);
        try {
            peer = server.socket().accept().getChannel();
        } catch (SocketTimeoutException e) {
            throw new AssertionError("the machine did not connect to the peer within 20 s", e);
        }
        if (peer == null) {
            // a blocking ServerSocket from a channel hands out channel-backed sockets; be safe anyway
            throw new AssertionError("accepted socket has no channel");
        }
        peer.socket().setSoTimeout(0);
    }

    /** Sends one frame. */
    void send(byte[] frame) throws IOException {
        sendRaw(ByteBuffer.allocate(4 + frame.length).putInt(frame.length).put(frame).flip());
    }

    /** Sends bytes as they are: a hostile peer's length prefixes and partial frames. */
    void sendRaw(ByteBuffer bytes) throws IOException {
        while (bytes.hasRemaining()) {
            peer.write(bytes);
        }
    }

    /** {@return the next frame the machine sent, or null if none came within the timeout} */
    byte[] receive(long timeoutMillis) throws IOException {
        peer.configureBlocking(false);
        try {
            ByteBuffer length = ByteBuffer.allocate(4);
            if (!fill(length, timeoutMillis)) {
                return null;
            }
            ByteBuffer frame = ByteBuffer.allocate(length.flip().getInt());
            if (!fill(frame, 10_000)) {
                throw new AssertionError("a frame of " + frame.capacity() + " bytes stopped half-way");
            }
            return frame.array();
        } finally {
            peer.configureBlocking(true);
        }
    }

    private boolean fill(ByteBuffer buffer, long timeoutMillis) throws IOException {
        long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
        while (buffer.hasRemaining()) {
            int n = peer.read(buffer);
            if (n < 0) {
                throw new AssertionError("the machine closed the connection");
            }
            if (n == 0) {
                if (System.nanoTime() > deadline) {
                    if (buffer.position() == 0) {
                        return false;
                    }
                    throw new AssertionError("partial frame header");
                }
                Thread.onSpinWait();
                try {
                    Thread.sleep(0, 100_000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException(e);
                }
            }
        }
        return true;
    }

    /** Closes the connection to the machine (the listening socket stays). */
    void disconnect() throws IOException {
        if (peer != null) {
            peer.close();
        }
    }

    @Override
    public void close() throws IOException {
        disconnect();
        server.close();
    }
}
