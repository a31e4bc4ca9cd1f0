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
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link BlockBackend}'s completion form ({@link BlockBackend#submitWritev} and its siblings)
 * against real servers: an I/O thread keeping many requests in flight with one reusable
 * {@link BlockCompletion} per request slot, parking until a completion wakes it, as a device
 * does; completions that submit the next request themselves; what a dead server or close() does
 * to pending requests; the default implementation on file backends.
 */
class NbdCompletionTest {
    @TempDir
    Path dir;

    private Path rawImage(String name, int bytes) throws IOException {
        return NbdAsyncTest.rawImage(dir, name, bytes);
    }

    /**
     * One request slot of an I/O thread: the completion it reuses from request to request. Counts
     * its calls against its submissions, so a second call for one request (or a call for none)
     * shows up as a violation, and wakes the I/O thread.
     */
    static final class Request implements BlockCompletion {
        final Thread ioThread;
        final AtomicInteger violations;
        final Set<String> threads;
        volatile boolean busy;
        volatile IOException failure;
        int submissions;
        final AtomicInteger calls = new AtomicInteger();
        // What the request in flight does, for the I/O thread's checks.
        IoVector iov;
        int at;
        boolean read;

        Request(Thread ioThread, AtomicInteger violations, Set<String> threads) {
            this.ioThread = ioThread;
            this.violations = violations;
            this.threads = threads;
        }

        /** Before each submission. */
        void start() {
            submissions++;
            failure = null;
            busy = true;
        }

        @Override
        public void completed() {
            done(null);
        }

        @Override
        public void failed(IOException e) {
            done(e);
        }

        private void done(IOException e) {
            threads.add(Thread.currentThread().getName());
            if (!busy || calls.incrementAndGet() > submissions) {
                violations.incrementAndGet();
            }
            failure = e;
            busy = false;
            LockSupport.unpark(ioThread);
        }
    }

    /** Fails a wait that lasted too long, allocating nothing until then (see the allocation test). */
    private static void requireBefore(long deadline) {
        if (System.nanoTime() > deadline) {
            throw new AssertionError("no completion within the time given");
        }
    }

    /** The I/O thread's wait: parks until a request is free; fails rather than hang. */
    private static Request awaitFree(Request[] requests, long deadline) {
        while (true) {
            for (Request r : requests) {
                if (!r.busy) {
                    return r;
                }
            }
            requireBefore(deadline);
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
        }
    }

    private static void awaitAll(Request[] requests, long deadline) {
        for (Request r : requests) {
            while (r.busy) {
                requireBefore(deadline);
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
            }
        }
    }

    private static Request[] requests(int depth, AtomicInteger violations, Set<String> threads) {
        Request[] requests = new Request[depth];
        for (int i = 0; i < depth; i++) {
            requests[i] = new Request(Thread.currentThread(), violations, threads);
        }
        return requests;
    }

