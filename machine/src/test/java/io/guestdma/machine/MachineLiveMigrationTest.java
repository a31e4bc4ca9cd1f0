package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.migration.MigrationStatus;
import io.guestdma.migration.MigrationUri;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The machine's migration in one JVM: run states, events, cancel, a second attempt, refusals. */
class MachineLiveMigrationTest {
    @TempDir
    Path dir;

    private static PcMachine machine() throws Exception {
        return new PcMachine(MachineConfig.parse(List.of("-m", "16M")));
    }

    private static void await(java.util.function.BooleanSupplier condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.sleep(1);
        }
    }

    @Test
    void cancelLeavesTheSourceRunningAndASecondMigrationCompletes() throws Exception {
        try (PcMachine source = machine(); PcMachine destination = machine()) {
            List<MachineEvent> events = new CopyOnWriteArrayList<>();
            List<MachineEvent> arrived = new CopyOnWriteArrayList<>();
            source.eventListener(events::add);
            destination.eventListener(arrived::add);
            source.memory().fill(0x100000, 8 << 20, (byte) 0x33);
            source.memory().writeLong(0x123458, 0xfeed_f00dL);

            Path first = dir.resolve("first.sock");
            AtomicReference<Exception> refused = new AtomicReference<>();
            destination.migration().listen(new MigrationUri.Unix(first), refused::set);
            assertThat(destination.runState()).isEqualTo("inmigrate");
            assertThatThrownBy(() -> destination.migration().migrate("unix:" + first))
                    .hasMessage("Guest is waiting for an incoming migration");

            source.migration().setParameters(1L << 20, 50L);
            source.migration().migrate("unix:" + first);
            assertThatThrownBy(() -> source.migration().migrate("unix:" + first))
                    .hasMessage("There's a migration process in progress");
            await(() -> source.migration().stats().transferredBytes() > 64 << 10, "some pages sent");
            source.migration().cancel();
            assertThat(source.migration().awaitOutgoing(20_000)).isTrue();
            assertThat(source.migration().stats().status()).isEqualTo(MigrationStatus.CANCELLED);
            assertThat(source.runState()).isEqualTo("running");
            assertThat(events).contains(new MachineEvent.Migration("setup"), new MachineEvent.Migration("active"),
                    new MachineEvent.MigrationPass(1), new MachineEvent.Migration("cancelling"),
                    new MachineEvent.Migration("cancelled")).doesNotContain(new MachineEvent.Stopped());
            await(() -> refused.get() != null, "the destination to refuse the cut stream");
            assertThat(destination.runState()).isEqualTo("inmigrate");
        }
    }

    @Test
    void aCompletedMigrationLeavesTheSourceInPostmigrateAndTheDestinationRunning() throws Exception {
        try (PcMachine source = machine(); PcMachine destination = machine()) {
            List<MachineEvent> events = new CopyOnWriteArrayList<>();
            List<MachineEvent> arrived = new CopyOnWriteArrayList<>();
            source.eventListener(events::add);
            destination.eventListener(arrived::add);
            source.memory().fill(0x100000, 4 << 20, (byte) 0x44);
            Path socket = dir.resolve("m.sock");
            AtomicReference<Exception> refused = new AtomicReference<>();
            destination.migration().listen(new MigrationUri.Unix(socket), refused::set);
            source.migration().setParameters(0L, 300L);
            source.migration().migrate("unix:" + socket);
            assertThat(source.migration().awaitOutgoing(20_000)).isTrue();
            assertThat(source.migration().stats().status()).as("%s", source.migration().stats().error())
                    .isEqualTo(MigrationStatus.COMPLETED);
            assertThat(source.runState()).isEqualTo("postmigrate");
            assertThat(events).containsSubsequence(new MachineEvent.Migration("setup"),
                    new MachineEvent.Migration("active"), new MachineEvent.MigrationPass(1), new MachineEvent.Stopped(),
                    new MachineEvent.Migration("completed"));
            await(() -> destination.runState().equals("running"), "the destination to run");
            assertThat(refused.get()).isNull();
            assertThat(arrived).containsSubsequence(new MachineEvent.Migration("active"),
                    new MachineEvent.Migration("completed"), new MachineEvent.Resumed());
            for (long at = 0; at < 16 << 20; at += 1 << 20) {
                byte[] a = new byte[1 << 20];
                byte[] b = new byte[1 << 20];
                source.memory().read(at, a, 0, a.length);
                destination.memory().read(at, b, 0, b.length);
                assertThat(b).as("RAM at 0x%x", at).isEqualTo(a);
            }
        }
    }

    @Test
    void stopWhileInmigrateLeavesTheLoadedMachinePausedAndContWaitsForTheStream() throws Exception {
        try (PcMachine source = machine(); PcMachine destination = machine()) {
            Path socket = dir.resolve("paused.sock");
            AtomicReference<Exception> refused = new AtomicReference<>();
            destination.migration().listen(new MigrationUri.Unix(socket), refused::set);
            destination.cont();
            assertThat(destination.runState()).as("cont waits for the stream").isEqualTo("inmigrate");
            destination.stop();
            assertThat(destination.runState()).isEqualTo("inmigrate");
            source.migration().migrate("unix:" + socket);
            assertThat(source.migration().awaitOutgoing(20_000)).isTrue();
            assertThat(source.migration().stats().status()).isEqualTo(MigrationStatus.COMPLETED);
            await(() -> destination.migration().stats().status() == MigrationStatus.COMPLETED, "the load");
            await(() -> !destination.runState().equals("inmigrate"), "the end of inmigrate");
            assertThat(destination.runState()).isEqualTo("paused");
            destination.cont();
            assertThat(destination.runState()).isEqualTo("running");
            assertThat(refused.get()).isNull();
        }
    }

    @Test
    void badParametersAndUrisAreRefused() throws Exception {
        try (PcMachine m = machine()) {
            assertThatThrownBy(() -> m.migration().setParameters(-1L, null)).hasMessageContaining("max-bandwidth");
            assertThatThrownBy(() -> m.migration().setParameters(null, 3_000_000L)).hasMessageContaining("downtime-limit");
            assertThatThrownBy(() -> m.migration().migrate("exec:cat")).hasMessageContaining("unknown scheme");
            m.migration().migrate("unix:" + dir.resolve("nobody-listens.sock"));
            assertThat(m.migration().awaitOutgoing(20_000)).isTrue();
            assertThat(m.migration().stats().status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(m.migration().stats().error()).contains("nobody-listens.sock");
            assertThat(m.runState()).isEqualTo("running");
        }
    }

    @Test
    void migrateReturnsInSetupAsQemuDoesSoAQueryRightAfterNeverSeesNone() throws Exception {
        // QEMU's qmp_migrate enters SETUP (migrate_init) before it returns; management tools poll
        // query-migrate at once and take an empty answer for "no migration".
        for (int i = 0; i < 20; i++) {
            try (PcMachine m = machine()) {
                List<MachineEvent> events = new CopyOnWriteArrayList<>();
                m.eventListener(events::add);
                m.migration().migrate("unix:" + dir.resolve("nobody-" + i + ".sock"));
                assertThat(m.migration().stats().status()).isNotEqualTo(MigrationStatus.NONE);
                assertThat(events).first().isEqualTo(new MachineEvent.Migration("setup"));
                assertThat(m.migration().awaitOutgoing(20_000)).isTrue();
                assertThat(events).containsExactly(new MachineEvent.Migration("setup"),
                        new MachineEvent.Migration("failed"));
            }
        }
    }
}
