package io.guestdma.machine;

import io.guestdma.migration.IncomingMigration;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.MigrationListener;
import io.guestdma.migration.MigrationParameters;
import io.guestdma.migration.MigrationSource;
import io.guestdma.migration.MigrationStats;
import io.guestdma.migration.MigrationStatus;
import io.guestdma.migration.MigrationUri;
import io.guestdma.migration.Switchover;

import java.io.IOException;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * A {@link PcMachine}'s live migration, as QMP drives it: {@code migrate} (outgoing, on a thread
 * of its own), {@code query-migrate}, {@code migrate_cancel}, {@code migrate-set-parameters}, and
 * the incoming side of {@code -incoming}. The machine's RAM regions and its
 * {@link PcMachine#deviceStates()} sections travel, whatever those are.
 *
 * <p>Run states follow QEMU's: {@code finish-migrate} while the switchover runs, {@code postmigrate}
 * after a completed migration (the source stays stopped), back to {@code running} after a failed
 * or cancelled one that stopped a running machine; {@code inmigrate} on the destination until the
 * stream is loaded, then {@code running}. Status changes and passes are reported as
 * {@link MachineEvent.Migration} and {@link MachineEvent.MigrationPass}.
 */
public final class MachineMigration {
    private static final long DRAIN_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(10);

    private final PcMachine machine;
    /** Guarded by this. */
    private MigrationParameters parameters = MigrationParameters.DEFAULTS;
    private MigrationSource current;
    private IncomingMigration incoming;
    private Thread thread;

    MachineMigration(PcMachine machine) {
        this.machine = machine;
    }

    private final MigrationListener events = new MigrationListener() {
        @Override
        public void statusChanged(MigrationStatus status) {
            machine.migrationEvent(new MachineEvent.Migration(status.qapiName()));
        }

        @Override
        public void passStarted(long pass) {
            machine.migrationEvent(new MachineEvent.MigrationPass(pass));
        }
    };

    /**
     * Starts an outgoing migration (QMP {@code migrate}) and returns at once; it runs on a thread
     * of its own.
     *
     * @param uri where the destination listens, or a snapshot file
     * @throws IllegalArgumentException if the URI does not parse
     * @throws IllegalStateException with QEMU's words if a migration is in progress or the machine
     *     waits for an incoming one
     */
    public synchronized void migrate(String uri) {
        MigrationUri target = MigrationUri.parse(uri);
        if (current != null && !current.status().isFinal()) {
            throw new IllegalStateException("There's a migration process in progress");
        }
        if (machine.runState().equals("inmigrate")) {
            throw new IllegalStateException("Guest is waiting for an incoming migration");
        }
        MigrationSource source = new MigrationSource(machine.memory(), machine.deviceStates(),
                new MachineSwitchover(), parameters, events);
        current = source;
        // SETUP before returning, as QEMU's migrate: a query-migrate right after must not see none.
        source.begin();
        thread = Thread.ofPlatform().daemon().name("migration").start(() -> ended(source.run(target).status()));
    }

    /** {@return the outgoing migration's figures, or the incoming one's on a destination; NONE if neither ran} */
    public synchronized MigrationStats stats() {
        if (current != null) {
            return current.stats();
        }
        return incoming != null ? incoming.stats() : MigrationStats.NONE;
    }

    /**
     * Cancels the outgoing migration (QMP {@code migrate_cancel}); nothing happens if none runs.
     */
    public void cancel() {
        MigrationSource source;
        synchronized (this) {
            source = current;
        }
        if (source != null) {
            source.cancel();
        }
    }

    /**
     * Changes the limits (QMP {@code migrate-set-parameters}); a running migration applies them
     * from its next batch of pages.
     *
     * @param maxBandwidth bytes per second, or null to keep the current value
     * @param downtimeLimitMs milliseconds, or null to keep the current value
     * @throws IllegalArgumentException if a value is out of range
     */
    public synchronized void setParameters(Long maxBandwidth, Long downtimeLimitMs) {
        MigrationParameters next = parameters;
        if (maxBandwidth != null) {
            next = next.withMaxBandwidth(maxBandwidth);
        }
        if (downtimeLimitMs != null) {
            next = next.withDowntimeLimitMs(downtimeLimitMs);
        }
        parameters = next;
        if (current != null) {
            current.setParameters(next);
        }
    }

    /** {@return the limits the next (or running) migration uses} */
    public synchronized MigrationParameters parameters() {
        return parameters;
    }

    /**
     * Waits for the outgoing migration's thread to end.
     *
     * @param millis the longest wait
     * @return whether it ended (or none ran)
     * @throws InterruptedException if interrupted while waiting
     */
    public boolean awaitOutgoing(long millis) throws InterruptedException {
        Thread t;
        synchronized (this) {
            t = thread;
        }
        return t == null || t.join(java.time.Duration.ofMillis(millis));
    }

    /**
     * Listens for an incoming migration ({@code -incoming}): the machine enters {@code inmigrate},
     * and a thread receives the stream. When it is loaded the machine runs; when it is refused,
     * {@code onFailure} hears why and the machine must not run (QEMU exits).
     *
     * @param uri where to listen, or the snapshot file
     * @param onFailure told about a refused or broken stream, on the receiving thread
     * @throws IOException if the address cannot be bound or the file does not exist
     */
    public synchronized void listen(MigrationUri uri, Consumer<Exception> onFailure) throws IOException {
        Objects.requireNonNull(onFailure, "onFailure");
        IncomingMigration in = IncomingMigration.listen(uri);
        incoming = in;
        machine.enterInmigrate();
        Thread.ofPlatform().daemon().name("incoming-migration").start(() -> {
            try {
                in.receive(machine.memory(), machine.deviceStates(), events);
                machine.incomingCompleted();
            } catch (IOException | MigrationFormatException | RuntimeException e) {
                onFailure.accept(e);
            }
        });
    }

    /** Stops the machine, then waits until every DMA mapping is unmapped. */
    private final class MachineSwitchover implements Switchover {
        private boolean wasRunning;

        @Override
        public void stopAndDrain() throws IOException, InterruptedException {
            wasRunning = machine.stopForMigration();
            long deadline = System.nanoTime() + DRAIN_TIMEOUT_NANOS;
            while (machine.memory().liveMappings() != 0) {
                if (System.nanoTime() > deadline) {
                    throw new IOException("DMA did not drain within 10 s: " + machine.memory().liveMappings()
                            + " mappings are live");
                }
                Thread.sleep(1);
            }
        }

        @Override
        public void resume() {
            machine.migrationEnded(false, wasRunning);
        }
    }

    /** Called with the outgoing migration's final status, on its thread. */
    void ended(MigrationStatus status) {
        if (status == MigrationStatus.COMPLETED) {
            machine.migrationEnded(true, false);
        }
    }
}
