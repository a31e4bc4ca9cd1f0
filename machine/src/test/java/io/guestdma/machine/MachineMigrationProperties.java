package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.migration.DeviceState;
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
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * The machine's own section ({@code "pc"}) and the IDE's, mutated and truncated, loaded into a
 * stopped machine: refused with a {@link MigrationFormatException}, or the machine then answers a
 * guest's port script, DMA included, without an exception.
 */
class MachineMigrationProperties {
    private static final Path DIR;
    private static final List<byte[]> SECTIONS;

    static {
        try {
            DIR = Files.createTempDirectory("machine-migration");
            Path image = Files.write(DIR.resolve("a.img"), new byte[1 << 20]);
            try (PcMachine m = machine(image)) {
                MachineMigrationTest.configWrite(m, MachineMigrationTest.IDE_DEVFN, 0x20, 4,
                        MachineMigrationTest.BM_BASE | 1);
                MachineMigrationTest.configWrite(m, MachineMigrationTest.IDE_DEVFN, 0x04, 2, 0x05);
                MachineMigrationTest.configWrite(m, MachineMigrationTest.ISA_DEVFN, 0x60, 1, 11);
                m.ports().write(0x510, 2, 0x19);
                m.ports().read(0x511, 1);
                m.ports().write(0x1f7, 1, 0xec); // IDENTIFY, left unread
                SECTIONS = MachineMigrationTest.saveAll(m);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static PcMachine machine(Path image) throws IOException {
        return new PcMachine(MachineConfig.parse(List.of("-m", "4M", "-drive", "file=" + image + ",if=ide,format=raw")));
    }

    @AfterContainer
    static void removeImage() throws IOException {
        Files.deleteIfExists(DIR.resolve("a.img"));
        Files.deleteIfExists(DIR);
    }

    @Property(tries = 300)
    void mutatedSectionsAreRefusedOrLeaveAWorkingMachine(
            @ForAll @IntRange(min = 0, max = 1) int which,
            @ForAll @Size(max = 6) List<@IntRange(min = 0, max = 200) Integer> nearTheFront,
            @ForAll @Size(max = 4) List<@IntRange(min = 0, max = Integer.MAX_VALUE) Integer> anywhere,
            @ForAll @Size(min = 10, max = 10) List<Byte> values,
            @ForAll @IntRange(min = 0, max = 99) int cut) throws IOException {
        byte[] section = SectionMutation.apply(SECTIONS.get(which), nearTheFront, anywhere, values, cut);
        try (PcMachine m = machine(DIR.resolve("a.img"))) {
            m.stop();
            DeviceState state = m.deviceStates().get(which);
            StateReader in = new StateReader(state.sectionId(), section);
            try {
                state.load(in, 1);
                in.expectEnd();
                Statistics.collect("loaded");
            } catch (MigrationFormatException refused) {
                Statistics.collect("refused");
                assertThat(refused.getMessage()).startsWith("section " + state.sectionId());
            }
            m.cont();
            play(m);
        }
        // both outcomes must occur, or the property checks less than it says
        Statistics.coverage(coverage -> {
            coverage.check("loaded").percentage(p -> p >= 5);
            coverage.check("refused").percentage(p -> p >= 5);
        });
    }

    /** Configuration space, fw_cfg, the IDE's ports and a DMA wherever the BAR now decodes. */
    private static void play(PcMachine m) {
        for (int devfn = 0; devfn < 16; devfn++) {
            for (int reg = 0; reg < 256; reg += 4) {
                MachineMigrationTest.configRead(m, devfn, reg);
            }
        }
        for (int i = 0; i < 40; i++) {
            m.ports().read(0x511, 1);
        }
        m.ports().write(0x514, 4, 0);
        m.ports().write(0x518, 4, Integer.reverseBytes(0x1000));
        for (int i = 0; i < 300; i++) {
            m.ports().read(0x1f0, 2);
        }
        int bar = MachineMigrationTest.configRead(m, MachineMigrationTest.IDE_DEVFN, 0x20) & 0xfff0;
        if (bar != 0) {
            m.ports().write(bar + 4, 4, 0x1000);
            m.ports().write(0x1f7, 1, 0xc8);
            m.ports().write(bar, 1, 0x09);
            m.ports().read(bar + 2, 1);
        }
        m.ports().read(0x1f7, 1);
    }
}