    /**
     * 500 writes of random sizes and places with 24 in flight, then a flush, then the whole image
     * read back in 128 KiB reads with 16 in flight, each slot's completion reused throughout: the
     * image file and every read must match a model byte for byte, and each completion must have
     * been called exactly once per submission, never on the submitting thread.
     */
    @ParameterizedTest
    @ValueSource(strings = {"qemu-nbd", "nbdkit"})
    void manyRequestsInFlightThroughReusedCompletionsMatchTheImage(String serverKind) throws Exception {
        int size = 4 << 20;
        Path img = rawImage("many.img", size);
        byte[] model = new byte[size];
        Random random = new Random(serverKind.hashCode());
        AtomicInteger violations = new AtomicInteger();
        Set<String> threads = ConcurrentHashMap.newKeySet();
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        try (NbdServer server = NbdServer.servingImage(serverKind, img, dir, "many");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            int slotBytes = 65536;
            Request[] writes = requests(24, violations, threads);
            for (int i = 0; i < 500; i++) {
                Request r = awaitFree(writes, deadline);
                assertThat(r.failure).as("write %d's slot's last write", i).isNull();
                // Two writes in flight never share a 64 KiB slot, so the model is exact.
                Set<Integer> busy = new HashSet<>();
                for (Request w : writes) {
                    if (w.busy) {
                        busy.add(w.at / slotBytes);
                    }
                }
                int slot;
                do {
                    slot = random.nextInt(size / slotBytes);
                } while (busy.contains(slot));
                int length = 512 * (1 + random.nextInt(slotBytes / 512));
                int at = slot * slotBytes + 512 * random.nextInt((slotBytes - length) / 512 + 1);
                byte[] data = new byte[length];
                random.nextBytes(data);
                System.arraycopy(data, 0, model, at, length);
                r.at = at;
                r.start();
                nbd.submitWritev(at, NbdAsyncTest.piecesOf(arena, data, 0, length, random), r);
            }
            awaitAll(writes, deadline);
            Request flush = writes[0];
            flush.start();
            nbd.submitFlush(flush);
            awaitAll(writes, deadline);
            for (Request w : writes) {
                assertThat(w.failure).isNull();
                assertThat(w.calls.get()).as("calls of one completion").isEqualTo(w.submissions);
            }
            assertThat(Arrays.mismatch(Files.readAllBytes(img), model)).as("first wrong byte of the image").isEqualTo(-1);

            Request[] reads = requests(16, violations, threads);
            int chunk = 128 * 1024;
            int checked = 0;
            for (int at = 0; at < size + 16 * chunk; at += chunk) {
                Request r = awaitFree(reads, deadline);
                if (r.read) {
                    assertThat(r.failure).isNull();
                    assertThat(Arrays.mismatch(r.iov.toByteArray(), Arrays.copyOfRange(model, r.at, r.at + chunk)))
                            .as("read at %d: first wrong byte", r.at).isEqualTo(-1);
                    r.read = false;
                    checked++;
                }
                if (at < size) {
                    r.iov = NbdAsyncTest.pieces(arena, chunk, random);
                    r.at = at;
                    r.read = true;
                    r.start();
                    nbd.submitReadv(at, r.iov, r);
                }
            }
            awaitAll(reads, deadline);
            for (Request r : reads) {
                if (r.read) {
                    assertThat(r.failure).isNull();
                    assertThat(Arrays.mismatch(r.iov.toByteArray(), Arrays.copyOfRange(model, r.at, r.at + chunk)))
                            .as("read at %d: first wrong byte", r.at).isEqualTo(-1);
                    checked++;
                }
            }
            assertThat(checked).isEqualTo(size / chunk);
            Thread.sleep(100);
            assertThat(violations.get()).as("completions called twice, or for nothing").isZero();
            assertThat(threads).as("completions ran where the replies were read").allMatch(t -> t.startsWith("nbd-replies"));
        }
    }

    /**
     * Writes sent back to back are all in flight before the first reply: each submission returns
     * at once (the server delays every write by a second), and the completions come later, from the
     * connection's reply thread. The default (the synchronous call, then the completion) would
     * take a second per submission.
     */
    @Test
    void submissionsReturnBeforeTheirRepliesAndCompleteOnTheReplyThread() throws Exception {
        int depth = 12;
        AtomicInteger violations = new AtomicInteger();
        Set<String> threads = ConcurrentHashMap.newKeySet();
        try (NbdServer server = NbdServer.nbdkit(dir, "pipeline", "--exit-with-parent", "--filter=delay", "memory",
                "size=8M", "delay-write=1");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            Request[] writes = requests(depth, violations, threads);
            long start = System.nanoTime();
            for (int i = 0; i < depth; i++) {
                writes[i].start();
                nbd.submitWritev(i * 65536L, new IoVector().add(arena.allocate(65536).fill((byte) (i + 1))), writes[i]);
            }
            assertThat(System.nanoTime() - start).as("sending %d writes does not wait for their replies", depth)
                    .isLessThan(TimeUnit.SECONDS.toNanos(1));
            assertThat(writes).allMatch(r -> r.busy);
            awaitAll(writes, System.nanoTime() + TimeUnit.MINUTES.toNanos(1));
            assertThat(System.nanoTime() - start).as("the writes were served together")
                    .isLessThan(TimeUnit.SECONDS.toNanos(depth / 2));
            assertThat(writes).allMatch(r -> r.failure == null && r.calls.get() == 1);
            assertThat(threads).singleElement().asString().startsWith("nbd-replies");
            IoVector back = new IoVector().add(arena.allocate(depth * 65536L));
            nbd.readv(0, back);
            byte[] got = back.toByteArray();
            for (int i = 0; i < depth; i++) {
                assertThat(Arrays.copyOfRange(got, i * 65536, (i + 1) * 65536)).containsOnly((byte) (i + 1));
            }
        }
        assertThat(violations.get()).isZero();
    }

