package io.guestdma.block;

import io.guestdma.memory.IoVector;
import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * An NBD server that lies: after an honest handshake it answers requests with a random mix of
 * correct replies, errors, wrong cookies, bad magic, garbage, replies cut short, replies nobody
 * asked for, silence and hang-ups, to several client threads at once, one of which keeps four
 * asynchronous requests in flight. Whatever it does, every request returns or fails with an
 * {@link IOException} in bounded time, a read that succeeds holds exactly the disk's bytes, and no
 * byte outside the caller's buffers is ever written.
 */
class NbdHostileServerFuzzTest {
    private static final int DISK = 1 << 20;
    private static final byte GUARD = (byte) 0x5a;

    /** The disk's content: a pattern every correct read reply carries. */
    private static byte pattern(long at) {
        return (byte) (at * 31 + (at >>> 9));
    }

    @Test
    void everyRequestEndsInBoundedTimeAndNoByteLandsOutsideItsBuffers() throws Exception {
        for (long seed = 1; seed <= 5; seed++) {
            run(seed);
        }
    }

    private void run(long seed) throws Exception {
        AtomicInteger connections = new AtomicInteger();
        try (ServerSocket listener = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            Thread server = Thread.ofPlatform().daemon().start(() -> serve(listener, new Random(seed), connections));
            NbdAddress address = new NbdAddress.Tcp("127.0.0.1", listener.getLocalPort(), "");
            try (NbdBackend nbd = NbdBackend.open(address, BlockOptions.defaults(), Duration.ofMillis(400))) {
                ExecutorService pool = Executors.newFixedThreadPool(3);
                try {
                    List<Future<int[]>> workers = new ArrayList<>();
                    for (int t = 0; t < 3; t++) {
                        long workerSeed = seed * 100 + t;
                        boolean async = t == 2;
                        workers.add(pool.submit(() -> work(nbd, new Random(workerSeed), async)));
                    }
                    int ok = 0;
                    int failed = 0;
                    for (Future<int[]> f : workers) {
                        int[] r = f.get(2, TimeUnit.MINUTES);
                        ok += r[0];
                        failed += r[1];
                    }
                    assertThat(ok).as("seed %d: some requests got honest replies", seed).isPositive();
                    assertThat(failed).as("seed %d: and some were lied to", seed).isPositive();
                } finally {
                    pool.shutdownNow();
                }
            }
            listener.close();
            server.join(5000);
        }
        assertThat(connections.get()).as("a failed connection is replaced by a new one").isGreaterThan(1);
    }

    /** One request: its buffers are slices of a larger block whose edges must stay untouched. */
    private record Request(long offset, int length, int cut, boolean read, MemorySegment block, IoVector iov) {
        static Request random(Arena arena, Random random) {
            int length = 512 * (1 + random.nextInt(16));
            long offset = 512L * random.nextInt((DISK - length) / 512);
            MemorySegment block = arena.allocate(length + 2048).fill(GUARD);
            IoVector iov = new IoVector();
            int cut = 512 * random.nextInt(length / 512 + 1);
            if (cut > 0) {
                iov.add(block.asSlice(512, cut));
            }
            if (length - cut > 0) {
                iov.add(block.asSlice(1024 + cut, length - cut));
            }
            return new Request(offset, length, cut, random.nextBoolean(), block, iov);
        }

        /** After a success: a read holds the disk's bytes. Always: the guards are intact. */
        void check(boolean succeeded) {
            if (succeeded && read) {
                byte[] got = iov.toByteArray();
                for (int i = 0; i < length; i++) {
                    assertThat(got[i]).as("read byte %d at %d", i, offset).isEqualTo(pattern(offset + i));
                }
            }
            for (long i = 0; i < 512; i++) {
                assertThat(block.get(ValueLayout.JAVA_BYTE, i)).as("guard before").isEqualTo(GUARD);
                assertThat(block.get(ValueLayout.JAVA_BYTE, 512 + cut + i)).as("guard between").isEqualTo(GUARD);
                assertThat(block.get(ValueLayout.JAVA_BYTE, 1024 + length + i)).as("guard after").isEqualTo(GUARD);
            }
        }
    }

