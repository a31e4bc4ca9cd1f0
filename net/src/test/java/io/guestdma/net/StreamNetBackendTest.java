package io.guestdma.net;

import io.guestdma.memory.IoVector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@link StreamNetBackend}: QEMU's length-prefixed framing over TCP and Unix sockets. */
class StreamNetBackendTest {
    static final Duration TX_TIMEOUT = Duration.ofSeconds(5);

    @TempDir
    Path dir;

    private SocketAddress address(String kind) {
        return kind.equals("tcp") ? new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)
                : UnixDomainSocketAddress.of(dir.resolve("net.sock"));
    }

    static void await(BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting until " + what);
            }
            Thread.sleep(2);
        }
    }

    /** Takes {@code count} frames off the queue as a NIC would, returning their bytes. */
    static List<byte[]> take(RxQueue q, int count) throws InterruptedException {
        List<byte[]> frames = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (frames.size() < count) {
            int length = q.headLength();
            if (length < 0) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("only " + frames.size() + " of " + count + " frames arrived");
                }
                Thread.onSpinWait();
                continue;
            }
            byte[] f = new byte[length];
            q.copyHead(0, MemorySegment.ofArray(f));
            q.removeHead();
            frames.add(f);
        }
        return frames;
    }

    static IoVector pieces(Arena arena, byte[] frame, Random random) {
        IoVector iov = new IoVector();
        int at = 0;
        while (at < frame.length) {
            int n = Math.min(frame.length - at, 1 + random.nextInt(4000));
            iov.add(arena.allocate(n).copyFrom(MemorySegment.ofArray(frame).asSlice(at, n)));
            at += n;
        }
        return iov;
    }

    static byte[] randomFrame(Random random) {
        int size = random.nextInt(10) == 0 ? 14 + random.nextInt(RxQueue.MAX_FRAME_BYTES - 13) : 14 + random.nextInt(1500);
        byte[] f = new byte[size];
        random.nextBytes(f);
        return f;
    }

    /**
     * 10 000 frames of random sizes (14 to 65 535 bytes, scattered pieces) each way between a
     * listening and a connecting backend, both directions at once, through a small receive queue
     * that fills up: none lost, none altered, in order.
     */
    @ParameterizedTest
    @ValueSource(strings = {"tcp", "unix"})
    void tenThousandFramesEachWayArriveWholeAndInOrder(String kind) throws Exception {
        RxQueue serverQueue = new RxQueue(512 * 1024, 64);
        RxQueue clientQueue = new RxQueue(512 * 1024, 64);
        try (StreamNetBackend server = StreamNetBackend.listen(address(kind), serverQueue, TX_TIMEOUT);
             StreamNetBackend client = StreamNetBackend.connect(server.localAddress(), clientQueue, TX_TIMEOUT)) {
            await(server::linkUp, "the server sees its peer");
            assertThat(client.linkUp()).isTrue();
            int count = 10_000;
            List<byte[]> toServer = new ArrayList<>();
            List<byte[]> toClient = new ArrayList<>();
            Random random = new Random(42);
            for (int i = 0; i < count; i++) {
                toServer.add(randomFrame(random));
                toClient.add(randomFrame(random));
            }
            // Own threads: the common pool may have one, and a sender blocked by a full queue
            // would then keep the receiver that empties it from ever running.
            var pool = java.util.concurrent.Executors.newFixedThreadPool(3);
            try {
                var a = pool.submit(() -> send(client, toServer, 1));
                var b = pool.submit(() -> send(server, toClient, 2));
                var atServer = pool.submit(() -> takeUnchecked(serverQueue, count));
                List<byte[]> atClient = take(clientQueue, count);
                a.get(2, TimeUnit.MINUTES);
                b.get(2, TimeUnit.MINUTES);
                assertThat(atServer.get(2, TimeUnit.MINUTES)).containsExactlyElementsOf(toServer);
                assertThat(atClient).containsExactlyElementsOf(toClient);
            } finally {
                pool.shutdownNow();
            }
            assertThat(server.rxErrors()).isZero();
            assertThat(client.txDropped()).isZero();
            // The receiver counts a frame once queue.offer has returned: the last frame can be
            // taken off the queue (and everything above checked) before it is counted.
            await(() -> server.rxFrames() >= count, "the last frame is counted");
            assertThat(server.rxFrames()).isEqualTo(count);
        }
    }

    private static void send(NetBackend backend, List<byte[]> frames, long seed) {
        Random random = new Random(seed);
        try (Arena arena = Arena.ofConfined()) {
            for (byte[] f : frames) {
                assertThat(backend.transmit(pieces(arena, f, random))).isTrue();
            }
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }

    private static List<byte[]> takeUnchecked(RxQueue q, int count) {
        try {
            return take(q, count);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    private static byte[] framed(byte[] frame) {
        return ByteBuffer.allocate(4 + frame.length).putInt(frame.length).put(frame).array();
    }

    /**
     * A device reuses one I/O vector for every frame it sends (reset, then the next frame's
     * pieces), so the vector's cached buffer array is longer than the frame's pieces whenever an
     * earlier frame had more: only the frame's own pieces may go out.
     */
    @Test
    void oneReusedVectorWithFewerPiecesThanTheFrameBeforeSendsOnlyEachFramesBytes() throws Exception {
        RxQueue q = new RxQueue();
        try (StreamNetBackend server = StreamNetBackend.listen(address("unix"), q, TX_TIMEOUT);
             StreamNetBackend client = StreamNetBackend.connect(server.localAddress(), new RxQueue(), TX_TIMEOUT);
             Arena arena = Arena.ofConfined()) {
            await(server::linkUp, "the server sees its peer");
            Random random = new Random(7);
            IoVector reused = new IoVector();
            List<byte[]> sent = new ArrayList<>();
            for (int pieces : new int[] {1, 2, 3, 5, 1, 4, 2, 9, 1, 3}) {
                byte[] frame = new byte[60 * pieces];
                random.nextBytes(frame);
                reused.reset();
                for (int i = 0; i < pieces; i++) {
                    reused.add(arena.allocate(60).copyFrom(MemorySegment.ofArray(frame).asSlice(60L * i, 60)));
                }
                assertThat(client.transmit(reused)).isTrue();
                sent.add(frame);
            }
            assertThat(take(q, sent.size())).containsExactlyElementsOf(sent);
            assertThat(server.rxErrors()).isZero();
        }
    }

    @Test
    void aPeerClaimingAFourGigabyteFrameIsCutOffAndTheNextPeerIsServed() throws Exception {
        RxQueue q = new RxQueue();
        try (StreamNetBackend server = StreamNetBackend.listen(address("tcp"), q, TX_TIMEOUT)) {
            InetSocketAddress at = (InetSocketAddress) server.localAddress();
            try (Socket hostile = new Socket(at.getAddress(), at.getPort())) {
                OutputStream out = hostile.getOutputStream();
                out.write(framed(new byte[] {1, 2, 3}));
                out.write(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xfc, 9, 9, 9});
                out.flush();
                // The backend closes the connection instead of reading (or allocating) 4 GiB: end
                // of stream, or a reset since bytes it never read were still queued.
                try {
                    assertThat(hostile.getInputStream().read()).isEqualTo(-1);
                } catch (java.net.SocketException reset) {
                    assertThat(reset).hasMessageContaining("reset");
                }
            }
            await(() -> !server.linkUp(), "the link goes down");
            assertThat(server.rxErrors()).isEqualTo(1);
            assertThat(take(q, 1).get(0)).containsExactly(1, 2, 3);
            try (Socket next = new Socket(at.getAddress(), at.getPort())) {
                await(server::linkUp, "the next peer brings the link up");
                next.getOutputStream().write(framed(new byte[] {4, 5}));
                assertThat(take(q, 1).get(0)).containsExactly(4, 5);
            }
        }
    }

    @Test
    void aPeerThatLeavesMidFrameLosesOnlyThatFrameAndOversizedOrEmptyFramesAreDroppedNotDelivered() throws Exception {
        RxQueue q = new RxQueue();
        try (StreamNetBackend server = StreamNetBackend.listen(address("unix"), q, TX_TIMEOUT)) {
            List<Boolean> links = new java.util.concurrent.CopyOnWriteArrayList<>();
            server.onLinkChange(links::add);
            try (var peer = java.nio.channels.SocketChannel.open(server.localAddress())) {
                peer.write(ByteBuffer.wrap(framed(new byte[66_000]))); // above 65 535, within QEMU's limit
                peer.write(ByteBuffer.wrap(framed(new byte[0])));
                peer.write(ByteBuffer.wrap(framed(new byte[] {7})));
                peer.write(ByteBuffer.wrap(ByteBuffer.allocate(4 + 10).putInt(100).put(new byte[10]).array()));
            }
            assertThat(take(q, 1).get(0)).containsExactly(7);
            await(() -> server.rxErrors() == 3, "three malformed frames are counted");
            await(() -> links.equals(List.of(true, false)), "the link went up and down");
            assertThat(q.isEmpty()).isTrue();
        }
    }

    @Test
    void transmittingWithNoPeerDropsAndAPeerThatStopsReadingCannotHoldTheNicForever() throws Exception {
        RxQueue q = new RxQueue();
        try (StreamNetBackend server = StreamNetBackend.listen(address("tcp"), q, Duration.ofMillis(300));
             Arena arena = Arena.ofConfined()) {
            IoVector frame = new IoVector().add(arena.allocate(60_000));
            assertThat(server.transmit(frame)).as("no peer yet").isFalse();
            assertThat(server.txDropped()).isEqualTo(1);
            InetSocketAddress at = (InetSocketAddress) server.localAddress();
            try (Socket sleepy = new Socket(at.getAddress(), at.getPort())) {
                await(server::linkUp, "the peer connects");
                // The peer never reads: socket buffers fill, then a write blocks until the timeout.
                long start = System.nanoTime();
                int sent = 0;
                while (server.transmit(frame)) {
                    sent++;
                    assertThat(System.nanoTime() - start).as("bounded").isLessThan(TimeUnit.SECONDS.toNanos(20));
                }
                assertThat(sent).isPositive();
                assertThat(server.linkUp()).isFalse();
                InputStream in = sleepy.getInputStream();
                in.skip(Long.MAX_VALUE); // drains to end of stream: the backend closed its side
            }
        }
    }

    @Test
    void badAddressesAndClosedBackendsGiveClearErrors() throws Exception {
        RxQueue q = new RxQueue();
        Path taken = dir.resolve("taken.sock");
        java.nio.file.Files.writeString(taken, "x");
        assertThatThrownBy(() -> StreamNetBackend.listen(UnixDomainSocketAddress.of(taken), q, TX_TIMEOUT))
                .hasMessageContaining("exists");
        assertThatThrownBy(() -> StreamNetBackend.connect(UnixDomainSocketAddress.of(dir.resolve("nobody.sock")), q,
                TX_TIMEOUT)).hasMessageContaining("cannot connect");
        assertThatThrownBy(() -> StreamNetBackend.listen(address("tcp"), q, Duration.ZERO))
                .isInstanceOf(IllegalArgumentException.class);
        StreamNetBackend server = StreamNetBackend.listen(address("unix"), q, TX_TIMEOUT);
        server.close();
        server.close();
        assertThat(dir.resolve("net.sock")).as("the socket file is removed").doesNotExist();
        try (Arena arena = Arena.ofConfined()) {
            assertThatThrownBy(() -> server.transmit(new IoVector().add(arena.allocate(60))))
                    .isInstanceOf(java.nio.channels.ClosedChannelException.class);
            assertThatThrownBy(() -> server.transmit(new IoVector().add(arena.allocate(70_000))))
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }
}