    /**
     * 16 chains of 40 writes each, where each completion sends its chain's next write from inside
     * the callback, on the reply thread (a device completing one request and starting the next);
     * synchronous reads from another thread meanwhile take the reader role now and then, so some
     * completions run on their thread. Every write lands, each chain's last one on top.
     */
    @Test
    void aCompletionMaySubmitTheNextRequestFromInsideTheCallback() throws Exception {
        int chains = 16;
        int steps = 40;
        int region = 8 * 4096;
        Path img = rawImage("chains.img", chains * region);
        AtomicInteger failures = new AtomicInteger();
        AtomicInteger finished = new AtomicInteger();
        Set<String> threads = ConcurrentHashMap.newKeySet();
        try (NbdServer server = NbdServer.qemuNbd(img, dir, "chains");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            final class Chain implements BlockCompletion {
                final int index;
                final IoVector iov = new IoVector(1);
                final java.lang.foreign.MemorySegment buffer = arena.allocate(4096);
                int step;

                Chain(int index) {
                    this.index = index;
                }

                void send() {
                    buffer.fill((byte) (index * steps + step));
                    iov.reset();
                    iov.add(buffer);
                    nbd.submitWritev((long) index * region + (step % 8) * 4096L, iov, this);
                }

                @Override
                public void completed() {
                    threads.add(Thread.currentThread().getName());
                    if (++step < steps) {
                        send();
                    } else {
                        finished.incrementAndGet();
                    }
                }

                @Override
                public void failed(IOException e) {
                    failures.incrementAndGet();
                    finished.incrementAndGet();
                }
            }
            for (int c = 0; c < chains; c++) {
                new Chain(c).send();
            }
            IoVector probe = new IoVector().add(arena.allocate(4096));
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
            while (finished.get() < chains) {
                assertThat(System.nanoTime()).as("every chain ends within the minute").isLessThan(deadline);
                nbd.readv(0, probe);
            }
            assertThat(failures.get()).isZero();
        }
        byte[] image = Files.readAllBytes(img);
        for (int c = 0; c < chains; c++) {
            for (int s = steps - 8; s < steps; s++) {
                int at = c * region + (s % 8) * 4096;
                assertThat(Arrays.copyOfRange(image, at, at + 4096)).as("chain %d, step %d", c, s)
                        .containsOnly((byte) (c * steps + s));
            }
        }
        assertThat(threads).anyMatch(t -> t.startsWith("nbd-replies"));
    }

