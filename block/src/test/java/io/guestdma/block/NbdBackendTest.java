package io.guestdma.block;

import io.guestdma.block.testing.NbdServer;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@link NbdBackend} against real servers: qemu-nbd and nbdkit, started here and stopped after. */
class NbdBackendTest {
    @TempDir
    Path dir;

    private static IoVector scattered(Arena arena, byte[] data, Random random) {
        IoVector iov = new IoVector();
        int at = 0;
        while (at < data.length) {
            int n = Math.min(data.length - at, 1 + random.nextInt(9000));
            iov.add(arena.allocate(n).copyFrom(MemorySegment.ofArray(data).asSlice(at, n)));
            at += n;
        }
        return iov;
    }

    private static IoVector empty(Arena arena, int bytes, int pieces) {
        IoVector iov = new IoVector();
        for (int i = 0; i < pieces; i++) {
            iov.add(arena.allocate(bytes / pieces).fill((byte) 0xAA));
        }
        return iov;
    }

    private Path rawImage(String name, int bytes) throws IOException {
        Path p = dir.resolve(name);
        NbdServer.run(NbdServer.require("qemu-img"), "create", "-q", "-f", "raw", p.toString(), Integer.toString(bytes));
        return p;
    }

    /** The same workload of vectored writes, FUA writes, zeroing and discards, on any backend. */
    private static void workload(BlockBackend disk, long seed) throws IOException {
        Random random = new Random(seed);
        try (Arena arena = Arena.ofConfined()) {
            for (int i = 0; i < 60; i++) {
                int len = 512 * (1 + random.nextInt(256));
                long offset = 512L * random.nextInt((int) (disk.size() - len) / 512);
                byte[] data = new byte[len];
                random.nextBytes(data);
                IoVector iov = scattered(arena, data, random);
                if (disk instanceof NbdBackend nbd && i % 7 == 0) {
                    nbd.writev(offset, iov, true);
                } else {
                    disk.writev(offset, iov);
                }
                if (i % 10 == 9) {
                    long at = 512L * random.nextInt((int) (disk.size() / 512) - 64);
                    if (disk instanceof NbdBackend nbd && i % 20 == 9) {
                        nbd.writeZeroes(at, 64 * 512, false);
                    } else {
                        disk.discard(at, 64 * 512);
                    }
                }
            }
            disk.write(12345, ByteBuffer.wrap("an unaligned heap write".getBytes(StandardCharsets.UTF_8)));
        }
        disk.flush();
    }