    /** One client thread: 60 random reads and writes, each checked; asynchronous ones four at a time. */
    private static int[] work(NbdBackend nbd, Random random, boolean async) throws Exception {
        int ok = 0;
        int failed = 0;
        try (Arena arena = async ? Arena.ofShared() : Arena.ofConfined()) {
            for (int op = 0; op < 60; op += async ? 4 : 1) {
                long start = System.nanoTime();
                List<Request> batch = new ArrayList<>();
                List<Future<Void>> futures = new ArrayList<>();
                for (int i = 0; i < (async ? 4 : 1); i++) {
                    Request r = Request.random(arena, random);
                    batch.add(r);
                    if (async) {
                        futures.add(r.read() ? nbd.readvAsync(r.offset(), r.iov(), Runnable::run)
                                : nbd.writevAsync(r.offset(), r.iov(), Runnable::run));
                    }
                }
                for (int i = 0; i < batch.size(); i++) {
                    Request r = batch.get(i);
                    boolean succeeded;
                    try {
                        if (async) {
                            futures.get(i).get(15, TimeUnit.SECONDS);
                        } else if (r.read()) {
                            nbd.readv(r.offset(), r.iov());
                        } else {
                            nbd.writev(r.offset(), r.iov());
                        }
                        succeeded = true;
                    } catch (IOException e) {
                        succeeded = false;
                    } catch (ExecutionException e) {
                        if (!(e.getCause() instanceof IOException)) {
                            throw e;
                        }
                        succeeded = false;
                    }
                    if (succeeded) {
                        ok++;
                    } else {
                        failed++;
                    }
                    r.check(succeeded);
                }
                assertThat(System.nanoTime() - start).as("bounded").isLessThan(TimeUnit.SECONDS.toNanos(15));
            }
        }
        return new int[] {ok, failed};
    }

    private static void serve(ServerSocket listener, Random random, AtomicInteger connections) {
        while (!listener.isClosed()) {
            try (Socket s = listener.accept()) {
                connections.incrementAndGet();
                s.setSoTimeout(5000);
                NbdBackendTest.handshake(s);
                transmission(s, random);
            } catch (IOException e) {
                // the client hung up, or we did: accept the next connection
            }
        }
    }

    private static void transmission(Socket s, Random random) throws IOException {
        DataInputStream in = new DataInputStream(s.getInputStream());
        OutputStream out = s.getOutputStream();
        while (true) {
            int magic = in.readInt();
            int flagsAndType = in.readInt();
            long cookie = in.readLong();
            long offset = in.readLong();
            int length = in.readInt();
            int type = flagsAndType & 0xffff;
            if (magic != NbdConnection.REQUEST_MAGIC) {
                throw new IOException("bad request magic from the client");
            }
            if (type == NbdConnection.CMD_DISC) {
                return;
            }
            if (type == NbdConnection.CMD_WRITE) {
                in.readNBytes(length);
            }
            int lie = random.nextInt(100);
            ByteBuffer reply = ByteBuffer.allocate(16 + (type == NbdConnection.CMD_READ ? length : 0) + 64);
            if (lie < 70) { // honest
                reply.putInt(NbdConnection.SIMPLE_REPLY_MAGIC).putInt(0).putLong(cookie);
                if (type == NbdConnection.CMD_READ) {
                    for (int i = 0; i < length; i++) {
                        reply.put(pattern(offset + i));
                    }
                }
            } else if (lie < 78) { // an error the server reports: the connection survives
                reply.putInt(NbdConnection.SIMPLE_REPLY_MAGIC).putInt(5).putLong(cookie);
            } else if (lie < 82) { // somebody else's cookie
                reply.putInt(NbdConnection.SIMPLE_REPLY_MAGIC).putInt(0).putLong(cookie ^ (1L << (8 + random.nextInt(40))));
            } else if (lie < 86) { // not a reply at all
                byte[] junk = new byte[16 + random.nextInt(40)];
                random.nextBytes(junk);
                reply.put(junk);
            } else if (lie < 89) { // a structured reply that was never negotiated
                reply.putInt(NbdConnection.STRUCTURED_REPLY_MAGIC).putShort((short) 1).putShort((short) 0)
                        .putLong(cookie).putInt(0);
            } else if (lie < 93) { // read data cut short, then hang up
                reply.putInt(NbdConnection.SIMPLE_REPLY_MAGIC).putInt(0).putLong(cookie);
                if (type == NbdConnection.CMD_READ) {
                    for (int i = 0; i < length / 2; i++) {
                        reply.put(pattern(offset + i));
                    }
                }
                out.write(reply.array(), 0, reply.position());
                out.flush();
                return;
            } else if (lie < 96) { // a reply, then another nobody asked for
                reply.putInt(NbdConnection.SIMPLE_REPLY_MAGIC).putInt(0).putLong(cookie);
                if (type == NbdConnection.CMD_READ) {
                    for (int i = 0; i < length; i++) {
                        reply.put(pattern(offset + i));
                    }
                }
                out.write(reply.array(), 0, reply.position());
                reply = ByteBuffer.allocate(16).putInt(NbdConnection.SIMPLE_REPLY_MAGIC).putInt(0).putLong(cookie);
            } else if (lie < 98) { // silence: the client's timeout must end the wait
                continue;
            } else { // hang up
                return;
            }
            out.write(reply.array(), 0, reply.position());
            out.flush();
        }
    }
}
