package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** rerror/werror: report, ignore and stop with a backend that fails on demand. */
class IdeErrorPolicyTest {

    private static IdeRig rig(DmaMode mode, FaultyBackend[] holder, ErrorPolicy read, ErrorPolicy write) {
        return IdeRig.builder().mode(mode)
                .decorate(b -> holder[0] = new FaultyBackend(b))
                .configure(c -> c.withPolicies(read, write))
                .build();
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void reportGivesErrAbrtAndAnInterrupt(DmaMode mode) {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = rig(mode, faulty, ErrorPolicy.REPORT, ErrorPolicy.REPORT)) {
            faulty[0].failReads.set(true);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 8, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(r.irqBeforeStatusRead()).isTrue();
            assertThat(r.ataStatus()).isEqualTo(DRDY | ERR);
            assertThat(r.error()).isEqualTo(ABRT);
            assertThat(rig.ide.isPaused()).isFalse();

            faulty[0].failReads.set(false);
            faulty[0].failFlushes.set(true);
            rig.outb(REG_COMMAND, CMD_FLUSH_CACHE);
            assertThat(rig.irq14.level()).isTrue();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | ERR);
            assertThat(rig.inb(REG_ERROR)).isEqualTo(ABRT);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void ignoreCompletesAsIfTheWriteHadWorked(DmaMode mode) {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = rig(mode, faulty, ErrorPolicy.REPORT, ErrorPolicy.IGNORE)) {
            faulty[0].failWrites.set(true);
            rig.fillRam(BUF_ADDR, 1024, 0x33);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 1024 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_WRITE_DMA, 5, 2, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(r.ataStatus()).isEqualTo(DRDY | DSC);
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo(7);
            assertThat(rig.diskBytes(5 * 512, 1024)).containsOnly((byte) 0);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void stopHoldsTheDmaRequestAndResumeRetriesItWithNothingLost(DmaMode mode) {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = rig(mode, faulty, ErrorPolicy.STOP, ErrorPolicy.STOP)) {
            byte[] data = pattern(3 * 4096, 8);
            rig.memory.write(BUF_ADDR, data, 0, data.length);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096}, {BUF_ADDR + 4096, 8192 | PRD_EOT}});
            faulty[0].failWrites.set(true);

            rig.outb(REG_DEVICE, LBA);
            rig.bmWrite(BM_CMD, 0);
            rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            rig.command(CMD_WRITE_DMA, 30, 24);
            rig.bmWrite(BM_CMD, BM_START);

            assertThat(rig.ide.isPaused()).isTrue();
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_ACTIVE);
            assertThat(rig.altStatus()).isEqualTo(DRDY | DSC | DRQ);
            assertThat(rig.irq14.level()).isFalse();

            faulty[0].failWrites.set(false);
            rig.ide.resume();
            assertThat(rig.ide.isPaused()).isFalse();
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
            assertThat(rig.irq14.level()).isTrue();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo(54);
            assertThat(rig.diskBytes(30 * 512, data.length)).isEqualTo(data);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void stopHoldsPioWritesAndFlushesToo(DmaMode mode) {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = rig(mode, faulty, ErrorPolicy.STOP, ErrorPolicy.STOP)) {
            faulty[0].failWrites.set(true);
            rig.command(CMD_WRITE_PIO, 9, 1);
            for (int i = 0; i < 256; i++) {
                rig.outw(REG_DATA, 0xbeef);
            }
            assertThat(rig.ide.isPaused()).isTrue();
            // QEMU clears BSY before it consults the policy: the guest sees an idle drive
            // without an interrupt until the retry completes.
            assertThat(rig.altStatus()).isEqualTo(DRDY | DSC);
            assertThat(rig.irq14.level()).isFalse();
            faulty[0].failWrites.set(false);
            rig.ide.resume();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(rig.diskBytes(9 * 512, 2)).containsExactly(0xef, 0xbe);

            faulty[0].failFlushes.set(true);
            rig.outb(REG_COMMAND, CMD_FLUSH_CACHE);
            assertThat(rig.altStatus()).isEqualTo(DRDY | BSY);
            assertThat(rig.ide.isPaused()).isTrue();
            faulty[0].failFlushes.set(false);
            rig.ide.resume();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(faulty[0].flushes.get()).isEqualTo(1);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void stopOnAPioReadRetriesTheRead(DmaMode mode) {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = rig(mode, faulty, ErrorPolicy.STOP, ErrorPolicy.REPORT)) {
            byte[] data = pattern(512, 4);
            rig.writeDisk(3 * 512, data);
            faulty[0].failReads.set(true);
            rig.command(CMD_READ_PIO, 3, 1);
            assertThat(rig.ide.isPaused()).isTrue();
            faulty[0].failReads.set(false);
            rig.ide.resume();
            assertThat(rig.inb(REG_STATUS) & (DRQ | ERR)).isEqualTo(DRQ);
            byte[] got = new byte[512];
            for (int i = 0; i < 512; i += 2) {
                int v = rig.inw(REG_DATA);
                got[i] = (byte) v;
                got[i + 1] = (byte) (v >>> 8);
            }
            assertThat(got).isEqualTo(data);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void flushCacheReachesTheBackend(DmaMode mode) {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = rig(mode, faulty, ErrorPolicy.REPORT, ErrorPolicy.REPORT)) {
            rig.outb(REG_DEVICE, 0);
            rig.outb(REG_COMMAND, CMD_FLUSH_CACHE);
            assertThat(rig.irq14.level()).isTrue();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            rig.outb(REG_COMMAND, CMD_FLUSH_CACHE_EXT);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(faulty[0].flushes.get()).isEqualTo(2);
        }
    }
}
