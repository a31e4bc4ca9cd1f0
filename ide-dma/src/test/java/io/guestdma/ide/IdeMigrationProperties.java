package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.GuestMemory;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.testing.SectionMutation;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.statistics.Statistics;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * A migration section is untrusted: mutated or truncated, it is refused with a
 * {@link MigrationFormatException} or it loads into a controller that then survives any register
 * script (no exception out of a register access, no mapping left behind, no restart that runs
 * wild) the way a guest-programmed one does.
 */
class IdeMigrationProperties {
    private static final byte[] SECTION = validSection();

    /** A controller with a disk and a CD-ROM, stopped with a PIO read half done and a DMA held. */
    private static byte[] validSection() {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = rig(faulty)) {
            rig.writeDisk(0, pattern(64 * 512, 9));
            rig.outb(REG_DEVICE, LBA);
            rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096 | PRD_EOT}});
            faulty[0].failReads.set(true);
            rig.command(CMD_READ_DMA, 4, 8);
            rig.bmWrite(BM_CMD, BM_START | BM_TO_MEMORY);
            // the secondary channel's CD-ROM in the middle of an ATAPI reply by PIO
            rig.ide.ioWrite(0x176, 1, 0);
            rig.ide.ioWrite(0x171, 1, 0);
            rig.ide.ioWrite(0x174, 1, 0xe8);
            rig.ide.ioWrite(0x175, 1, 0x03);
            rig.ide.ioWrite(0x177, 1, 0xa0);
            byte[] read10 = AtapiTest.read10(2, 2);
            for (int i = 0; i < 12; i += 2) {
                rig.ide.ioWrite(0x170, 2, (read10[i] & 0xff) | (read10[i + 1] & 0xff) << 8);
            }
            for (int i = 0; i < 50; i++) {
                rig.ide.ioRead(0x170, 2);
            }
            return IdeMigrationTest.save(rig.ide.migrationState());
        }
    }

    private static IdeRig rig(FaultyBackend[] faulty) {
        IdeRig rig = IdeRig.builder().sectors(2048).memory(GuestMemory.ofRam(4L << 20))
                .decorate(b -> faulty[0] = new FaultyBackend(b))
                .configure(c -> c.withPolicies(ErrorPolicy.STOP, ErrorPolicy.STOP)).build();
        rig.ide.attach(1, 0, DriveConfig.cdrom(rig.backend));
        return rig;
    }

    @Property(tries = 400)
    void mutatedOrTruncatedSectionsAreRefusedOrYieldAWorkingController(
            @ForAll @Size(max = 6) List<@IntRange(min = 0, max = 400) Integer> nearTheFront,
            @ForAll @Size(max = 4) List<@IntRange(min = 0, max = Integer.MAX_VALUE) Integer> anywhere,
            @ForAll @Size(min = 10, max = 10) List<Byte> values,
            @ForAll @IntRange(min = 0, max = 99) int cut) {
        byte[] section = SectionMutation.apply(SECTION, nearTheFront, anywhere, values, cut);
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = rig(faulty)) {
            StateReader in = new StateReader("piix-ide", section);
            try {
                rig.ide.migrationState().load(in, 1);
                in.expectEnd();
                Statistics.collect("loaded");
            } catch (MigrationFormatException refused) {
                Statistics.collect("refused");
                assertThat(refused.getMessage()).startsWith("section piix-ide");
                assertThat(rig.altStatus()).as("left reset").isEqualTo(DRDY | DSC);
            }
            play(rig);
        }
        // both outcomes must occur, or the property checks less than it says
        Statistics.coverage(coverage -> {
            coverage.check("loaded").percentage(p -> p >= 5);
            coverage.check("refused").percentage(p -> p >= 5);
        });
    }

    /** Every kind of register access a guest can make, on both channels, then a resume. */
    private static void play(IdeRig rig) {
        rig.ide.resume();
        for (int base : new int[] {0x1f0, 0x170}) {
            for (int i = 0; i < 700; i++) {
                rig.ide.ioRead(base, i % 3 == 0 ? 4 : 2);
            }
            for (int reg = 1; reg < 8; reg++) {
                rig.ide.ioRead(base + reg, 1);
            }
            for (int i = 0; i < 300; i++) {
                rig.ide.ioWrite(base, 2, i);
            }
            int bm = base == 0x1f0 ? 0 : 8;
            rig.ide.busMasterWrite(bm, 1, 0);
            rig.ide.busMasterWrite(bm + 4, 4, (int) PRDT_ADDR);
            rig.ide.busMasterWrite(bm, 1, BM_START | BM_TO_MEMORY);
            rig.ide.ioWrite(base + 7, 1, CMD_READ_DMA);
            rig.ide.busMasterWrite(bm, 1, 0);
            rig.ide.ioWrite(base + 7, 1, 0xa0);
            for (int i = 0; i < 6; i++) {
                rig.ide.ioWrite(base, 2, 0x28);
            }
            rig.ide.ioRead(base + 7, 1);
        }
        rig.ide.pause();
        rig.ide.resume();
    }
}