    @Test
    void writesThroughQemuNbdCompareEqualToTheSameWritesToALocalFile() throws Exception {
        Path served = rawImage("served.img", 8 << 20);
        Path local = rawImage("local.img", 8 << 20);
        try (NbdServer server = NbdServer.qemuNbdTcp(served, dir, "disk");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults())) {
            assertThat(nbd.size()).isEqualTo(8 << 20);
            assertThat(nbd.structuredReplies()).isTrue();
            workload(nbd, 7);
        }
        try (NativeBackend file = NativeBackend.open(local, BlockOptions.defaults())) {
            workload(file, 7);
        }
        String out = NbdServer.run(NbdServer.require("qemu-img"), "compare", "-f", "raw", "-F", "raw",
                served.toString(), local.toString());
        assertThat(out).contains("Images are identical");
        assertThat(Files.readAllBytes(served)).isEqualTo(Files.readAllBytes(local));
    }

    @Test
    void holesOfASparseImageReadAsZeroesOverStructuredReplies() throws Exception {
        Path img = rawImage("sparse.img", 4 << 20);
        byte[] data = new byte[8192];
        new Random(3).nextBytes(data);
        try (var ch = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(data), 1 << 20);
        }
        try (NbdServer server = NbdServer.qemuNbd(img, dir, "sparse");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofConfined()) {
            IoVector in = empty(arena, 2 << 20, 64);
            nbd.readv(0, in);
            byte[] got = in.toByteArray();
            assertThat(Arrays.copyOfRange(got, 0, 1 << 20)).as("hole before the data").containsOnly((byte) 0);
            assertThat(Arrays.copyOfRange(got, 1 << 20, (1 << 20) + 8192)).isEqualTo(data);
            assertThat(Arrays.copyOfRange(got, (1 << 20) + 8192, 2 << 20)).as("hole after").containsOnly((byte) 0);
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void serverErrorsBecomeTheErrnoTheDeviceReportsAndTheConnectionSurvives(boolean structured) throws Exception {
        Path writeFails = dir.resolve("write-fails");
        Path readFails = dir.resolve("read-fails");
        Path zeroFails = dir.resolve("zero-fails");
        List<String> args = new ArrayList<>(List.of("--exit-with-parent"));
        if (!structured) {
            args.add("--no-sr");
        }
        args.addAll(List.of("--filter=error", "memory", "size=4M",
                "error-pwrite=ENOSPC", "error-pwrite-rate=100%", "error-pwrite-file=" + writeFails,
                "error-pread=EIO", "error-pread-rate=100%", "error-pread-file=" + readFails,
                "error-zero=EPERM", "error-zero-rate=100%", "error-zero-file=" + zeroFails));
        try (NbdServer server = NbdServer.nbdkit(dir, "errors-" + structured, args.toArray(String[]::new));
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofConfined()) {
            assertThat(nbd.structuredReplies()).isEqualTo(structured);
            IoVector out = new IoVector().add(arena.allocate(4096).fill((byte) 0x5A));
            IoVector in = empty(arena, 4096, 2);
            nbd.writev(8192, out);

            Files.createFile(writeFails);
            assertThatThrownBy(() -> nbd.writev(8192, out)).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.ENOSPC)).hasMessageContaining("nbd write(offset 8192");
            Files.delete(writeFails);

            Files.createFile(readFails);
            assertThatThrownBy(() -> nbd.readv(8192, in)).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EIO));
            Files.delete(readFails);

            Files.createFile(zeroFails);
            assertThatThrownBy(() -> nbd.discard(0, 4096)).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EPERM));
            Files.delete(zeroFails);

            nbd.readv(8192, in);
            assertThat(in.toByteArray()).as("errors did not cost the connection or the data").containsOnly((byte) 0x5A);
            assertThat(nbd.connectionCount()).isEqualTo(1);
        }
    }

    @Test
    void requestsFromSeveralThreadsAreInFlightAtOnce() throws Exception {
        Path log = dir.resolve("requests.log");
        int threads = 8;
        try (NbdServer server = NbdServer.nbdkit(dir, "pipeline", "--exit-with-parent", "--filter=log",
                "--filter=delay", "memory", "size=8M", "logfile=" + log, "delay-read=1");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults())) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                CountDownLatch start = new CountDownLatch(1);
                List<Future<?>> reads = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int me = t;
                    reads.add(pool.submit(() -> {
                        start.await();
                        try (Arena arena = Arena.ofConfined()) {
                            nbd.readv(me * 65536L, empty(arena, 65536, 4));
                        }
                        return null;
                    }));
                }
                start.countDown();
                for (Future<?> f : reads) {
                    f.get(1, TimeUnit.MINUTES);
                }
            } finally {
                pool.shutdownNow();
            }
        }
        // The server's log: every read starts ("Read id=N") before the first one returns. Each
        // thread has the server's 1 s delay to send its read, a margin for a thread left
        // unscheduled a while on a loaded machine.
        int inFlight = 0;
        int most = 0;
        for (String line : Files.readAllLines(log)) {
            if (line.contains(" Read id=")) {
                most = Math.max(most, ++inFlight);
            } else if (line.contains("...Read id=")) {
                inFlight--;
            }
        }
        assertThat(most).as("reads in flight at once on one connection").isEqualTo(threads);
    }

    /**
     * Many threads, each on its own part of the disk, mixing vectored reads and writes of random
     * sizes: every read must return exactly what that thread last wrote there. Replies for one
     * thread are read off the socket by whichever thread holds the reader role, and read data is
     * handed to its owner, so a reply matched to the wrong request or data moved into the wrong
     * buffers shows up as a wrong byte.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qemu-nbd", "nbdkit"})
    void concurrentReadsAndWritesEachSeeTheirOwnData(String serverKind) throws Exception {
        int threads = 6;
        int part = 512 * 1024;
        Path img = rawImage("mixed.img", threads * part);
        try (NbdServer server = serverKind.equals("qemu-nbd")
                ? NbdServer.qemuNbd(img, dir, "mixed", "-e", "16")
                : NbdServer.nbdkit(dir, "mixed", "--exit-with-parent", "memory", "size=" + threads * part);
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults())) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                CountDownLatch start = new CountDownLatch(1);
                List<Future<Integer>> results = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int me = t;
                    results.add(pool.submit(() -> {
                        start.await();
                        Random random = new Random(me * 7919L);
                        byte[] model = new byte[part];
                        int checked = 0;
                        for (int op = 0; op < 150; op++) {
                            int length = 512 * (1 + random.nextInt(96));
                            int at = 512 * random.nextInt((part - length) / 512 + 1);
                            long offset = (long) me * part + at;
                            try (Arena arena = Arena.ofConfined()) {
                                if (random.nextBoolean()) {
                                    byte[] data = new byte[length];
                                    random.nextBytes(data);
                                    nbd.writev(offset, scattered(arena, data, random));
                                    System.arraycopy(data, 0, model, at, length);
                                } else {
                                    IoVector iov = empty(arena, length, length % 2048 == 0 ? 4 : 1);
                                    nbd.readv(offset, iov);
                                    byte[] got = new byte[length];
                                    iov.copyTo(0, got, 0, length);
                                    assertThat(Arrays.mismatch(got, Arrays.copyOfRange(model, at, at + length)))
                                            .as("thread %d, op %d: first wrong byte of %d at %d", me, op, length, offset)
                                            .isEqualTo(-1);
                                    checked++;
                                }
                            }
                        }
                        return checked;
                    }));
                }
                start.countDown();
                int checked = 0;
                for (Future<Integer> f : results) {
                    checked += f.get(2, TimeUnit.MINUTES);
                }
                assertThat(checked).isGreaterThan(threads * 50);
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void moreRequestsThanSlotsWaitTheirTurnAndAllComplete() throws Exception {
        int threads = 80; // more than the 64 requests one connection keeps in flight
        try (NbdServer server = NbdServer.nbdkit(dir, "queue", "--exit-with-parent", "--filter=delay", "memory",
                "size=8M", "delay-read=100ms");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults())) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                CountDownLatch start = new CountDownLatch(1);
                List<Future<?>> reads = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int me = t;
                    reads.add(pool.submit(() -> {
                        start.await();
                        try (Arena arena = Arena.ofConfined()) {
                            IoVector iov = empty(arena, 4096, 1);
                            nbd.readv(me * 4096L, iov);
                            byte[] got = new byte[4096];
                            iov.copyTo(0, got, 0, 4096);
                            assertThat(got).containsOnly(0);
                        }
                        return null;
                    }));
                }
                start.countDown();
                for (Future<?> f : reads) {
                    f.get(1, TimeUnit.MINUTES);
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }

    @Test
    void aServerKilledMidWriteIsReconnectedAndRetriedWritesLoseNothing() throws Exception {
        int slot = 1 << 20;
        int threads = 4;
        Path served = rawImage("crash.img", threads * slot);
        Path reference = rawImage("reference.img", threads * slot);
        AtomicInteger failures = new AtomicInteger();
        AtomicBoolean restarted = new AtomicBoolean();
        try (NbdServer server = NbdServer.qemuNbdTcp(served, dir, "crash");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults(), Duration.ofSeconds(10));
             NativeBackend ref = NativeBackend.open(reference, BlockOptions.defaults())) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            CountDownLatch running = new CountDownLatch(threads);
            try {
                List<Future<?>> writers = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int me = t;
                    writers.add(pool.submit(() -> {
                        Random random = new Random(me);
                        try (Arena arena = Arena.ofConfined()) {
                            // Writing on until the server is back: a writer that had done its
                            // rounds before the kill would leave the kill nothing to hit.
                            for (int round = 0; round < 40 || !restarted.get(); round++) {
                                byte[] data = new byte[64 * 1024];
                                random.nextBytes(data);
                                long offset = (long) me * slot + 65536L * (round % 16);
                                IoVector iov = scattered(arena, data, random);
                                // What a device under the STOP policy does: the failed request
                                // is held and retried once the machine resumes.
                                for (int attempt = 0; ; attempt++) {
                                    try {
                                        nbd.writev(offset, iov);
                                        break;
                                    } catch (PosixException e) {
                                        assertThat(e.errno()).isEqualTo(Errno.EIO);
                                        assertThat(attempt).as("retries while the server is down").isLessThan(500);
                                        failures.incrementAndGet();
                                        Thread.sleep(20);
                                    }
                                }
                                ref.writev(offset, iov);
                                if (round == 3) {
                                    running.countDown();
                                }
                            }
                        }
                        return null;
                    }));
                }
                running.await(1, TimeUnit.MINUTES);
                server.kill();
                Thread.sleep(300);
                server.restart();
                restarted.set(true);
                for (Future<?> f : writers) {
                    f.get(2, TimeUnit.MINUTES);
                }
            } finally {
                restarted.set(true); // also when the kill or the restart failed: no writer goes on for ever
                pool.shutdownNow();
            }
            nbd.flush();
            assertThat(failures.get()).as("the kill hit writes in flight").isPositive();
            assertThat(nbd.connectionCount()).as("the backend reconnected").isGreaterThan(1);
        }
        String out = NbdServer.run(NbdServer.require("qemu-img"), "compare", "-f", "raw", "-F", "raw",
                served.toString(), reference.toString());
        assertThat(out).contains("Images are identical");
    }

    @Test
    void aDroppedConnectionWakesEveryWaiterAndANewServerIsFoundLater() throws Exception {
        Path img = rawImage("drop.img", 1 << 20);
        try (NbdServer slow = NbdServer.nbdkit(dir, "slow", "--exit-with-parent", "--filter=delay", "file",
                "file=" + img, "delay-read=20");
             NbdBackend nbd = NbdBackend.open(slow.address(), BlockOptions.defaults())) {
            ExecutorService pool = Executors.newFixedThreadPool(3);
            try {
                List<Future<Throwable>> reads = new ArrayList<>();
                for (int t = 0; t < 3; t++) {
                    int me = t;
                    reads.add(pool.submit(() -> {
                        try (Arena arena = Arena.ofConfined()) {
                            nbd.readv(me * 4096L, empty(arena, 4096, 1));
                            return null;
                        } catch (IOException e) {
                            return e;
                        }
                    }));
                }
                Thread.sleep(300);
                long killed = System.nanoTime();
                slow.kill();
                for (Future<Throwable> f : reads) {
                    assertThat(f.get(10, TimeUnit.SECONDS)).isInstanceOfSatisfying(PosixException.class,
                            e -> assertThat(e.errno()).isEqualTo(Errno.EIO));
                }
                assertThat(System.nanoTime() - killed).as("woken by the close, not by the 20 s delay")
                        .isLessThan(TimeUnit.SECONDS.toNanos(10));
            } finally {
                pool.shutdownNow();
            }
            assertThat(nbd.isConnected()).isFalse();
            try (Arena arena = Arena.ofConfined()) {
                IoVector one = empty(arena, 512, 1);
                assertThatThrownBy(() -> nbd.readv(0, one)).isInstanceOfSatisfying(PosixException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.EIO)).hasMessageContaining("reconnect");
            }
        }
    }

    @Test
    void aReplyThatNeverComesTimesOutInsteadOfHanging() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "stalled", "--exit-with-parent", "--filter=delay", "memory",
                "size=1M", "delay-read=30");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults(), Duration.ofMillis(500));
             Arena arena = Arena.ofConfined()) {
            IoVector in = empty(arena, 4096, 1);
            long start = System.nanoTime();
            assertThatThrownBy(() -> nbd.readv(0, in)).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EIO)).hasMessageContaining("no reply").hasMessageContaining("500 ms");
            assertThat(System.nanoTime() - start).isLessThan(TimeUnit.SECONDS.toNanos(10));
        }
    }

    @Test
    void readsIntoReadOnlyMemoryAreRefusedBeforeAnyIo() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "ro-memory", "--exit-with-parent", "memory", "size=1M");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofConfined()) {
            MemorySegment writable = arena.allocate(512).fill((byte) 7);
            IoVector iov = new IoVector().add(writable).add(arena.allocate(512).asReadOnly());
            assertThatThrownBy(() -> nbd.readv(0, iov)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("segment 1").hasMessageContaining("read-only");
            assertThat(writable.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)).containsOnly((byte) 7);
            assertThatThrownBy(() -> nbd.read(0, ByteBuffer.allocateDirect(8).asReadOnlyBuffer()))
                    .isInstanceOf(IllegalArgumentException.class);
            nbd.writev(0, new IoVector().add(arena.allocate(512).fill((byte) 1).asReadOnly()));
        }
    }

    @Test
    void readOnlyExportsNeedAReadOnlyOpenAndRefuseWrites() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "readonly", "--exit-with-parent", "-r", "memory", "size=1M")) {
            assertThatThrownBy(() -> NbdBackend.open(server.address(), BlockOptions.defaults()))
                    .isInstanceOf(IOException.class).hasMessageContaining("read-only");
            try (NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults().withReadOnly(true));
                 Arena arena = Arena.ofConfined()) {
                assertThat(nbd.isReadOnly()).isTrue();
                IoVector iov = new IoVector().add(arena.allocate(512));
                assertThatThrownBy(() -> nbd.writev(0, iov)).isInstanceOf(ReadOnlyImageException.class);
                assertThatThrownBy(() -> nbd.trim(0, 512)).isInstanceOf(ReadOnlyImageException.class);
                nbd.readv(0, iov);
                nbd.flush();
            }
        }
    }

    @Test
    void theServersBlockSizesAreObeyed() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "blocksize", "--exit-with-parent", "--filter=blocksize-policy",
                "memory", "size=4M", "blocksize-minimum=512", "blocksize-preferred=4096",
                "blocksize-maximum=65536", "blocksize-error-policy=error");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofConfined()) {
            assertThat(nbd.minimumBlockSize()).isEqualTo(512);
            byte[] data = new byte[1 << 20];
            new Random(9).nextBytes(data);
            nbd.writev(4096, scattered(arena, data, new Random(1)));
            IoVector in = empty(arena, 1 << 20, 16);
            nbd.readv(4096, in);
            assertThat(in.toByteArray()).as("a 1 MiB request split at the 64 KiB maximum").isEqualTo(data);
            IoVector odd = new IoVector().add(arena.allocate(100));
            assertThatThrownBy(() -> nbd.writev(512, odd)).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL)).hasMessageContaining("multiples of 512");
        }
    }

    @Test
    void unknownExportsAndRefusedConnectionsAreNamed() throws Exception {
        Path img = rawImage("named.img", 1 << 20);
        try (NbdServer server = NbdServer.qemuNbd(img, dir, "right")) {
            NbdAddress.Unix wrong = new NbdAddress.Unix(((NbdAddress.Unix) server.address()).socket(), "wrong");
            assertThatThrownBy(() -> NbdBackend.open(wrong, BlockOptions.defaults()))
                    .isInstanceOf(IOException.class).hasMessageContaining("refused export 'wrong'")
                    .hasMessageContaining("NBD_REP_ERR_UNKNOWN");
        }
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        assertThatThrownBy(() -> NbdBackend.open(new NbdAddress.Tcp("127.0.0.1", port, ""), BlockOptions.defaults()))
                .isInstanceOf(IOException.class).hasMessageContaining("cannot connect to nbd://127.0.0.1:" + port);
        assertThatThrownBy(() -> NbdBackend.open(new NbdAddress.Unix(dir.resolve("none.sock"), ""),
                BlockOptions.defaults())).isInstanceOf(IOException.class).hasMessageContaining("cannot connect");
        assertThatThrownBy(() -> NbdBackend.open(new NbdAddress.Tcp("127.0.0.1", port, ""),
                BlockOptions.defaults().withDirect(true))).isInstanceOf(IllegalArgumentException.class);
    }

    /** A fake server that accepts one connection and does {@code script} with it. */
    private static void againstFakeServer(Consumer<Socket> script, Consumer<NbdAddress> client) throws Exception {
        try (ServerSocket listener = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Thread server = Thread.ofPlatform().daemon().start(() -> {
                try (Socket s = listener.accept()) {
                    script.accept(s);
                } catch (IOException ignored) {
                    // the client gave up first
                }
            });
            client.accept(new NbdAddress.Tcp("127.0.0.1", listener.getLocalPort(), ""));
            server.join(5000);
        }
    }

    private static void send(Socket s, ByteBuffer b) {
        try {
            OutputStream out = s.getOutputStream();
            out.write(b.array(), 0, b.position());
            out.flush();
        } catch (IOException ignored) {
            // the client may have closed already
        }
    }

    private static void expectFailure(NbdAddress address, Duration timeout, String message) {
        long start = System.nanoTime();
        assertThatThrownBy(() -> NbdBackend.open(address, BlockOptions.defaults(), timeout))
                .isInstanceOf(IOException.class).hasMessageContaining(message);
        assertThat(System.nanoTime() - start).as("fails promptly").isLessThan(TimeUnit.SECONDS.toNanos(10));
    }

    @Test
    void serversThatMisbehaveDuringTheHandshakeGiveErrorsNeverHangs() throws Exception {
        againstFakeServer(s -> { }, a -> expectFailure(a, Duration.ofSeconds(30), "closed the connection"));
        againstFakeServer(s -> {
            send(s, ByteBuffer.allocate(18).putLong(NbdConnection.NBDMAGIC).putLong(NbdConnection.IHAVEOPT)
                    .putShort((short) 1));
            // Reads the client flags and the first option, then hangs up mid-negotiation.
            try {
                s.getInputStream().readNBytes(4 + 16);
            } catch (IOException ignored) {
                // the client may have closed already
            }
        }, a -> expectFailure(a, Duration.ofSeconds(30), "closed the connection"));
        againstFakeServer(s -> {
            try {
                InputStream in = s.getInputStream();
                in.read(); // silent: never greets; the client must give up on its own
            } catch (IOException ignored) {
                // closed by the client's timeout
            }
        }, a -> expectFailure(a, Duration.ofMillis(500), "timed out"));
        againstFakeServer(s -> send(s, ByteBuffer.allocate(18).put("HTTP/1.1 200 OK\r\n\r\n".getBytes(StandardCharsets.US_ASCII), 0, 18)),
                a -> expectFailure(a, Duration.ofSeconds(30), "not an NBD server"));
        againstFakeServer(s -> send(s, ByteBuffer.allocate(18).putLong(NbdConnection.NBDMAGIC)
                        .putLong(NbdConnection.IHAVEOPT).putShort((short) 0)),
                a -> expectFailure(a, Duration.ofSeconds(30), "fixed newstyle"));
    }

    /** Plays a server's side of a successful handshake (no structured replies, a 64 MiB export). */
    static void handshake(Socket s) throws IOException {
        InputStream in = s.getInputStream();
        send(s, ByteBuffer.allocate(18).putLong(NbdConnection.NBDMAGIC).putLong(NbdConnection.IHAVEOPT)
                .putShort((short) 1));
        in.readNBytes(4);
        for (int option = 0; option < 2; option++) {
            ByteBuffer header = ByteBuffer.wrap(in.readNBytes(16));
            int code = header.getInt(8);
            in.readNBytes(header.getInt(12));
            if (code == NbdConnection.OPT_STRUCTURED_REPLY) {
                send(s, ByteBuffer.allocate(20).putLong(NbdConnection.OPTION_REPLY_MAGIC).putInt(code)
                        .putInt(NbdConnection.REP_ERR_UNSUP).putInt(0));
            } else {
                send(s, ByteBuffer.allocate(52).putLong(NbdConnection.OPTION_REPLY_MAGIC).putInt(code)
                        .putInt(NbdConnection.REP_INFO).putInt(12).putShort((short) NbdConnection.INFO_EXPORT)
                        .putLong(64 << 20).putShort((short) 1)
                        .putLong(NbdConnection.OPTION_REPLY_MAGIC).putInt(code).putInt(NbdConnection.REP_ACK).putInt(0));
            }
        }
    }

    @Test
    void aServerThatStopsReadingFailsTheWriteInsteadOfBlockingIt() throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        againstFakeServer(s -> {
            try {
                handshake(s);
                done.await(30, TimeUnit.SECONDS); // then never reads a byte of the transmission phase
            } catch (IOException | InterruptedException ignored) {
                // the client gave up
            }
        }, address -> {
            try (NbdBackend nbd = NbdBackend.open(address, BlockOptions.defaults(), Duration.ofMillis(500));
                 Arena arena = Arena.ofConfined()) {
                assertThat(nbd.size()).isEqualTo(64 << 20);
                IoVector big = new IoVector().add(arena.allocate(32 << 20));
                long start = System.nanoTime();
                assertThatThrownBy(() -> nbd.writev(0, big)).isInstanceOfSatisfying(PosixException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.EIO)).hasMessageContaining("no progress");
                assertThat(System.nanoTime() - start).isLessThan(TimeUnit.SECONDS.toNanos(10));
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            } finally {
                done.countDown();
            }
        });
    }

    @Test
    void closeIsIdempotentAndLaterRequestsFail() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "close", "--exit-with-parent", "memory", "size=1M")) {
            NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
            nbd.close();
            nbd.close();
            try (Arena arena = Arena.ofConfined()) {
                IoVector iov = new IoVector().add(arena.allocate(512));
                assertThatThrownBy(() -> nbd.readv(0, iov)).isInstanceOf(IOException.class).hasMessageContaining("closed");
                assertThatThrownBy(nbd::reconnect).isInstanceOf(IOException.class).hasMessageContaining("closed");
            }
        }
    }
}
