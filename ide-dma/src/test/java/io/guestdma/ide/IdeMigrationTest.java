package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.migration.DeviceState;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The PIIX IDE's migration section: a controller stopped mid-activity is saved, a second one with
 * the same drives is built over a byte-for-byte copy of RAM and disk, the section is loaded there,
 * and both continue with the same register script: everything the guest sees must agree.
 */
class IdeMigrationTest {
    private static final long RAM_BYTES = 16L << 20;

    /** Saves {@code src} (pausing it), builds the destination, copies RAM and disk, loads. */
    static IdeRig migrate(IdeRig src, Supplier<IdeRig> destination) throws MigrationFormatException {
        src.ide.pause();
        byte[] section = save(src.ide.migrationState());
        IdeRig dst = destination.get();
        copyRamAndDisk(src, dst);
        StateReader in = new StateReader("piix-ide", section);
        dst.ide.migrationState().load(in, 1);
        in.expectEnd();
        return dst;
    }

    static byte[] save(DeviceState state) {
        StateWriter out = new StateWriter();
        state.save(out);
        return out.toByteArray();
    }

    static void copyRamAndDisk(IdeRig src, IdeRig dst) {
        byte[] ram = src.ram(0, (int) RAM_BYTES);
        dst.memory.write(0, ram, 0, ram.length);
        dst.writeDisk(0, src.diskBytes(0, (int) (src.sectors * 512)));
    }

    /** Everything a guest reads without changing the device: task file, alt status, bus master, IRQs. */
    static List<Integer> observe(IdeRig rig) {
        List<Integer> seen = new ArrayList<>();
        for (int reg = 1; reg <= 6; reg++) {
            seen.add(rig.inb(reg));
        }
        seen.add(rig.altStatus());
        seen.add(rig.ide.ioRead(0x376, 1));
        for (int offset : new int[] {0, 2, 8, 10}) {
            seen.add(rig.bmRead(offset));
        }
        seen.add(rig.ide.busMasterRead(4, 4));
        seen.add(rig.ide.busMasterRead(12, 4));
        seen.add(rig.irq14.level() ? 1 : 0);
        seen.add(rig.irq15.level() ? 1 : 0);
        seen.add(rig.ide.isPaused() ? 1 : 0);
        return seen;
    }

