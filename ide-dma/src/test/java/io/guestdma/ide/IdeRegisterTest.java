package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.memory.GuestMemory;
import org.junit.jupiter.api.Test;

/** Task file, device control, interrupt line, selection and the bus-master registers. */
class IdeRegisterTest {

    @Test
    void unknownCommandsAbortWithAnInterrupt() {
        try (IdeRig rig = IdeRig.builder().build()) {
            for (int cmd : new int[] {0x45, 0xa0, 0xa1, 0x08, 0x00, 0xff}) {
                rig.outb(REG_COMMAND, cmd);
                assertThat(rig.irq14.level()).as("command 0x%x", cmd).isTrue();
                assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | ERR);
                assertThat(rig.inb(REG_ERROR)).isEqualTo(ABRT);
            }
        }
    }

    @Test
    void acceptedNoOpCommandsCompleteWithSeekCompleteWhereQemuSetsIt() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.outb(REG_COMMAND, 0x70); // SEEK: SET_DSC
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            rig.outb(REG_COMMAND, 0xe0); // STANDBY IMMEDIATE: status READY only
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY);
            rig.outb(REG_COMMAND, 0xe5); // CHECK POWER MODE: active
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(rig.inb(REG_NSECTORS)).isEqualTo(0xff);
        }
    }

    @Test
    void readingStatusLowersTheInterruptAlternateStatusDoesNot() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.outb(REG_COMMAND, 0x70);
            assertThat(rig.irq14.level()).isTrue();
            assertThat(rig.altStatus()).isEqualTo(DRDY | DSC);
            assertThat(rig.irq14.level()).isTrue();
            rig.inb(REG_STATUS);
            assertThat(rig.irq14.level()).isFalse();
            assertThat(rig.irq14.transitions()).containsExactly(true, false);
            assertThat(rig.irq15.transitions()).isEmpty();
        }
    }

    @Test
    void nienSuppressesTheInterruptAndTheBusMasterIntrBit() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.control(0x02);
            rig.outb(REG_COMMAND, 0x70);
            assertThat(rig.irq14.level()).isFalse();
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 512 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 1, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isZero();
            assertThat(rig.irq14.transitions()).isEmpty();
            rig.control(0x00);
            rig.outb(REG_COMMAND, 0x70);
            assertThat(rig.irq14.level()).isTrue();
        }
    }

    @Test
    void softResetRestoresTheSignatureAndInterrupts() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.command(CMD_WRITE_PIO, 0x123456, 5); // leaves the drive in DRQ
            assertThat(rig.altStatus() & DRQ).isEqualTo(DRQ);
            rig.control(0x04);
            rig.control(0x00);
            assertThat(rig.irq14.level()).isTrue();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(0x01);
            assertThat(new int[] {rig.inb(REG_NSECTORS), rig.inb(REG_LBA_LOW), rig.inb(REG_LBA_MID),
                rig.inb(REG_LBA_HIGH), rig.inb(REG_DEVICE)}).containsExactly(1, 1, 0, 0, 0xa0);
            // the write never happened
            assertThat(rig.diskBytes(0x123456L * 512, 512)).containsOnly((byte) 0);
        }
    }

    @Test
    void taskFileWritesAreIgnoredWhileDrqIsSet() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.command(CMD_WRITE_PIO, 10, 1);
            rig.outb(REG_LBA_LOW, 99);
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo(10);
        }
    }

    @Test
    void absentDrivesReadAsQemuShowsThem() {
        try (GuestMemory memory = GuestMemory.ofRam(1 << 20);
             PiixIde ide = new PiixIde(memory, Runnable::run, DmaMode.MAP, new IrqRecorder(),
                     new IrqRecorder())) {
            ide.ioWrite(0x1f2, 1, 0x12);
            for (int reg = 1; reg <= 7; reg++) {
                assertThat(ide.ioRead(0x1f0 + reg, 1)).as("register %d", reg).isZero();
            }
            assertThat(ide.ioRead(0x3f6, 1)).isZero();
            assertThat(ide.ioRead(0x177, 1)).isZero();
            ide.ioWrite(0x1f7, 1, CMD_FLUSH_CACHE); // no crash, as QEMU's flush/nodev
        }
    }

    @Test
    void anAbsentSlaveReadsZeroStatusAndIgnoresCommands() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.outb(REG_NSECTORS, 0x34);
            rig.outb(REG_DEVICE, DEV);
            assertThat(rig.inb(REG_STATUS)).isZero();
            assertThat(rig.inb(REG_ERROR)).isZero();
            assertThat(rig.inb(REG_NSECTORS)).isEqualTo(0x34); // it latches the task file
            assertThat(rig.inb(REG_DEVICE)).isEqualTo(0xa0 | DEV);
            rig.outb(REG_COMMAND, CMD_IDENTIFY);
            assertThat(rig.irq14.level()).isFalse();
            rig.outb(REG_DEVICE, 0);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
        }
    }

    @Test
    void diagnosticOnTheSlaveClearsDev() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.ide.attach(0, 1, DriveConfig.of(rig.disk));
            rig.outb(REG_DEVICE, DEV);
            assertThat(rig.inb(REG_DEVICE) & DEV).isEqualTo(DEV);
            rig.outb(REG_COMMAND, CMD_DIAGNOSE);
            assertThat(rig.inb(REG_DEVICE) & DEV).isZero();
            assertThat(rig.inb(REG_ERROR)).isEqualTo(0x01);
        }
    }

    @Test
    void busMasterRegistersBehaveLikePiix() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.bmWrite(BM_CMD, 0xff & ~BM_START);
            assertThat(rig.bmRead(BM_CMD)).isEqualTo(BM_TO_MEMORY);
            assertThat(rig.bmRead(1)).isEqualTo(0xff);
            assertThat(rig.bmRead(3)).isEqualTo(0xff);
            assertThat(rig.ide.busMasterRead(BM_CMD, 2)).isEqualTo(0xffff);
            rig.bmWrite(BM_STATUS, 0xff);
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(0x60); // drive DMA-capable bits stored
            rig.outb(REG_COMMAND, 0x70); // an interrupt sets INTR
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(0x60 | BM_INTR);
            rig.bmWrite(BM_STATUS, 0x60 | BM_INTR); // write 1 to clear
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(0x60);
            rig.ide.busMasterWrite(BM_PRDT, 4, 0x12345677);
            assertThat(rig.ide.busMasterRead(BM_PRDT, 4)).isEqualTo(0x12345674);
            rig.ide.busMasterWrite(BM_PRDT + 2, 2, 0xabcd);
            assertThat(rig.ide.busMasterRead(BM_PRDT, 4)).isEqualTo(0xabcd5674);
            assertThat(rig.ide.busMasterRead(BM_PRDT + 1, 1)).isEqualTo(0x56);
            // the secondary channel's registers are separate
            assertThat(rig.ide.busMasterRead(8 + BM_PRDT, 4)).isZero();
            assertThat(rig.ide.busMasterRead(8 + BM_STATUS, 1)).isZero();
        }
    }

    @Test
    void misuseOfTheApiThrowsClearly() {
        try (IdeRig rig = IdeRig.builder().build()) {
            assertThatThrownBy(() -> rig.ide.ioRead(0x1f8, 1))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0x1f8");
            assertThatThrownBy(() -> rig.ide.ioRead(0x1f0, 3))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("size");
            assertThatThrownBy(() -> rig.ide.busMasterRead(16, 1))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> rig.ide.attach(0, 0, DriveConfig.of(rig.disk)))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("already");
            assertThatThrownBy(() -> rig.ide.attach(2, 0, DriveConfig.of(rig.disk)))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThat(rig.ide.claimsPort(0x1f7)).isTrue();
            assertThat(rig.ide.claimsPort(0x3f6)).isTrue();
            assertThat(rig.ide.claimsPort(0x376)).isTrue();
            assertThat(rig.ide.claimsPort(0x3f7)).isFalse();
        }
    }

    @Test
    void resetReturnsEverythingToPowerOn() {
        try (IdeRig rig = IdeRig.builder().build()) {
            rig.ide.busMasterWrite(BM_PRDT, 4, 0x1000);
            rig.command(CMD_WRITE_PIO, 10, 1);
            rig.ide.reset();
            assertThat(rig.ide.busMasterRead(BM_PRDT, 4)).isZero();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(rig.inb(REG_NSECTORS)).isEqualTo(1);
            assertThat(rig.irq14.level()).isFalse();
        }
    }
}
