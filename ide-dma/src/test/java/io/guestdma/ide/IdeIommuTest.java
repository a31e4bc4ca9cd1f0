package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.IommuTranslation;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The bus master behind an IOMMU: PRD tables and buffers are I/O virtual addresses, translated page
 * by page; a page the IOMMU does not let the device write ends the command with a bus-master error.
 */
class IdeIommuTest {
    /** I/O page to (guest page, writable); everything else unmapped. */
    private final Map<Long, long[]> pages = new ConcurrentHashMap<>();

    private IommuTranslation translate(long iova, DmaDirection direction) {
        long[] e = pages.get(iova & -4096L);
        return e == null ? IommuTranslation.fault(iova)
                : new IommuTranslation(iova & -4096L, e[0], 4096, true, e[1] != 0);
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void dmaGoesWhereTheIommuSaysAndAReadOnlyPageIsABusMasterError(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).iommu(this::translate).build()) {
            long iovaTable = 0x4000_0000L;
            long iovaBuffer = 0x5000_0000L;
            pages.put(iovaTable, new long[] {PRDT_ADDR, 0});
            pages.put(iovaBuffer, new long[] {BUF_ADDR + 0x3000, 1});
            pages.put(iovaBuffer + 0x1000, new long[] {BUF_ADDR + 0x8000, 1});
            byte[] data = pattern(8192, 31);
            rig.writeDisk(0, data);
            // The PRD table holds I/O virtual addresses too.
            rig.writePrdt(PRDT_ADDR, new long[][] {{iovaBuffer, 8192 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 16, iovaTable, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.ram(BUF_ADDR + 0x3000, 4096)).isEqualTo(java.util.Arrays.copyOfRange(data, 0, 4096));
            assertThat(rig.ram(BUF_ADDR + 0x8000, 4096)).isEqualTo(java.util.Arrays.copyOfRange(data, 4096, 8192));

            // The second page becomes read-only for the device: a disk read into it must fail.
            pages.put(iovaBuffer + 0x1000, new long[] {BUF_ADDR + 0x8000, 0});
            rig.ide.busMasterSpace().invalidate(iovaBuffer + 0x1000, 4096);
            rig.fillRam(BUF_ADDR + 0x8000, 4096, 0);
            DmaResult denied = rig.sendDma(CMD_READ_DMA, 0, 16, iovaTable, false);
            assertThat(denied.bmStatus()).isEqualTo(BM_ERROR | BM_INTR);
            assertThat(denied.ataStatus()).isEqualTo(DRDY | ERR);
            assertThat(rig.ram(BUF_ADDR + 0x8000, 4096)).as("nothing written through the denied page")
                    .containsOnly((byte) 0);
            assertThat(rig.ide.busMasterSpace().iommuFaults()).isPositive();
            // Writing to disk from it is still allowed (the device only reads memory).
            rig.bmWrite(BM_STATUS, BM_ERROR | BM_INTR);
            assertThat(rig.sendDma(CMD_WRITE_DMA, 100, 16, iovaTable, false).bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.memory.bouncePool().bytesInFlight()).isZero();
        }
    }
}
