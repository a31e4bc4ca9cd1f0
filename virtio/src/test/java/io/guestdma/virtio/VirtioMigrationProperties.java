package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.ErrorPolicy;
import io.guestdma.block.FaultInjectingBackend;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.testing.SectionMutation;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.statistics.Statistics;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import net.jqwik.api.lifecycle.AfterContainer;

/**
 * A virtio-blk section mutated or truncated is refused with a {@link MigrationFormatException}, or
 * the device it loads into then serves a guest (notifications, register reads, MSI-X, resume)
 * without an exception and without leaving a mapping behind.
 */
class VirtioMigrationProperties {
    private static final VirtioBlkConfig CONFIG = VirtioBlkConfig.defaults()
            .withPolicies(ErrorPolicy.REPORT, ErrorPolicy.STOP).withQueues(2);
    private static final Path DIR;
    private static final byte[] SECTION;
    private static final byte[] RAM;

    static {
        try {
            DIR = Files.createTempDirectory("virtio-migration");
            try (VirtioMigrationTest.Side src = new VirtioMigrationTest.Side(image("src.img"), CONFIG)) {
                src.driver.start(VirtioMigrationTest.FEATURES, 2, 16);
                src.backend.failAt(FaultInjectingBackend.Operation.WRITE, 1, FaultInjectingBackend.Fault.EIO);
                src.offer(1, VirtioBlk.T_OUT, 8, 4096);
                src.driver.notify(0);
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (!src.blk.isStopped()) {
                    // A failed write that did not stop the device would leave this loop spinning for good.
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError("the failed write did not stop the device within 10 s");
                    }
                    Thread.onSpinWait();
                }
                src.awaitIdle();
                src.offer(2, VirtioBlk.T_IN, 8, 512);
                SECTION = VirtioMigrationTest.save(src.pci.migrationState("v"));
                RAM = src.ram();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Path image(String name) throws IOException {
        return Files.write(DIR.resolve(name), new byte[1 << 20]);
    }

    @AfterContainer
    static void removeImages() throws IOException {
        try (var files = Files.list(DIR)) {
            for (Path p : files.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(DIR);
    }

    @Property(tries = 250)
    void mutatedSectionsAreRefusedOrYieldAWorkingDevice(
            @ForAll @Size(max = 6) List<@IntRange(min = 0, max = 400) Integer> nearTheFront,
            @ForAll @Size(max = 4) List<@IntRange(min = 0, max = Integer.MAX_VALUE) Integer> anywhere,
            @ForAll @Size(min = 10, max = 10) List<Byte> values,
            @ForAll @IntRange(min = 0, max = 99) int cut) throws IOException {
        byte[] section = SectionMutation.apply(SECTION, nearTheFront, anywhere, values, cut);
        try (VirtioMigrationTest.Side dst = new VirtioMigrationTest.Side(image("dst.img"), CONFIG)) {
            dst.memory.write(0, RAM, 0, RAM.length);
            StateReader in = new StateReader("v", section);
            try {
                dst.pci.migrationState("v").load(in, 1);
                in.expectEnd();
                Statistics.collect("loaded");
            } catch (MigrationFormatException refused) {
                Statistics.collect("refused");
                assertThat(refused.getMessage()).startsWith("section v");
            }
            play(dst);
        }
        // both outcomes must occur, or the property checks less than it says
        Statistics.coverage(coverage -> {
            coverage.check("loaded").percentage(p -> p >= 5);
            coverage.check("refused").percentage(p -> p >= 5);
        });
    }

    /** What a guest can do next: notify, read registers and the ISR, touch MSI-X, and resume. */
    private static void play(VirtioMigrationTest.Side side) {
        side.blk.resume();
        for (int q = 0; q < 3; q++) {
            side.driver.notify(q);
        }
        for (int offset = 0; offset < 0x40; offset += 4) {
            side.driver.common(offset, 4);
        }
        side.pci.modernBar().read(VirtioPci.ISR, 1);
        side.pci.configWrite(0x9b, 1, 0x80);
        side.pci.msixBar().write(12, 4, 0);
        side.pci.msixBar().read(0x800, 4);
        side.awaitIdle();
    }
}
