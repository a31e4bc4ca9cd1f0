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
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link NbdBackend}'s asynchronous requests against real servers (qemu-nbd, nbdkit): many in
 * flight from one thread, mixed with synchronous callers, and what happens to them when the
 * server dies or the backend is closed.
 */
class NbdAsyncTest {
    private static final Executor DIRECT = Runnable::run;

    @TempDir
    Path dir;

    private Path rawImage(String name, int bytes) throws IOException {
        return rawImage(dir, name, bytes);
    }

    /** A raw image of {@code bytes} zeroes in {@code dir}, made by qemu-img. */
    static Path rawImage(Path dir, String name, int bytes) throws IOException {
        Path p = dir.resolve(name);
        NbdServer.run(NbdServer.require("qemu-img"), "create", "-q", "-f", "raw", p.toString(), Integer.toString(bytes));
        return p;
    }

    /** {@code bytes} in pieces of random sizes, each pre-filled with 0xAA (so a missed byte shows). */
    static IoVector pieces(Arena arena, int bytes, Random random) {
        IoVector iov = new IoVector();
        int at = 0;
        while (at < bytes) {
            int n = Math.min(bytes - at, 1 + random.nextInt(9000));
            iov.add(arena.allocate(n).fill((byte) 0xAA));
            at += n;
        }
        return iov;
    }

    static IoVector piecesOf(Arena arena, byte[] data, int from, int length, Random random) {
        IoVector iov = pieces(arena, length, random);
        iov.copyFrom(0, MemorySegment.ofArray(data), from, length);
        return iov;
    }