    /**
     * A server killed with requests pending: every completion is called once, with EIO, well
     * before the server's 20 s delay would have answered; no descriptor or thread is left. A
     * request after that cannot reconnect and fails too, in the submitting thread.
     */
    @Test
    void aServerKilledWithRequestsPendingFailsEveryCompletionWithEio() throws Exception {
        long fdsBefore = NbdAsyncTest.openDescriptors();
        AtomicInteger violations = new AtomicInteger();
        Set<String> threads = ConcurrentHashMap.newKeySet();
        try (NbdServer slow = NbdServer.nbdkit(dir, "killed", "--exit-with-parent", "--filter=delay", "memory",
                "size=8M", "delay-read=20", "delay-write=20");
             NbdBackend nbd = NbdBackend.open(slow.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            Request[] pending = requests(21, violations, threads);
            for (int i = 0; i < 20; i++) {
                IoVector iov = new IoVector().add(arena.allocate(4096));
                pending[i].start();
                if (i % 2 == 0) {
                    nbd.submitReadv(i * 4096L, iov, pending[i]);
                } else {
                    nbd.submitWritev(i * 4096L, iov, pending[i]);
                }
            }
            pending[20].start();
            nbd.submitFlush(pending[20]);
            Thread.sleep(300);
            assertThat(pending).allMatch(r -> r.busy);
            long killed = System.nanoTime();
            slow.kill();
            awaitAll(pending, killed + TimeUnit.SECONDS.toNanos(10));
            for (Request r : pending) {
                assertThat(r.failure).isInstanceOfSatisfying(PosixException.class,
                        e -> assertThat(e.errno()).isEqualTo(Errno.EIO));
                assertThat(r.calls.get()).isEqualTo(1);
            }
            assertThat(nbd.isConnected()).isFalse();
            Request late = pending[0];
            late.start();
            nbd.submitReadv(0, new IoVector().add(arena.allocate(512)), late);
            assertThat(late.busy).as("failed before the submission returned").isFalse();
            assertThat(late.failure).isInstanceOf(IOException.class).hasMessageContaining("reconnect");
        }
        Thread.sleep(100);
        assertThat(violations.get()).isZero();
        NbdAsyncTest.awaitNoReplyThread();
        assertThat(NbdAsyncTest.openDescriptors()).as("no descriptor left open").isLessThanOrEqualTo(fdsBefore);
    }

    /** A reply that never comes: the completion gets EIO once the timeout has passed. */
    @Test
    void aReplyThatNeverComesFailsTheCompletionWithinTheTimeout() throws Exception {
        AtomicInteger violations = new AtomicInteger();
        try (NbdServer server = NbdServer.nbdkit(dir, "stalled", "--exit-with-parent", "--filter=delay", "memory",
                "size=1M", "delay-read=30");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults(), Duration.ofMillis(500));
             Arena arena = Arena.ofShared()) {
            Request[] one = requests(1, violations, ConcurrentHashMap.newKeySet());
            long start = System.nanoTime();
            one[0].start();
            nbd.submitReadv(0, new IoVector().add(arena.allocate(4096)), one[0]);
            awaitAll(one, start + TimeUnit.SECONDS.toNanos(10));
            assertThat(one[0].failure).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EIO)).hasMessageContaining("no reply");
        }
        assertThat(violations.get()).isZero();
    }

    /**
     * close() with writes pending waits for them: when it returns, every completion has been
     * called (with success: the server answers within its delay) and every byte is in the image.
     * A submission after close fails at once, in the submitting thread.
     */
    @Test
    void closeWaitsForPendingRequestsAndTheirCompletions() throws Exception {
        Path img = rawImage("close.img", 1 << 20);
        long fdsBefore = NbdAsyncTest.openDescriptors();
        AtomicInteger violations = new AtomicInteger();
        Request[] writes = requests(8, violations, ConcurrentHashMap.newKeySet());
        try (NbdServer server = NbdServer.nbdkit(dir, "closing", "--exit-with-parent", "--filter=delay", "file",
                "file=" + img, "delay-write=1");
             Arena arena = Arena.ofShared()) {
            NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
            for (int i = 0; i < 8; i++) {
                writes[i].start();
                nbd.submitWritev(i * 4096L, new IoVector().add(arena.allocate(4096).fill((byte) (i + 1))), writes[i]);
            }
            assertThat(writes).allMatch(r -> r.busy);
            nbd.close();
            assertThat(writes).allMatch(r -> !r.busy && r.failure == null && r.calls.get() == 1);
            Request late = writes[0];
            late.start();
            nbd.submitWritev(0, new IoVector().add(arena.allocate(4096)), late);
            assertThat(late.busy).isFalse();
            assertThat(late.failure).isInstanceOf(IOException.class).hasMessageContaining("closed");
        }
        byte[] image = Files.readAllBytes(img);
        for (int i = 0; i < 8; i++) {
            assertThat(Arrays.copyOfRange(image, i * 4096, (i + 1) * 4096)).containsOnly((byte) (i + 1));
        }
        assertThat(violations.get()).isZero();
        NbdAsyncTest.awaitNoReplyThread();
        assertThat(NbdAsyncTest.openDescriptors()).as("no descriptor left open").isLessThanOrEqualTo(fdsBefore);
    }

    /**
     * The server's errno reaches the completion; a completion that throws does not end the reply
     * thread nor the connection, and later requests complete as usual. Vectors the backend cannot
     * use are thrown at the submitter, and the completion is never called.
     */
    @Test
    void serverErrorsThrowingCompletionsAndBadVectors() throws Exception {
        Path img = rawImage("err.img", 1 << 20);
        AtomicInteger violations = new AtomicInteger();
        try (NbdServer server = NbdServer.nbdkit(dir, "errors", "--exit-with-parent", "--filter=error", "file",
                "file=" + img, "error-pwrite=ENOSPC", "error-pwrite-rate=100%");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared();
             Arena confined = Arena.ofConfined()) {
            Request[] one = requests(1, violations, ConcurrentHashMap.newKeySet());
            Request r = one[0];
            IoVector iov = new IoVector().add(arena.allocate(4096));
            r.start();
            nbd.submitWritev(0, iov, r);
            awaitAll(one, System.nanoTime() + TimeUnit.MINUTES.toNanos(1));
            assertThat(r.failure).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.ENOSPC));

            AtomicInteger thrown = new AtomicInteger();
            BlockCompletion throwing = new BlockCompletion() {
                @Override
                public void completed() {
                    thrown.incrementAndGet();
                    throw new IllegalStateException("a device model's bug");
                }

                @Override
                public void failed(IOException e) {
                    completed();
                }
            };
            for (int i = 0; i < 3; i++) {
                nbd.submitReadv(0, iov, throwing);
            }
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
            while (thrown.get() < 3) {
                assertThat(System.nanoTime()).isLessThan(deadline);
                Thread.sleep(5);
            }
            r.start();
            nbd.submitReadv(0, iov, r);
            awaitAll(one, System.nanoTime() + TimeUnit.MINUTES.toNanos(1));
            assertThat(r.failure).isNull();
            assertThat(nbd.connectionCount()).isEqualTo(1);

            int calls = r.calls.get();
            IoVector mine = new IoVector().add(confined.allocate(4096));
            assertThatThrownBy(() -> nbd.submitWritev(0, mine, r)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("confined");
            IoVector readOnly = new IoVector().add(arena.allocate(4096).asReadOnly());
            assertThatThrownBy(() -> nbd.submitReadv(0, readOnly, r)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("read-only");
            assertThatThrownBy(() -> nbd.submitFlush(null)).isInstanceOf(NullPointerException.class);
            assertThat(r.calls.get()).isEqualTo(calls);
        }
        assertThat(violations.get()).isZero();
    }

    /**
     * What one NBD command cannot carry (a 1 MiB write and read against a 64 KiB maximum
     * payload) runs as the synchronous call in the submitting thread; the completion is called
     * before the submission returns.
     */
    @Test
    void requestsLargerThanTheMaximumPayloadRunSynchronously() throws Exception {
        AtomicInteger violations = new AtomicInteger();
        Set<String> threads = ConcurrentHashMap.newKeySet();
        try (NbdServer server = NbdServer.nbdkit(dir, "blocksize", "--exit-with-parent", "--filter=blocksize-policy",
                "memory", "size=4M", "blocksize-minimum=512", "blocksize-preferred=4096",
                "blocksize-maximum=65536", "blocksize-error-policy=error");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            Request r = requests(1, violations, threads)[0];
            byte[] data = new byte[1 << 20];
            new Random(9).nextBytes(data);
            Random random = new Random(1);
            r.start();
            nbd.submitWritev(4096, NbdAsyncTest.piecesOf(arena, data, 0, 1 << 20, random), r);
            assertThat(r.busy).isFalse();
            assertThat(r.failure).isNull();
            IoVector in = NbdAsyncTest.pieces(arena, 1 << 20, random);
            r.start();
            nbd.submitReadv(4096, in, r);
            assertThat(r.busy).isFalse();
            assertThat(Arrays.mismatch(in.toByteArray(), data)).isEqualTo(-1);
            r.start();
            nbd.submitWritev(512, new IoVector().add(arena.allocate(100)), r);
            assertThat(r.failure).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EINVAL));
            assertThat(threads).containsOnly(Thread.currentThread().getName());
        }
        assertThat(violations.get()).isZero();
    }

    /**
     * The point of the completion form: in steady state, with 16 writes in flight, a request
     * allocates nothing in the submitting thread nor in the reply thread (measured by the JVM's
     * per-thread allocation counters over 20 000 writes, after as many to warm up). The future
     * form allocates about 40 bytes per request.
     */
    @Test
    void theCompletionFormAllocatesNothingPerRequest() throws Exception {
        Path img = rawImage("alloc.img", 16 << 20);
        var threadBean = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        AtomicInteger violations = new AtomicInteger();
        try (NbdServer server = NbdServer.qemuNbd(img, dir, "alloc");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            Request[] writes = requests(16, violations, ConcurrentHashMap.newKeySet());
            IoVector[] buffers = new IoVector[16];
            for (int i = 0; i < 16; i++) {
                buffers[i] = new IoVector(4);
                for (int p = 0; p < 4; p++) {
                    buffers[i].add(arena.allocate(4096).fill((byte) i));
                }
            }
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
            long[] threadIds = null;
            long before = 0;
            int n = 20_000;
            for (int round = 0; round < 2; round++) {
                if (round == 1) {
                    threadIds = new long[] {Thread.currentThread().threadId(), replyThread().threadId()};
                    before = allocatedBy(threadBean, threadIds);
                }
                for (int i = 0; i < n; i++) {
                    int free = freeIndex(writes, deadline);
                    Request r = writes[free];
                    if (r.failure != null) {
                        throw r.failure;
                    }
                    r.start();
                    nbd.submitWritev((i % 1024) * 16384L, buffers[free], r);
                }
                awaitAll(writes, deadline);
            }
            long allocated = allocatedBy(threadBean, threadIds) - before;
            assertThat((double) allocated / n).as("bytes allocated per request (%d in all)", allocated).isLessThan(1.0);
        }
        assertThat(violations.get()).isZero();
    }

    /** A plain loop: the measurement must not allocate (a stream's first use links lambdas). */
    private static long allocatedBy(com.sun.management.ThreadMXBean threadBean, long[] threadIds) {
        long sum = 0;
        for (long bytes : threadBean.getThreadAllocatedBytes(threadIds)) {
            sum += bytes;
        }
        return sum;
    }

    private static int freeIndex(Request[] requests, long deadline) {
        while (true) {
            for (int i = 0; i < requests.length; i++) {
                if (!requests[i].busy) {
                    return i;
                }
            }
            requireBefore(deadline);
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
        }
    }

    private static Thread replyThread() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("nbd-replies") && t.getName().contains("/alloc?"))
                .findFirst().orElseThrow();
    }
}
