package io.guestdma.net;

import io.guestdma.memory.IoVector;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * A network backend that speaks QEMU's socket and stream netdev framing: each frame is a 4-byte
 * big-endian length followed by the frame, over TCP or a Unix socket (QEMU's
 * {@code -netdev socket,listen=|connect=} and {@code -netdev stream}). So a guestdma NIC and a
 * QEMU VM's NIC can be wired together, or a guestdma NIC can join anything that speaks it.
 *
 * <p><b>Listening</b> ({@link #listen}): one peer at a time; when it goes, the link goes down and
 * the next peer to connect brings it up again, as QEMU's listening socket netdev does.
 * <b>Connecting</b> ({@link #connect}): one connection; when the peer closes it the link stays
 * down (QEMU 7.2 does not reconnect either).
 *
 * <p><b>Receive</b>: one thread reads frames into a staging buffer and queues them. When the
 * queue is full it stops reading until the NIC makes room, so TCP holds the peer back and no
 * frame is lost (QEMU stops polling the socket the same way). A length prefix above
 * {@value #MAX_STREAM_FRAME} bytes (QEMU's limit, NET_BUFSIZE) cannot be a frame: the stream is
 * out of step, so the connection is closed and counted in {@link #rxErrors()}, as QEMU does.
 * Frames between {@link RxQueue#MAX_FRAME_BYTES} and that limit, and empty ones, are read and
 * dropped, counted. A peer that leaves in the middle of a frame loses only that frame.
 *
 * <p><b>Transmit</b>: the length prefix and the frame's pieces go out in one gathering write
 * straight from the caller's memory. A peer that stops reading cannot hold a transmitting NIC
 * forever: a write that makes no progress for the transmit timeout closes the connection (the
 * frame is dropped, the link goes down).
 */
public final class StreamNetBackend implements NetBackend {
    /** The largest length prefix accepted: QEMU's NET_BUFSIZE (4096 + 65536). */
    public static final int MAX_STREAM_FRAME = 4096 + 65536;
    /** How long a transmit may wait on a peer that does not read, unless told otherwise. */
    public static final Duration DEFAULT_TX_TIMEOUT = Duration.ofSeconds(10);

    private static final System.Logger LOG = System.getLogger(StreamNetBackend.class.getName());
    private static final ScheduledExecutorService WATCHDOG = Executors.newSingleThreadScheduledExecutor(r ->
            Thread.ofPlatform().daemon().name("guestdma-net-watchdog").unstarted(r));

    private final String name;
    private final RxQueue queue;
    private final ServerSocketChannel server;
    private final SocketAddress localAddress;
    private final long txTimeoutNanos;
    private final Object txLock = new Object();
    private final ByteBuffer txPrefix = ByteBuffer.allocateDirect(4).order(ByteOrder.BIG_ENDIAN);
    /** The length prefix and a frame's buffers, for one gathering write; grown as needed, under txLock. */
    private ByteBuffer[] txBuffers = new ByteBuffer[0];
    private final ByteBuffer rxPrefix = ByteBuffer.allocateDirect(4).order(ByteOrder.BIG_ENDIAN);
    private final ByteBuffer staging = ByteBuffer.allocateDirect(MAX_STREAM_FRAME);
    private final MemorySegment stagingSegment = MemorySegment.ofBuffer(staging);
    private final Thread receiver;
    private final ScheduledFuture<?> watchdog;
    private final AtomicLong txFrames = new AtomicLong();
    private final AtomicLong txDropped = new AtomicLong();
    private final AtomicLong rxFrames = new AtomicLong();
    private final AtomicLong rxMalformed = new AtomicLong();
    private volatile SocketChannel channel;
    private volatile long sendingSince;
    private volatile boolean closed;
    private volatile Consumer<Boolean> linkListener = up -> { };

    private StreamNetBackend(String name, RxQueue queue, ServerSocketChannel server, SocketChannel connected,
                             Duration txTimeout) throws IOException {
        this.name = name;
        this.queue = Objects.requireNonNull(queue, "queue");
        this.server = server;
        this.localAddress = server != null ? server.getLocalAddress() : connected.getLocalAddress();
        this.txTimeoutNanos = txTimeout.toNanos();
        this.channel = connected;
        this.receiver = Thread.ofPlatform().daemon().name("guestdma-net-rx " + name).unstarted(this::receive);
        long period = Math.max(txTimeoutNanos / 4, TimeUnit.MILLISECONDS.toNanos(10));
        this.watchdog = WATCHDOG.scheduleAtFixedRate(this::checkSending, period, period, TimeUnit.NANOSECONDS);
        receiver.start();
    }

    /**
     * Listens for a peer, as {@code -netdev socket,listen=} or {@code -netdev stream,server=on}.
     * Returns at once; the link is down until a peer connects.
     *
     * @param address   where to listen: an {@link InetSocketAddress} (port 0 picks one, see
     *                  {@link #localAddress()}) or a {@link UnixDomainSocketAddress} (an existing
     *                  file there is an error, as for QEMU)
     * @param queue     where received frames go
     * @param txTimeout how long a transmit may wait on a peer that does not read
     * @return the backend, listening
     * @throws IOException              if the address cannot be bound (in use, no permission...)
     * @throws IllegalArgumentException if the address is of another kind or the timeout is not positive
     */
    public static StreamNetBackend listen(SocketAddress address, RxQueue queue, Duration txTimeout) throws IOException {
        checkTimeout(txTimeout);
        ServerSocketChannel server = switch (address) {
            case InetSocketAddress inet -> {
                ServerSocketChannel s = ServerSocketChannel.open();
                s.setOption(StandardSocketOptions.SO_REUSEADDR, true);
                yield s;
            }
            case UnixDomainSocketAddress unix -> {
                if (Files.exists(unix.getPath())) {
                    throw new IOException("cannot listen on " + unix.getPath() + ": the file exists");
                }
                yield ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            }
            default -> throw new IllegalArgumentException("not an Internet or Unix socket address: " + address);
        };
        try {
            server.bind(address, 1);
            return new StreamNetBackend("listen " + describe(server.getLocalAddress()), queue, server, null, txTimeout);
        } catch (IOException | RuntimeException e) {
            server.close();
            throw new IOException("cannot listen on " + describe(address) + ": " + e.getMessage(), e);
        }
    }

    /**
     * Connects to a peer, as {@code -netdev socket,connect=} or {@code -netdev stream,server=off}.
     *
     * @param address   the peer: an {@link InetSocketAddress} or a {@link UnixDomainSocketAddress}
     * @param queue     where received frames go
     * @param txTimeout how long a transmit may wait on a peer that does not read
     * @return the backend, connected (link up)
     * @throws IOException              if the peer cannot be reached
     * @throws IllegalArgumentException if the address is of another kind or the timeout is not positive
     */
    public static StreamNetBackend connect(SocketAddress address, RxQueue queue, Duration txTimeout) throws IOException {
        checkTimeout(txTimeout);
        if (!(address instanceof InetSocketAddress) && !(address instanceof UnixDomainSocketAddress)) {
            throw new IllegalArgumentException("not an Internet or Unix socket address: " + address);
        }
        SocketChannel c;
        try {
            c = SocketChannel.open(address);
        } catch (IOException | RuntimeException e) {
            throw new IOException("cannot connect to " + describe(address) + ": " + e.getMessage(), e);
        }
        try {
            if (address instanceof InetSocketAddress) {
                c.setOption(StandardSocketOptions.TCP_NODELAY, true);
            }
            return new StreamNetBackend("connect " + describe(address), queue, null, c, txTimeout);
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    private static void checkTimeout(Duration timeout) {
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("the transmit timeout must be positive, was " + timeout);
        }
    }

    private static String describe(SocketAddress address) {
        return address instanceof UnixDomainSocketAddress unix ? "unix:" + unix.getPath() : String.valueOf(address);
    }

    /** {@return the address this backend listens on or connected from (a chosen port shows here)} */
    public SocketAddress localAddress() {
        return localAddress;
    }

    @Override
    public RxQueue rxQueue() {
        return queue;
    }

    @Override
    public boolean linkUp() {
        return channel != null && !closed;
    }

    @Override
    public void onLinkChange(Consumer<Boolean> listener) {
        linkListener = Objects.requireNonNull(listener, "listener");
    }

    @Override
    public long txFrames() {
        return txFrames.get();
    }

    @Override
    public long txDropped() {
        return txDropped.get();
    }

    /** {@return frames received and queued} */
    public long rxFrames() {
        return rxFrames.get();
    }

    @Override
    public long rxErrors() {
        return rxMalformed.get() + queue.dropped();
    }

    @Override
    public boolean transmit(IoVector frame) throws IOException {
        long length = frame.size();
        RxQueue.check(length);
        if (closed) {
            throw new ClosedChannelException();
        }
        synchronized (txLock) {
            SocketChannel c = channel;
            if (c == null) {
                txDropped.incrementAndGet();
                return false;
            }
            // Only the first byteBufferCount() entries are this frame's: a device reuses its vector,
            // and the cached array beyond them holds an earlier frame's buffers, or nulls.
            ByteBuffer[] pieces = frame.byteBuffers();
            int count = frame.byteBufferCount() + 1;
            if (txBuffers.length < count) {
                txBuffers = new ByteBuffer[Math.max(count, 2 * txBuffers.length)];
            }
            ByteBuffer[] all = txBuffers;
            txPrefix.clear();
            txPrefix.putInt(0, (int) length);
            all[0] = txPrefix;
            System.arraycopy(pieces, 0, all, 1, count - 1);
            long left = length + 4;
            sendingSince = System.nanoTime() | 1;
            try {
                int first = 0;
                while (left > 0) {
                    long n = c.write(all, first, Math.min(count - first, 1024));
                    left -= n;
                    while (first < count && !all[first].hasRemaining()) {
                        first++;
                    }
                }
                txFrames.incrementAndGet();
                return true;
            } catch (IOException e) {
                // Part of the frame may be out: the stream is broken for this peer.
                txDropped.incrementAndGet();
                lost(c, "transmit failed: " + e.getMessage());
                return false;
            } finally {
                sendingSince = 0;
            }
        }
    }

    private void checkSending() {
        long since = sendingSince;
        SocketChannel c = channel;
        if (since != 0 && c != null && System.nanoTime() - since > txTimeoutNanos) {
            lost(c, "the peer read nothing for " + TimeUnit.NANOSECONDS.toMillis(txTimeoutNanos) + " ms");
        }
    }

    /** Ends the connection {@code c} (if still current): link down, the receiver moves on. */
    private void lost(SocketChannel c, String why) {
        boolean wasCurrent;
        synchronized (this) {
            wasCurrent = channel == c;
            if (wasCurrent) {
                channel = null;
            }
        }
        try {
            c.close();
        } catch (IOException ignored) {
            // Closing a broken connection has nothing more to report.
        }
        if (wasCurrent) {
            LOG.log(System.Logger.Level.DEBUG, "{0}: peer lost: {1}", name, why);
            notifyLink(false);
        }
    }

    private void notifyLink(boolean up) {
        try {
            linkListener.accept(up);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, name + ": link listener failed", e);
        }
    }

    private void receive() {
        try {
            while (!closed) {
                SocketChannel c = channel;
                if (c == null) {
                    if (server == null) {
                        return; // a connecting backend does not come back once its peer left
                    }
                    c = accept();
                    if (c == null) {
                        return;
                    }
                }
                readFrames(c);
            }
        } catch (InterruptedException e) {
            // close() interrupts a receiver waiting for queue room.
        }
    }

    private SocketChannel accept() {
        try {
            SocketChannel c = server.accept();
            if (c.getRemoteAddress() instanceof InetSocketAddress) {
                c.setOption(StandardSocketOptions.TCP_NODELAY, true);
            }
            synchronized (this) {
                if (closed) {
                    c.close();
                    return null;
                }
                channel = c;
            }
            notifyLink(true);
            return c;
        } catch (IOException e) {
            if (!closed) {
                LOG.log(System.Logger.Level.WARNING, name + ": accept failed, no more peers", e);
            }
            return null;
        }
    }

    /** Reads frames from {@code c} until it ends; returns with the link down. */
    private void readFrames(SocketChannel c) throws InterruptedException {
        try {
            while (!closed) {
                rxPrefix.clear();
                if (!readFully(c, rxPrefix)) {
                    lost(c, "end of stream");
                    return;
                }
                long length = Integer.toUnsignedLong(rxPrefix.getInt(0));
                if (length > MAX_STREAM_FRAME) {
                    rxMalformed.incrementAndGet();
                    lost(c, "length prefix " + length + " is past " + MAX_STREAM_FRAME + " bytes");
                    return;
                }
                staging.clear().limit((int) length);
                if (!readFully(c, staging)) {
                    if (length > 0) {
                        rxMalformed.incrementAndGet(); // the peer left in the middle of a frame
                    }
                    lost(c, "end of stream inside a frame");
                    return;
                }
                if (length == 0 || length > RxQueue.MAX_FRAME_BYTES) {
                    rxMalformed.incrementAndGet();
                    continue;
                }
                if (queue.offer(stagingSegment.asSlice(0, length), Long.MAX_VALUE)) {
                    rxFrames.incrementAndGet();
                }
            }
        } catch (IOException e) {
            lost(c, e.getMessage());
        }
    }

    /** @return false at end of stream before the buffer was full */
    private static boolean readFully(SocketChannel c, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (c.read(b) < 0) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        watchdog.cancel(false);
        queue.close();
        SocketChannel c = channel;
        if (c != null) {
            lost(c, "closed");
        }
        if (server != null) {
            try {
                server.close();
            } catch (IOException ignored) {
                // Nothing left to do with a listening socket that fails to close.
            }
            if (localAddress instanceof UnixDomainSocketAddress unix) {
                try {
                    Files.deleteIfExists(unix.getPath());
                } catch (IOException ignored) {
                    // A stale socket file is only in the way of the next listen, which says so.
                }
            }
        }
        receiver.interrupt();
        try {
            receiver.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return "StreamNetBackend[" + name + (linkUp() ? ", up]" : ", down]");
    }
}