    private static long threadsNamed(String prefix) {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.isAlive() && t.getName().startsWith(prefix)).count();
    }

    static long openDescriptors() throws IOException {
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        }
    }

    /**
     * One thread keeps up to 32 writes of random sizes and places in flight, then reads the whole
     * image back with up to 32 reads in flight (holes among them, over qemu-nbd's structured
     * replies): the image file and every read buffer must match a model byte for byte.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qemu-nbd", "nbdkit"})
    void manyRequestsInFlightFromOneThreadMatchTheImageByteForByte(String serverKind) throws Exception {
        int size = 4 << 20;
        Path img = rawImage("many.img", size);
        byte[] model = new byte[size];
        Random random = new Random(serverKind.hashCode());
        try (NbdServer server = NbdServer.servingImage(serverKind, img, dir, "many");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            // Writes go to 64 KiB slots of the first half (the second half stays a hole for the
            // reads); two writes in flight never share a slot, so the model is exact.
            int slotBytes = 65536;
            int slotCount = size / 2 / slotBytes;
            ArrayDeque<CompletableFuture<Void>> inFlight = new ArrayDeque<>();
            ArrayDeque<Integer> busy = new ArrayDeque<>();
            for (int i = 0; i < 400; i++) {
                if (inFlight.size() == 24) {
                    inFlight.removeFirst().get(1, TimeUnit.MINUTES);
                    busy.removeFirst();
                }
                int slot;
                do {
                    slot = random.nextInt(slotCount);
                } while (busy.contains(slot));
                int length = 512 * (1 + random.nextInt(slotBytes / 512));
                int at = slot * slotBytes + 512 * random.nextInt((slotBytes - length) / 512 + 1);
                byte[] data = new byte[length];
                random.nextBytes(data);
                System.arraycopy(data, 0, model, at, length);
                inFlight.addLast(nbd.writevAsync(at, piecesOf(arena, data, 0, length, random), DIRECT));
                busy.addLast(slot);
            }
            while (!inFlight.isEmpty()) {
                inFlight.removeFirst().get(1, TimeUnit.MINUTES);
            }
            // Discards in flight together (one WRITE_ZEROES each where the server has it).
            List<CompletableFuture<Void>> discards = new ArrayList<>();
            for (int slot = 1; slot < slotCount; slot += 5) {
                discards.add(nbd.discardAsync((long) slot * slotBytes + 4096, 8192, DIRECT));
                Arrays.fill(model, slot * slotBytes + 4096, slot * slotBytes + 4096 + 8192, (byte) 0);
            }
            CompletableFuture.allOf(discards.toArray(CompletableFuture[]::new)).get(1, TimeUnit.MINUTES);
            nbd.flushAsync(DIRECT).get(1, TimeUnit.MINUTES);
            assertThat(Arrays.mismatch(Files.readAllBytes(img), model)).as("first wrong byte of the image").isEqualTo(-1);

            List<IoVector> reads = new ArrayList<>();
            List<CompletableFuture<Void>> done = new ArrayList<>();
            int chunk = 128 * 1024;
            for (int at = 0; at < size; at += chunk) {
                IoVector in = pieces(arena, chunk, random);
                reads.add(in);
                done.add(nbd.readvAsync(at, in, DIRECT));
            }
            CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)).get(1, TimeUnit.MINUTES);
            for (int i = 0; i < reads.size(); i++) {
                byte[] got = reads.get(i).toByteArray();
                assertThat(Arrays.mismatch(got, Arrays.copyOfRange(model, i * chunk, (i + 1) * chunk)))
                        .as("read %d: first wrong byte", i).isEqualTo(-1);
            }
        }
    }

    /**
     * Writes sent back to back from one thread are all on the wire before the first reply comes
     * back (nbdkit's log shows them), and no thread per request was started: with the default
     * (the synchronous call on the executor), a direct executor would send them one at a time.
     */
    @Test
    void oneThreadKeepsManyRequestsOnTheWireWithOneReplyThread() throws Exception {
        Path log = dir.resolve("requests.log");
        int depth = 12;
        long threadsBefore = Thread.activeCount();
        try (NbdServer server = NbdServer.nbdkit(dir, "async-pipeline", "--exit-with-parent", "--filter=log",
                "--filter=delay", "memory", "size=8M", "logfile=" + log, "delay-write=1", "delay-read=300ms");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            List<CompletableFuture<Void>> writes = new ArrayList<>();
            long start = System.nanoTime();
            for (int i = 0; i < depth; i++) {
                IoVector iov = new IoVector().add(arena.allocate(65536).fill((byte) i));
                writes.add(nbd.writevAsync(i * 65536L, iov, DIRECT));
            }
            long submitted = System.nanoTime() - start;
            assertThat(submitted).as("sending %d writes does not wait for their replies", depth)
                    .isLessThan(TimeUnit.SECONDS.toNanos(1));
            assertThat(writes).noneMatch(CompletableFuture::isDone);
            assertThat(threadsNamed("nbd-replies")).as("one reply thread for the connection").isEqualTo(1);
            assertThat(Thread.activeCount() - threadsBefore).as("no thread per request").isLessThan(4);
            CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).get(1, TimeUnit.MINUTES);

            IoVector in = new IoVector().add(arena.allocate(depth * 65536L));
            nbd.readvAsync(0, in, DIRECT).get(1, TimeUnit.MINUTES);
            byte[] got = in.toByteArray();
            for (int i = 0; i < depth; i++) {
                assertThat(Arrays.copyOfRange(got, i * 65536, (i + 1) * 65536)).containsOnly((byte) i);
            }
        }
        int inFlight = 0;
        int most = 0;
        for (String line : Files.readAllLines(log)) {
            if (line.contains(" Write id=")) {
                most = Math.max(most, ++inFlight);
            } else if (line.contains("...Write id=")) {
                inFlight--;
            }
        }
        assertThat(most).as("writes in flight at once on the wire").isEqualTo(depth);
    }

    /**
     * Synchronous callers in several threads and one thread with asynchronous requests share the
     * connection, each on its own part of the disk; every read returns what its owner last wrote
     * there. Replies for either kind are read by the reply thread or by a synchronous caller
     * holding the reader role, so a reply matched to the wrong request shows up as a wrong byte.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qemu-nbd", "nbdkit"})
    void synchronousAndAsynchronousRequestsShareTheConnection(String serverKind) throws Exception {
        int threads = 4;
        int part = 512 * 1024;
        Path img = rawImage("mixed.img", (threads + 1) * part);
        try (NbdServer server = serverKind.equals("qemu-nbd")
                ? NbdServer.qemuNbd(img, dir, "mixed")
                : NbdServer.nbdkit(dir, "mixed", "--exit-with-parent", "memory", "size=" + (threads + 1) * part);
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults())) {
            ExecutorService pool = Executors.newFixedThreadPool(threads + 1);
            try {
                CountDownLatch start = new CountDownLatch(1);
                List<Future<Integer>> results = new ArrayList<>();
                for (int t = 0; t <= threads; t++) {
                    int me = t;
                    boolean async = t == threads;
                    results.add(pool.submit(() -> {
                        start.await();
                        return async ? asyncWorker(nbd, (long) me * part, part, me) : syncWorker(nbd, (long) me * part, part, me);
                    }));
                }
                start.countDown();
                int checked = 0;
                for (Future<Integer> f : results) {
                    checked += f.get(2, TimeUnit.MINUTES);
                }
                assertThat(checked).isGreaterThan(threads * 30);
            } finally {
                pool.shutdownNow();
            }
        }
    }

    private static int syncWorker(NbdBackend nbd, long base, int part, int seed) throws IOException {
        Random random = new Random(seed * 7919L);
        byte[] model = new byte[part];
        int checked = 0;
        for (int op = 0; op < 120; op++) {
            int length = 512 * (1 + random.nextInt(96));
            int at = 512 * random.nextInt((part - length) / 512 + 1);
            try (Arena arena = Arena.ofConfined()) {
                if (random.nextBoolean()) {
                    byte[] data = new byte[length];
                    random.nextBytes(data);
                    nbd.writev(base + at, piecesOf(arena, data, 0, length, random));
                    System.arraycopy(data, 0, model, at, length);
                } else {
                    IoVector in = pieces(arena, length, random);
                    nbd.readv(base + at, in);
                    assertThat(Arrays.mismatch(in.toByteArray(), Arrays.copyOfRange(model, at, at + length)))
                            .as("sync worker %d, op %d", seed, op).isEqualTo(-1);
                    checked++;
                }
            }
        }
        return checked;
    }

    /** Batches of 8 requests in flight on disjoint 64 KiB slots of its part, checked after each batch. */
    private static int asyncWorker(NbdBackend nbd, long base, int part, int seed) throws Exception {
        Random random = new Random(seed * 7919L);
        byte[] model = new byte[part];
        int slot = 65536;
        int checked = 0;
        try (Arena arena = Arena.ofShared()) {
            for (int round = 0; round < 20; round++) {
                List<CompletableFuture<Void>> batch = new ArrayList<>();
                List<Runnable> checks = new ArrayList<>();
                for (int s = 0; s < part / slot; s++) {
                    int length = 512 * (1 + random.nextInt(slot / 512));
                    int at = s * slot;
                    if (random.nextBoolean()) {
                        byte[] data = new byte[length];
                        random.nextBytes(data);
                        batch.add(nbd.writevAsync(base + at, piecesOf(arena, data, 0, length, random), DIRECT));
                        System.arraycopy(data, 0, model, at, length);
                    } else {
                        IoVector in = pieces(arena, length, random);
                        byte[] expected = Arrays.copyOfRange(model, at, at + length);
                        batch.add(nbd.readvAsync(base + at, in, DIRECT));
                        int op = round;
                        checks.add(() -> assertThat(Arrays.mismatch(in.toByteArray(), expected))
                                .as("async worker, round %d at %d", op, at).isEqualTo(-1));
                    }
                }
                CompletableFuture.allOf(batch.toArray(CompletableFuture[]::new)).get(1, TimeUnit.MINUTES);
                checks.forEach(Runnable::run);
                checked += checks.size();
            }
        }
        return checked;
    }

    @Test
    void aServerKilledWithRequestsPendingFailsEveryFutureWithEio() throws Exception {
        long fdsBefore = openDescriptors();
        try (NbdServer slow = NbdServer.nbdkit(dir, "killed", "--exit-with-parent", "--filter=delay", "memory",
                "size=8M", "delay-read=20", "delay-write=20");
             NbdBackend nbd = NbdBackend.open(slow.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            ExecutorService completions = Executors.newSingleThreadExecutor();
            try {
                List<CompletableFuture<Void>> pending = new ArrayList<>();
                for (int i = 0; i < 20; i++) {
                    IoVector iov = new IoVector().add(arena.allocate(4096));
                    pending.add(i % 2 == 0 ? nbd.readvAsync(i * 4096L, iov, completions)
                            : nbd.writevAsync(i * 4096L, iov, completions));
                }
                pending.add(nbd.flushAsync(completions));
                Thread.sleep(300);
                assertThat(pending).noneMatch(CompletableFuture::isDone);
                long killed = System.nanoTime();
                slow.kill();
                for (CompletableFuture<Void> f : pending) {
                    assertThatThrownBy(() -> f.get(10, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                            .cause().isInstanceOfSatisfying(PosixException.class,
                                    e -> assertThat(e.errno()).isEqualTo(Errno.EIO));
                }
                assertThat(System.nanoTime() - killed).as("failed by the lost connection, not by the 20 s delay")
                        .isLessThan(TimeUnit.SECONDS.toNanos(10));
            } finally {
                completions.shutdownNow();
            }
            assertThat(nbd.isConnected()).isFalse();
            // With the server gone, a new request cannot reconnect: it fails too, never hangs.
            IoVector one = new IoVector().add(arena.allocate(512));
            assertThatThrownBy(() -> nbd.readvAsync(0, one, DIRECT).get(10, TimeUnit.SECONDS))
                    .isInstanceOf(ExecutionException.class).cause().isInstanceOf(IOException.class)
                    .hasMessageContaining("reconnect");
        }
        awaitNoReplyThread();
        assertThat(openDescriptors()).as("no descriptor left open").isLessThanOrEqualTo(fdsBefore);
    }

    @Test
    void aReplyThatNeverComesFailsTheFutureWithinTheTimeout() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "stalled", "--exit-with-parent", "--filter=delay", "memory",
                "size=1M", "delay-read=30");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults(), Duration.ofMillis(500));
             Arena arena = Arena.ofShared()) {
            IoVector in = new IoVector().add(arena.allocate(4096));
            long start = System.nanoTime();
            CompletableFuture<Void> read = nbd.readvAsync(0, in, DIRECT);
            assertThatThrownBy(() -> read.get(20, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOfSatisfying(PosixException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EIO))
                    .hasMessageContaining("no reply");
            assertThat(System.nanoTime() - start).isLessThan(TimeUnit.SECONDS.toNanos(10));
        }
    }

    /**
     * close() with asynchronous writes pending: it waits for them (the server answers within its
     * delay), so when it returns every future is complete and every byte is in the image; the
     * reply thread has ended and the socket is closed.
     */
    @Test
    void closeWaitsForPendingRequestsAndEndsTheReplyThread() throws Exception {
        Path img = rawImage("close.img", 1 << 20);
        long fdsBefore = openDescriptors();
        List<CompletableFuture<Void>> writes = new ArrayList<>();
        try (NbdServer server = NbdServer.nbdkit(dir, "closing", "--exit-with-parent", "--filter=delay", "file",
                "file=" + img, "delay-write=1");
             Arena arena = Arena.ofShared()) {
            NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
            for (int i = 0; i < 8; i++) {
                writes.add(nbd.writevAsync(i * 4096L, new IoVector().add(arena.allocate(4096).fill((byte) (i + 1))), DIRECT));
            }
            assertThat(writes).noneMatch(CompletableFuture::isDone);
            nbd.close();
            assertThat(writes).allMatch(f -> f.isDone() && !f.isCompletedExceptionally());
            IoVector late = new IoVector().add(arena.allocate(4096));
            assertThatThrownBy(() -> nbd.writevAsync(0, late, DIRECT).join()).isInstanceOf(CompletionException.class)
                    .cause().isInstanceOf(IOException.class).hasMessageContaining("closed");
        }
        byte[] image = Files.readAllBytes(img);
        for (int i = 0; i < 8; i++) {
            assertThat(Arrays.copyOfRange(image, i * 4096, (i + 1) * 4096)).containsOnly((byte) (i + 1));
        }
        awaitNoReplyThread();
        assertThat(openDescriptors()).as("no descriptor left open").isLessThanOrEqualTo(fdsBefore);
    }

    static void awaitNoReplyThread() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (threadsNamed("nbd-replies") > 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(threadsNamed("nbd-replies")).as("reply threads left running").isZero();
    }

    /**
     * A completion running on the reply thread (a direct executor) that makes synchronous requests
     * on the same connection: the reply thread let go of the reader role before it ran the
     * completion, so the caller takes the role and reads its own replies, instead of waiting for
     * a reader that is itself.
     */
    @Test
    void aCompletionOnTheReplyThreadMayMakeSynchronousRequests() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "reentrant", "--exit-with-parent", "--filter=delay", "memory",
                "size=1M", "delay-write=1");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults(), Duration.ofSeconds(30));
             Arena arena = Arena.ofShared()) {
            IoVector out = new IoVector().add(arena.allocate(4096).fill((byte) 7));
            IoVector back = new IoVector().add(arena.allocate(4096));
            AtomicReference<String> thread = new AtomicReference<>();
            long start = System.nanoTime();
            CompletableFuture<Void> write = nbd.writevAsync(8192, out, DIRECT);
            assertThat(write).as("pending for the server's 1 s").isNotDone();
            write.thenRun(() -> {
                thread.set(Thread.currentThread().getName());
                try {
                    nbd.readv(8192, back);
                    nbd.writev(0, out);
                } catch (IOException e) {
                    throw new CompletionException(e);
                }
            }).get(1, TimeUnit.MINUTES);
            assertThat(System.nanoTime() - start).as("not rescued by the 30 s timeout").isLessThan(TimeUnit.SECONDS.toNanos(10));
            assertThat(thread.get()).startsWith("nbd-replies");
            assertThat(back.toByteArray()).containsOnly((byte) 7);
        }
    }

    /**
     * A completion on the reply thread that blocks waiting for another asynchronous request of
     * the connection (which the documentation advises against): nobody reads that reply, but the
     * timeout still fails the connection, so the wait ends with EIO instead of hanging.
     */
    @Test
    void aCompletionThatBlocksTheReplyThreadIsEndedByTheTimeout() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "blocking", "--exit-with-parent", "--filter=delay", "memory",
                "size=1M", "delay-write=200ms");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults(), Duration.ofSeconds(1));
             Arena arena = Arena.ofShared()) {
            IoVector out = new IoVector().add(arena.allocate(4096).fill((byte) 7));
            IoVector back = new IoVector().add(arena.allocate(4096));
            CompletableFuture<Void> write = nbd.writevAsync(0, out, DIRECT);
            assertThat(write).isNotDone();
            long start = System.nanoTime();
            CompletableFuture<Void> chained = write.thenRun(() -> nbd.readvAsync(0, back, DIRECT).join());
            assertThatThrownBy(() -> chained.get(30, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class)
                    .cause().isInstanceOfSatisfying(PosixException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EIO))
                    .hasMessageContaining("no reply");
            assertThat(System.nanoTime() - start).isLessThan(TimeUnit.SECONDS.toNanos(15));
            // The next request reconnects; the connection that failed left no reply thread behind.
            nbd.readvAsync(0, back, DIRECT).get(1, TimeUnit.MINUTES);
            assertThat(back.toByteArray()).containsOnly((byte) 7);
            assertThat(nbd.connectionCount()).isEqualTo(2);
        }
        awaitNoReplyThread();
    }

    @Test
    void badRequestsFailTheFutureBeforeAnyIo() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "bad", "--exit-with-parent", "memory", "size=1M");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena confined = Arena.ofConfined();
             Arena shared = Arena.ofShared()) {
            IoVector mine = new IoVector().add(confined.allocate(4096));
            assertThatThrownBy(() -> nbd.writevAsync(0, mine, DIRECT).join()).cause()
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("confined");
            IoVector readOnly = new IoVector().add(shared.allocate(4096).asReadOnly());
            assertThatThrownBy(() -> nbd.readvAsync(0, readOnly, DIRECT).join()).cause()
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("read-only");
            IoVector past = new IoVector().add(shared.allocate(4096));
            assertThatThrownBy(() -> nbd.readvAsync((1 << 20) - 512, past, DIRECT).join()).cause()
                    .isInstanceOf(IOException.class);
            assertThat(threadsNamed("nbd-replies")).as("nothing was sent").isZero();
        }
    }

    /**
     * What one NBD command cannot carry still works asynchronously, through the synchronous call on
     * the executor: a 1 MiB write and read against a 64 KiB maximum payload. Misaligned requests
     * fail the future with EINVAL before anything is sent.
     */
    @Test
    void requestsLargerThanTheMaximumPayloadAreSplitOnTheExecutor() throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "blocksize", "--exit-with-parent", "--filter=blocksize-policy",
                "memory", "size=4M", "blocksize-minimum=512", "blocksize-preferred=4096",
                "blocksize-maximum=65536", "blocksize-error-policy=error");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            ExecutorService executor = Executors.newSingleThreadExecutor();
            try {
                byte[] data = new byte[1 << 20];
                new Random(9).nextBytes(data);
                Random random = new Random(1);
                CompletableFuture<Void> small = nbd.writevAsync(0, piecesOf(arena, data, 0, 4096, random), executor);
                nbd.writevAsync(4096, piecesOf(arena, data, 0, 1 << 20, random), executor).get(1, TimeUnit.MINUTES);
                small.get(1, TimeUnit.MINUTES);
                IoVector in = pieces(arena, 1 << 20, random);
                nbd.readvAsync(4096, in, executor).get(1, TimeUnit.MINUTES);
                assertThat(Arrays.mismatch(in.toByteArray(), data)).isEqualTo(-1);
                IoVector odd = new IoVector().add(arena.allocate(100));
                assertThatThrownBy(() -> nbd.writevAsync(512, odd, executor).get(1, TimeUnit.MINUTES))
                        .isInstanceOf(ExecutionException.class).cause()
                        .isInstanceOfSatisfying(PosixException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
            } finally {
                executor.shutdownNow();
            }
        }
    }

    /** Server errors reach the future with the server's errno; the connection stays up. */
    @Test
    void serverErrorsFailTheFutureWithTheirErrno() throws Exception {
        Path img = rawImage("err.img", 1 << 20);
        try (NbdServer server = NbdServer.nbdkit(dir, "errors", "--exit-with-parent", "--filter=error", "file",
                "file=" + img, "error-pwrite=ENOSPC", "error-pwrite-rate=100%");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            IoVector iov = new IoVector().add(arena.allocate(4096));
            assertThatThrownBy(() -> nbd.writevAsync(0, iov, DIRECT).get(1, TimeUnit.MINUTES))
                    .isInstanceOf(ExecutionException.class).cause()
                    .isInstanceOfSatisfying(PosixException.class, e -> assertThat(e.errno()).isEqualTo(Errno.ENOSPC));
            nbd.readvAsync(0, iov, DIRECT).get(1, TimeUnit.MINUTES);
            assertThat(nbd.connectionCount()).isEqualTo(1);
        }
    }
}
