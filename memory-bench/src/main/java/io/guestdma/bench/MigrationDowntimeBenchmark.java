package io.guestdma.bench;

import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.RamBacking;
import io.guestdma.migration.IncomingMigration;
import io.guestdma.migration.MigrationListener;
import io.guestdma.migration.MigrationParameters;
import io.guestdma.migration.MigrationSource;
import io.guestdma.migration.MigrationStats;
import io.guestdma.migration.MigrationStatus;
import io.guestdma.migration.MigrationUri;
import io.guestdma.migration.Switchover;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The downtime of migrating an idle 1 GiB guest ({@code migration_downtime_ms_1g_idle}, goal <= 50
 * ms) to a real destination ({@link IncomingMigration}) over TCP loopback. Both guests live in
 * {@code MAP_NORESERVE} backings ({@link RamBacking#reserved}), so untouched RAM costs nothing.
 *
 * <p>The measured operation is the switchover alone: before it (untimed, in the invocation's
 * setup) the migration runs its pre-copy pass over the whole 1 GiB and reaches the switchover,
 * where the machine's {@link Switchover#stopAndDrain()} holds it. The operation lets it go and
 * waits for completion: the final dirty-log sync, the last pages, the end of the stream and the
 * destination's acknowledgement that it loaded everything. That is the time a guest stands still.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3)
@Measurement(iterations = 5)
public class MigrationDowntimeBenchmark extends SuiteSettings {
    private static final long RAM_BYTES = 1L << 30;

    private GuestMemory source;
    private GuestMemory destination;
    private CountDownLatch stopped;
    private CountDownLatch go;
    private CompletableFuture<MigrationStats> migration;
    private CompletableFuture<Void> incoming;

    /** Builds both guests. */
    @Setup(Level.Trial)
    public void setUp() {
        source = GuestMemory.builder().backing(RamBacking.reserved(RAM_BYTES)).ram("ram", 0, RAM_BYTES).build();
        destination = GuestMemory.builder().backing(RamBacking.reserved(RAM_BYTES)).ram("ram", 0, RAM_BYTES).build();
        source.writeLong(0x1000, 0x1234_5678_9abc_def0L);
    }

    /**
     * Starts a destination and a migration, and waits until the migration reaches the switchover.
     *
     * @throws Exception if either side fails first
     */
    @Setup(Level.Invocation)
    public void reachSwitchover() throws Exception {
        IncomingMigration in = IncomingMigration.listen(new MigrationUri.Tcp("127.0.0.1", 0));
        int port = ((InetSocketAddress) in.localAddress().orElseThrow()).getPort();
        // Threads of their own: the common pool has one worker on a 2-core machine, and the
        // receiving side blocks in accept until the source connects.
        incoming = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("incoming").start(() -> {
            try {
                in.receive(destination, List.of(), MigrationListener.NONE);
                incoming.complete(null);
            } catch (Exception e) {
                incoming.completeExceptionally(e);
            }
        });
        stopped = new CountDownLatch(1);
        go = new CountDownLatch(1);
        Switchover held = new Switchover() {
            @Override
            public void stopAndDrain() throws InterruptedException {
                stopped.countDown();
                go.await();
            }

            @Override
            public void resume() {
            }
        };
        MigrationSource source = new MigrationSource(this.source, List.of(), held,
                new MigrationParameters(0, 300, 64), MigrationListener.NONE);
        migration = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("outgoing").start(
                () -> migration.complete(source.run(new MigrationUri.Tcp("127.0.0.1", port))));
        while (!stopped.await(10, TimeUnit.MILLISECONDS)) {
            if (migration.isDone()) {
                throw new IllegalStateException("the migration ended before the switchover: " + migration.get().error());
            }
        }
    }

    /**
     * The switchover, from the stop to the destination's acknowledgement.
     *
     * @return the migration's figures
     * @throws Exception if the migration or the destination fails
     */
    @Benchmark
    public MigrationStats switchover() throws Exception {
        go.countDown();
        MigrationStats stats = migration.get();
        incoming.get();
        if (stats.status() != MigrationStatus.COMPLETED) {
            throw new IllegalStateException("migration " + stats.status() + ": " + stats.error());
        }
        return stats;
    }

    /** Frees both guests. */
    @TearDown(Level.Trial)
    public void tearDown() {
        source.close();
        destination.close();
    }
}
