package io.guestdma.migration;

import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.RamBacking;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.assertj.core.api.Assertions.assertThat;

/** Guest memories and in-process destinations for the migration tests. */
final class Machines {
    static final long LOW = 1 << 20;
    static final long DIMM = 256 << 10;

    private Machines() {
    }

    /** RAM in the default arena plus a DIMM in a memfd of its own: two blocks, two backings. */
    static GuestMemory memory() throws IOException {
        return GuestMemory.builder()
                .ram("ram", 0, LOW)
                .ram("dimm0", 1L << 32, DIMM, RamBacking.memfd("dimm0", DIMM), 0)
                .build();
    }

    static List<DeviceState> devices(long seed) {
        Counter a = new Counter("piix-ide", seed);
        a.label = "drive0";
        return List.of(a, new Counter("virtio-blk@00:04.0", ~seed));
    }

    static Path socket(Path dir) {
        return dir.resolve("mig-" + System.nanoTime() + ".sock");
    }

    /** A destination in another thread, listening already when this returns. */
    record Destination(IncomingMigration incoming, Future<Void> done, GuestMemory memory, List<DeviceState> devices,
                       ExecutorService executor) implements AutoCloseable {
        static Destination listen(MigrationUri uri, GuestMemory memory, List<DeviceState> devices) throws IOException {
            IncomingMigration incoming = IncomingMigration.listen(uri);
            ExecutorService executor = Executors.newSingleThreadExecutor();
            Future<Void> done = executor.submit(() -> {
                incoming.receive(memory, devices, MigrationListener.NONE);
                return null;
            });
            return new Destination(incoming, done, memory, devices, executor);
        }

        @Override
        public void close() throws IOException {
            incoming.close();
            executor.shutdownNow();
            memory.close();
        }
    }

    static void assertSameRam(GuestMemory source, GuestMemory destination) {
        for (long[] range : new long[][] {{0, LOW}, {1L << 32, DIMM}}) {
            byte[] a = new byte[(int) range[1]];
            byte[] b = new byte[(int) range[1]];
            source.read(range[0], a, 0, a.length);
            destination.read(range[0], b, 0, b.length);
            int mismatch = java.util.Arrays.mismatch(a, b);
            assertThat(mismatch).as("first differing byte at 0x%x", range[0] + mismatch).isEqualTo(-1);
        }
    }

    /**
     * Migrates a machine under load into a snapshot file; the load is over when this returns, so
     * the source's RAM is what the file holds.
     */
    static Path snapshot(Path dir, GuestMemory source, long seed) throws Exception {
        Path file = Files.createTempFile(dir, "snapshot", ".mig");
        try (GuestLoad load = new GuestLoad(source, seed, 0).start()) {
            MigrationStats stats = new MigrationSource(source, devices(seed), load,
                    MigrationTest.FAST, MigrationListener.NONE).run(new MigrationUri.File(file));
            assertThat(stats.status()).as("%s", stats.error()).isEqualTo(MigrationStatus.COMPLETED);
            // Not resumed: closing ends the load threads where the switchover parked them.
        }
        return file;
    }
}