    private static void assertSameGuestView(IdeRig a, IdeRig b) {
        assertThat(observe(b)).isEqualTo(observe(a));
        assertThat(b.ram(0, (int) RAM_BYTES)).isEqualTo(a.ram(0, (int) RAM_BYTES));
        assertThat(b.diskBytes(0, (int) (b.sectors * 512))).isEqualTo(a.diskBytes(0, (int) (a.sectors * 512)));
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void pioReadHalfDoneContinuesOnTheDestination(DmaMode mode) throws Exception {
        try (IdeRig src = IdeRig.builder().mode(mode).build()) {
            src.writeDisk(40 * 512, pattern(4 * 512, 3));
            src.command(CMD_READ_PIO, 40, 4);
            int[] firstHalf = new int[300];
            for (int i = 0; i < firstHalf.length; i++) {
                firstHalf[i] = src.inw(REG_DATA);
            }
            try (IdeRig dst = migrate(src, () -> IdeRig.builder().mode(mode).build())) {
                src.ide.resume();
                dst.ide.resume();
                assertSameGuestView(src, dst);
                for (int i = 300; i < 4 * 256; i++) {
                    assertThat(dst.inw(REG_DATA)).as("word %d", i).isEqualTo(src.inw(REG_DATA));
                    assertThat(dst.altStatus()).isEqualTo(src.altStatus());
                    assertThat(dst.irq14.level()).isEqualTo(src.irq14.level());
                }
                assertSameGuestView(src, dst);
                assertThat(dst.inb(REG_STATUS)).isEqualTo(src.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void pioWriteHalfDoneLandsOnTheDestinationDisk(DmaMode mode) throws Exception {
        try (IdeRig src = IdeRig.builder().mode(mode).build()) {
            src.command(CMD_WRITE_PIO, 70, 2);
            for (int i = 0; i < 200; i++) {
                src.outw(REG_DATA, 0x1000 + i);
            }
            try (IdeRig dst = migrate(src, () -> IdeRig.builder().mode(mode).build())) {
                src.ide.resume();
                dst.ide.resume();
                for (int i = 200; i < 512; i++) {
                    src.outw(REG_DATA, 0x1000 + i);
                    dst.outw(REG_DATA, 0x1000 + i);
                }
                assertThat(dst.inb(REG_STATUS)).isEqualTo(src.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
                assertThat(dst.diskBytes(71 * 512, 2)).containsExactly(0x00, 0x11);
                assertSameGuestView(src, dst);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void dmaHeldByWerrorStopIsRestartedWhenTheDestinationContinues(DmaMode mode) throws Exception {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig src = IdeRig.builder().mode(mode).decorate(b -> faulty[0] = new FaultyBackend(b))
                .configure(c -> c.withPolicies(ErrorPolicy.STOP, ErrorPolicy.STOP)).build()) {
            byte[] data = pattern(3 * 4096, 11);
            src.memory.write(BUF_ADDR, data, 0, data.length);
            src.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096}, {BUF_ADDR + 4096, 8192 | PRD_EOT}});
            faulty[0].failWrites.set(true);
            src.outb(REG_DEVICE, LBA);
            src.bmWrite(BM_CMD, 0);
            src.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            src.command(CMD_WRITE_DMA, 300, 24);
            src.bmWrite(BM_CMD, BM_START);
            assertThat(src.ide.isPaused()).as("werror=stop held the write").isTrue();

            try (IdeRig dst = migrate(src, () -> IdeRig.builder().mode(mode)
                    .configure(c -> c.withPolicies(ErrorPolicy.STOP, ErrorPolicy.STOP)).build())) {
                assertThat(dst.ide.isPaused()).as("the held request keeps the destination stopped").isTrue();
                assertThat(dst.diskBytes(300 * 512, data.length)).containsOnly((byte) 0);
                assertSameGuestView(src, dst);
                faulty[0].failWrites.set(false);
                src.ide.resume();
                dst.ide.resume();
                assertThat(dst.ide.isPaused()).isFalse();
                assertThat(dst.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
                assertThat(dst.irq14.level()).isTrue();
                assertThat(dst.diskBytes(300 * 512, data.length)).isEqualTo(data);
                assertSameGuestView(src, dst);
                assertThat(dst.inb(REG_STATUS)).isEqualTo(src.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
                assertThat(dst.inb(REG_LBA_LOW)).isEqualTo(300 + 24 - 256);
            }
        }
    }

    @Test
    void dmaReadParkedByAPauseIsRedoneOnTheDestination() throws Exception {
        // A pause that lands between START and the transfer's first chunk parks it (a thread pool
        // executor that has not run the task yet): the section carries it as a restart.
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newSingleThreadExecutor();
        java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
        try (IdeRig src = IdeRig.builder().executor(gated(pool, gate)).build()) {
            byte[] data = pattern(8192, 5);
            src.writeDisk(500 * 512, data);
            src.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 8192 | PRD_EOT}});
            src.outb(REG_DEVICE, LBA);
            src.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            src.command(CMD_READ_DMA, 500, 16);
            src.bmWrite(BM_CMD, BM_START | BM_TO_MEMORY);
            pauseBeforeTheTransfer(src, gate);
            try (IdeRig dst = migrate(src, () -> IdeRig.builder().build())) {
                assertThat(dst.ram(BUF_ADDR, 8192)).containsOnly((byte) 0);
                dst.ide.resume();
                assertThat(dst.ram(BUF_ADDR, 8192)).isEqualTo(data);
                assertThat(dst.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
                assertThat(dst.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
                assertThat(dst.irq14.level()).isFalse();
            }
            src.ide.resume();
            src.waitNotBusy();
        } finally {
            gate.countDown();
            pool.shutdown();
        }
    }

    /** An executor whose tasks wait for {@code gate}: a pause can land before a transfer moves. */
    private static java.util.concurrent.Executor gated(java.util.concurrent.ExecutorService pool,
                                                       java.util.concurrent.CountDownLatch gate) {
        return task -> pool.execute(() -> {
            try {
                gate.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            task.run();
        });
    }

    /** Pauses from another thread, lets the gated transfer run into the pause, and waits. */
    private static void pauseBeforeTheTransfer(IdeRig rig, java.util.concurrent.CountDownLatch gate)
            throws InterruptedException {
        Thread pauser = Thread.ofPlatform().start(rig.ide::pause);
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!rig.ide.isPaused()) {
            // A pause() that failed would leave this loop spinning for good.
            assertThat(System.nanoTime()).as("paused within 10 s").isLessThan(deadline);
            Thread.onSpinWait();
        }
        gate.countDown();
        pauser.join();
    }

    @Test
    void atapiDmaParkedByAPauseIsRedoneOnTheDestination() throws Exception {
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newSingleThreadExecutor();
        java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
        try (IdeRig src = IdeRig.builder().sectors(4096).executor(gated(pool, gate))
                .configure(c -> DriveConfig.cdrom(c.backend())).build()) {
            src.writeDisk(0, pattern(2 * 1024 * 1024, 5));
            src.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 2 * 2048 | PRD_EOT}});
            src.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            AtapiTest.packet(src, AtapiTest.read10(6, 2), 0, true);
            src.bmWrite(BM_CMD, BM_START | BM_TO_MEMORY);
            pauseBeforeTheTransfer(src, gate);
            try (IdeRig dst = migrate(src, () -> AtapiTest.cdRig(DmaMode.MAP))) {
                assertThat(dst.ram(BUF_ADDR, 4096)).containsOnly((byte) 0);
                dst.ide.resume();
                assertThat(dst.ram(BUF_ADDR, 4096)).isEqualTo(dst.diskBytes(6 * 2048L, 4096));
                assertThat(dst.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
                assertThat(dst.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
                assertThat(dst.inb(REG_NSECTORS) & 3).as("command complete").isEqualTo(3);
            }
            src.ide.resume();
        } finally {
            gate.countDown();
            pool.shutdown();
        }
    }

    @Test
    void atapiUnitAttentionAndAHalfReadReplyMigrate() throws Exception {
        try (IdeRig src = AtapiTest.cdRig(DmaMode.MAP);
             var disc = FileChannelBackend.open(src.image,
                     BlockOptions.defaults().withReadOnly(true).withLock(false))) {
            src.ide.changeMedium(0, 0, disc);
            AtapiTest.pio(src, AtapiTest.cdb(0x00), 0);
            assertThat(src.inb(REG_ERROR)).as("not ready first; unit attention pending").isEqualTo(0x20);
            try (IdeRig dst = migrate(src, () -> AtapiTest.cdRig(DmaMode.MAP))) {
                src.ide.resume();
                dst.ide.resume();
                assertSameGuestView(src, dst);
                for (IdeRig rig : List.of(src, dst)) {
                    AtapiTest.pio(rig, AtapiTest.cdb(0x00), 0);
                    assertThat(rig.inb(REG_ERROR)).as("unit attention").isEqualTo(0x60);
                    assertThat(AtapiTest.sense(rig)).containsExactly(0x06, 0x28);
                }
                // a PIO reply of three sectors in 1000-byte blocks, stopped inside a block
                for (IdeRig rig : List.of(src, dst)) {
                    AtapiTest.packet(rig, AtapiTest.read10(9, 3), 1000, false);
                    rig.waitNotBusy();
                    rig.inb(REG_STATUS);
                    for (int i = 0; i < 100; i++) {
                        rig.inw(REG_DATA);
                    }
                }
                try (IdeRig third = migrate(dst, () -> AtapiTest.cdRig(DmaMode.MAP))) {
                    src.ide.resume();
                    dst.ide.resume();
                    third.ide.resume();
                    assertSameGuestView(src, third);
                    byte[] expected = src.diskBytes(9 * 2048L + 200, 3 * 2048 - 200);
                    assertThat(restOfReply(third)).isEqualTo(expected);
                    assertThat(restOfReply(src)).isEqualTo(expected);
                    assertSameGuestView(src, third);
                }
            }
        }
    }

    /** Reads the rest of a PIO ATAPI reply, block after block. */
    private static byte[] restOfReply(IdeRig rig) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        while ((rig.altStatus() & DRQ) != 0) {
            int v = rig.inw(REG_DATA);
            out.write(v);
            out.write(v >>> 8);
            rig.waitNotBusy();
        }
        return out.toByteArray();
    }

    @Test
    void unknownVersionAndForeignDrivesAreRefusedAndLeaveTheControllerReset() throws Exception {
        try (IdeRig src = IdeRig.builder().build(); IdeRig cd = AtapiTest.cdRig(DmaMode.MAP)) {
            src.command(CMD_READ_PIO, 1, 2);
            src.ide.pause();
            byte[] section = save(src.ide.migrationState());
            assertThatThrownBy(() -> cd.ide.migrationState().load(new StateReader("piix-ide", section), 2))
                    .isInstanceOf(MigrationFormatException.class).hasMessageContaining("version 2");
            cd.outb(REG_LBA_LOW, 0x55);
            assertThatThrownBy(() -> cd.ide.migrationState().load(new StateReader("piix-ide", section), 1))
                    .isInstanceOf(MigrationFormatException.class).hasMessageContaining("ide.0.unit0.cdrom");
            assertThat(cd.inb(REG_LBA_LOW)).as("reset after the refusal: the signature").isEqualTo(1);
            assertThat(cd.inb(REG_LBA_HIGH)).as("the ATAPI signature").isEqualTo(0xeb);
        }
    }

    @Test
    void savingARunningControllerIsRefused() {
        try (IdeRig rig = IdeRig.builder().build()) {
            assertThatThrownBy(() -> save(rig.ide.migrationState())).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("paused");
        }
    }
}
