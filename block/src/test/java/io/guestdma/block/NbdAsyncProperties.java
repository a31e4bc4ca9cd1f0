package io.guestdma.block;

import io.guestdma.block.testing.NbdServer;
import io.guestdma.memory.IoVector;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any interleaving of asynchronous and synchronous reads, writes and discards on one connection,
 * with up to {@code depth} asynchronous requests in flight, leaves the export equal to a model and
 * every read sees what the model held when it was sent. Requests in flight together never touch
 * the same 64 KiB slot, so the model is exact whatever order the server runs them in. One nbdkit
 * (memory plugin) serves every try; each try opens its own connection and clears the disk first.
 */
class NbdAsyncProperties {
    private static final int SLOT = 65536;
    private static final int SLOTS = 16;
    private static final Executor DIRECT = Runnable::run;
    private static Path dir;
    private static NbdServer server;

    enum Kind { ASYNC_WRITE, ASYNC_READ, ASYNC_DISCARD, SYNC_WRITE, SYNC_READ }

    record Op(Kind kind, int slot, int sectors, int seed) {
    }

    @BeforeContainer
    static void startServer() throws IOException {
        dir = Files.createTempDirectory("nbd-async-properties");
        server = NbdServer.nbdkit(dir, "properties", "--exit-with-parent", "memory", "size=" + SLOT * SLOTS);
    }

    @AfterContainer
    static void stopServer() throws IOException {
        if (server != null) {
            server.close();
        }
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.deleteIfExists(p);
            }
        }
        Files.deleteIfExists(dir);
    }

    @Provide
    Arbitrary<Op> ops() {
        return Combinators.combine(Arbitraries.of(Kind.class), Arbitraries.integers().between(0, SLOTS - 1),
                Arbitraries.integers().between(1, SLOT / 512), Arbitraries.integers()).as(Op::new);
    }

    @Property(tries = 40)
    void interleavedRequestsAgreeWithAModel(@ForAll @Size(min = 1, max = 80) List<@net.jqwik.api.From("ops") Op> ops,
                                            @ForAll @IntRange(min = 1, max = 32) int depth) throws Exception {
        byte[] model = new byte[SLOT * SLOTS];
        try (NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            nbd.discard(0, model.length);
            ArrayDeque<CompletableFuture<Void>> inFlight = new ArrayDeque<>();
            ArrayDeque<Integer> busy = new ArrayDeque<>();
            for (Op op : ops) {
                if (busy.contains(op.slot()) || inFlight.size() == depth) {
                    // Drain down to what no longer shares the slot (or the depth allows).
                    while (!inFlight.isEmpty() && (busy.contains(op.slot()) || inFlight.size() >= depth)) {
                        inFlight.removeFirst().get(1, TimeUnit.MINUTES);
                        busy.removeFirst();
                    }
                }
                int length = op.sectors() * 512;
                int at = op.slot() * SLOT + (SLOT - length) / 512 / 2 * 512;
                Random random = new Random(op.seed());
                switch (op.kind()) {
                    case ASYNC_WRITE, SYNC_WRITE -> {
                        byte[] data = new byte[length];
                        random.nextBytes(data);
                        IoVector iov = NbdAsyncTest.piecesOf(arena, data, 0, length, random);
                        System.arraycopy(data, 0, model, at, length);
                        if (op.kind() == Kind.SYNC_WRITE) {
                            nbd.writev(at, iov);
                            continue;
                        }
                        inFlight.addLast(nbd.writevAsync(at, iov, DIRECT));
                    }
                    case ASYNC_DISCARD -> {
                        Arrays.fill(model, at, at + length, (byte) 0);
                        inFlight.addLast(nbd.discardAsync(at, length, DIRECT));
                    }
                    case ASYNC_READ, SYNC_READ -> {
                        IoVector in = NbdAsyncTest.pieces(arena, length, random);
                        byte[] expected = Arrays.copyOfRange(model, at, at + length);
                        if (op.kind() == Kind.SYNC_READ) {
                            nbd.readv(at, in);
                            assertThat(Arrays.mismatch(in.toByteArray(), expected)).as("sync read %s", op).isEqualTo(-1);
                            continue;
                        }
                        inFlight.addLast(nbd.readvAsync(at, in, DIRECT).thenRun(() ->
                                assertThat(Arrays.mismatch(in.toByteArray(), expected)).as("async read %s", op).isEqualTo(-1)));
                    }
                }
                busy.addLast(op.slot());
            }
            while (!inFlight.isEmpty()) {
                inFlight.removeFirst().get(1, TimeUnit.MINUTES);
            }
            IoVector all = new IoVector().add(arena.allocate(model.length));
            nbd.readv(0, all);
            assertThat(Arrays.mismatch(all.toByteArray(), model)).as("first byte of the export unlike the model").isEqualTo(-1);
        }
    }
}
