package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Bus-master DMA: the cases of QEMU's ide-test, run on both data paths. */
class IdeDmaTest {

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void simpleReadWrite(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).build()) {
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 512 | PRD_EOT}});
            rig.fillRam(BUF_ADDR, 512, 0x55);
            DmaResult r = rig.sendDma(CMD_WRITE_DMA, 0, 1, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(r.irqBeforeStatusRead()).isTrue();
            assertThat(r.ataStatus()).isEqualTo(DRDY | DSC);
            assertThat(r.irqAfterStatusRead()).isFalse();

            rig.fillRam(BUF_ADDR, 512, 0xaa);
            assertThat(rig.sendDma(CMD_WRITE_DMA, 1, 1, PRDT_ADDR, false).bmStatus()).isEqualTo(BM_INTR);

            assertThat(rig.sendDma(CMD_READ_DMA, 0, 1, PRDT_ADDR, false).bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.ram(BUF_ADDR, 512)).containsOnly((byte) 0x55);
            assertThat(rig.sendDma(CMD_READ_DMA, 1, 1, PRDT_ADDR, false).bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.ram(BUF_ADDR, 512)).containsOnly((byte) 0xaa);
            assertThat(rig.diskBytes(0, 512)).containsOnly((byte) 0x55);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void severalPrdEntriesScatterAndGather(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).build()) {
            byte[] data = pattern(8 * 512, 9);
            rig.writeDisk(40 * 512, data);
            long[][] prdt = {
                {BUF_ADDR, 1000},
                {BUF_ADDR + 0x3000, 24},
                {BUF_ADDR + 0x5001, 2048},
                {BUF_ADDR + 0x9000, 1024 | PRD_EOT},
            };
            rig.writePrdt(PRDT_ADDR, prdt);
            DmaResult r = rig.sendDma(CMD_READ_DMA, 40, 8, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            byte[] gathered = new byte[data.length];
            int at = 0;
            for (long[] e : prdt) {
                int len = (int) (e[1] & 0xfffe);
                System.arraycopy(rig.ram(e[0], len), 0, gathered, at, len);
                at += len;
            }
            assertThat(gathered).isEqualTo(data);
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo(48);

            // and back out to other sectors
            assertThat(rig.sendDma(CMD_WRITE_DMA, 200, 8, PRDT_ADDR, false).bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.diskBytes(200 * 512, data.length)).isEqualTo(data);
        }
    }

    /** QEMU's test_bmdma_various_prdts for a few sizes: short, exact and long tables. */
    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void prdUnderflowExactAndOverflowGiveQemusStatus(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).build()) {
            for (int sectors : new int[] {1, 8, 256}) {
                for (int size : new int[] {0, 256, 512, 4096, 4096 + 256, 65280}) {
                    int prdSize = (size & 0xfffe) == 0 ? 65536 : size & 0xfffe;
                    int reqSize = sectors * 512;
                    int expected = prdSize < reqSize ? 0
                            : prdSize == reqSize ? BM_INTR : BM_ACTIVE | BM_INTR;
                    int expectedAborted = prdSize < reqSize ? 0 : BM_INTR;
                    rig.writePrdt(PRDT_ADDR, new long[][] {{0, size | PRD_EOT}});
                    DmaResult r = rig.sendDma(CMD_READ_DMA, 0, sectors, PRDT_ADDR, false);
                    assertThat(r.bmStatus()).as("%d sectors, PRD %d", sectors, size).isEqualTo(expected);
                    assertThat(r.irqBeforeStatusRead()).isEqualTo((expected & BM_INTR) != 0);
                    assertThat(r.ataStatus() & (DRDY | BSY | DRQ | ERR | DF)).isEqualTo(DRDY);
                    assertThat(r.irqAfterStatusRead()).isFalse();
                    DmaResult aborted = rig.sendDma(CMD_READ_DMA, 0, sectors, PRDT_ADDR, true);
                    assertThat(aborted.bmStatus()).isEqualTo(expectedAborted);
                    assertThat(aborted.ataStatus() & (DRDY | BSY | DRQ | ERR | DF)).isEqualTo(DRDY);
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void zeroByteCountMeans64KiB(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).build()) {
            byte[] data = pattern(65536, 11);
            rig.writeDisk(1000 * 512, data);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 1000, 128, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.ram(BUF_ADDR, 65536)).isEqualTo(data);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void tableWithoutEotEndsOnePageAfterItsStart(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).build()) {
            // 512 entries of 2 bytes and no EOT: 1 KiB described, the command wants 2 KiB
            long[][] tiny = new long[600][];
            for (int i = 0; i < tiny.length; i++) {
                tiny[i] = new long[] {BUF_ADDR + 2L * i, 2};
            }
            rig.writePrdt(PRDT_ADDR, tiny);
            assertThat(rig.sendDma(CMD_READ_DMA, 0, 4, PRDT_ADDR, false).bmStatus()).isZero();
            // exactly 2 sectors: the 88 entries past the page are never read, or they would
            // count as PRD overflow and keep ACTIVE set
            assertThat(rig.sendDma(CMD_READ_DMA, 0, 2, PRDT_ADDR, false).bmStatus())
                    .isEqualTo(BM_INTR);
            assertThat(rig.sendDma(CMD_READ_DMA, 0, 1, PRDT_ADDR, false).bmStatus())
                    .isEqualTo(BM_ACTIVE | BM_INTR);
        }
    }

    /** QEMU's test_bmdma_no_busmaster: nonsense PRDs, bus mastering off, no crash, no writes. */
    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void withBusMasteringOffNothingReachesMemory(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).build()) {
            rig.writeDisk(0, pattern(256 * 512, 3));
            rig.writePrdt(PRDT_ADDR, zeros(4096));
            byte[] before = rig.ram(0, 128 * 1024);
            rig.ide.setBusMasterEnabled(false);
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 512, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_ACTIVE | BM_INTR);
            assertThat(r.ataStatus() & (DRDY | BSY | DRQ | ERR | DF)).isEqualTo(DRDY);
            assertThat(rig.ram(0, 128 * 1024)).isEqualTo(before);
        }
    }

    private static long[][] zeros(int entries) {
        long[][] t = new long[entries][];
        for (int i = 0; i < entries; i++) {
            t[i] = new long[] {0, 0};
        }
        return t;
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void writeWithBusMasteringOffStoresZeros(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).build()) {
            rig.writeDisk(10 * 512, pattern(1024, 1));
            rig.fillRam(BUF_ADDR, 1024, 0x77);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 1024 | PRD_EOT}});
            rig.ide.setBusMasterEnabled(false);
            // The PRD table reads as zeros too: 64 KiB entries without EOT up to the one-page
            // fail-safe, far more than the 1 KiB wanted, so ACTIVE stays set.
            assertThat(rig.sendDma(CMD_WRITE_DMA, 10, 2, PRDT_ADDR, false).bmStatus())
                    .isEqualTo(BM_ACTIVE | BM_INTR);
            assertThat(rig.diskBytes(10 * 512, 1024)).containsOnly((byte) 0);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void outOfRangeLbaAbortsAfterConsumingThePrds(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).sectors(1024).build()) {
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 1024 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 1023, 2, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(r.irqBeforeStatusRead()).isTrue();
            assertThat(r.ataStatus()).isEqualTo(DRDY | ERR);
            assertThat(r.error()).isEqualTo(ABRT);
            // a short table wins over the range check: no interrupt, no error
            DmaResult shortTable = rig.sendDma(CMD_READ_DMA, 1023, 4, PRDT_ADDR, false);
            assertThat(shortTable.bmStatus()).isZero();
            assertThat(shortTable.ataStatus()).isEqualTo(DRDY | DSC);
            // the last sector itself is fine
            assertThat(rig.sendDma(CMD_READ_DMA, 1023, 1, PRDT_ADDR, false).bmStatus())
                    .isEqualTo(BM_ACTIVE | BM_INTR);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void lba48DmaReachesPast2To28(DmaMode mode) {
        long sectors = (1L << 28) + 64;
        try (IdeRig rig = IdeRig.builder().mode(mode).sectors(sectors).build()) {
            long lba = (1L << 28) + 3;
            byte[] data = pattern(2048, 5);
            rig.memory.write(BUF_ADDR, data, 0, data.length);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 2048 | PRD_EOT}});
            assertThat(rig.sendDma(CMD_WRITE_DMA_EXT, lba, 4, PRDT_ADDR, false).bmStatus())
                    .isEqualTo(BM_INTR);
            assertThat(rig.diskBytes(lba * 512, 2048)).isEqualTo(data);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void trimDiscardsRangesAndRejectsOnePastTheEnd(DmaMode mode) {
        long sectors = 16384;
        try (IdeRig rig = IdeRig.builder().mode(mode).sectors(sectors).build()) {
            rig.writeDisk(0, pattern(16 * 512, 1));
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 512 | PRD_EOT}});
            rig.fillRam(BUF_ADDR, 512, 0);
            rig.memory.writeLong(BUF_ADDR, trimRange(0, 2));
            rig.memory.writeLong(BUF_ADDR + 8, trimRange(6, 8));
            DmaResult r = rig.sendDma(CMD_DSM, 0, 1, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(r.ataStatus() & (ERR | DF)).isZero();
            assertThat(rig.diskBytes(0, 2 * 512)).containsOnly((byte) 0);
            assertThat(rig.diskBytes(2 * 512, 4 * 512)).isEqualTo(slice(pattern(16 * 512, 1), 2 * 512, 4 * 512));
            assertThat(rig.diskBytes(6 * 512, 8 * 512)).containsOnly((byte) 0);

            rig.writeDisk(0, pattern(16 * 512, 1));
            rig.memory.writeLong(BUF_ADDR, trimRange(10, 1));
            rig.memory.writeLong(BUF_ADDR + 8, trimRange(sectors - 1, 2));
            DmaResult bad = rig.sendDma(CMD_DSM, 0, 1, PRDT_ADDR, false);
            assertThat(bad.bmStatus()).isEqualTo(BM_INTR);
            assertThat(bad.ataStatus() & ERR).isEqualTo(ERR);
            assertThat(bad.error() & ABRT).isEqualTo(ABRT);
            // ranges before the bad one are discarded all the same
            assertThat(rig.diskBytes(10 * 512, 512)).containsOnly((byte) 0);
        }
    }

    /**
     * A TRIM payload in MMIO goes through the 4096-byte bounce pool, which MAP fills at a point
     * that falls inside an 8-byte range entry of the second PRD (446 + 3650 bytes); COPY reads the
     * whole payload at once. The entry is read whole either way, on the grid of its PRD, so the
     * command's outcome depends on what the guest wrote, not on where the data path cut it.
     */
    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void trimEntryCutByTheBouncePoolIsReadWhole(DmaMode mode) {
        long sectors = 4096;
        long mmio = 0xfe000000L;
        long first = mmio + 0x1000;
        long second = mmio + 0x3000;
        long straddling = second + 3648; // bytes 3648..3655 of the PRD; MAP's first chunk ends at 3650
        GuestMemory memory = GuestMemory.builder()
                .ram("ram", 0, 4L << 20)
                .mmio("dev", mmio, 65536, new RecordingMmio(65536))
                .bouncePoolBytes(4096)
                .build();
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memory).sectors(sectors).build()) {
            rig.writeDisk(0, pattern(256 * 512, 1));
            rig.writePrdt(PRDT_ADDR, new long[][] {{first, 446}, {second, 4162 | PRD_EOT}});
            rig.memory.writeLong(straddling, trimRange(100, 8));
            DmaResult r = rig.sendDma(CMD_DSM, 0, 9, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(r.ataStatus()).isEqualTo(DRDY | DSC);
            assertThat(rig.diskBytes(100 * 512, 8 * 512)).containsOnly((byte) 0);
            assertThat(rig.diskBytes(90 * 512, 10 * 512)).isEqualTo(slice(pattern(256 * 512, 1), 90 * 512, 10 * 512));

            rig.memory.writeLong(straddling, trimRange(sectors - 1, 2));
            DmaResult bad = rig.sendDma(CMD_DSM, 0, 9, PRDT_ADDR, false);
            assertThat(bad.bmStatus()).isEqualTo(BM_INTR);
            assertThat(bad.ataStatus()).isEqualTo(DRDY | ERR);
            assertThat(bad.error() & ABRT).isEqualTo(ABRT);
            assertThat(memory.bouncePool().bytesInFlight()).isZero();
        }
    }

    /**
     * The guest clears START while the TRIM waits for bounce space that something else holds
     * (MAP; COPY needs none and is done already): the command completes before the write returns,
     * as one that is moving data does, and nothing waits for the pool afterwards.
     */
    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void clearingStartWhileTheTransferWaitsForBounceSpaceCompletesIt(DmaMode mode) {
        long mmio = 0xfe000000L;
        long payload = mmio + 0x1000;
        GuestMemory memory = GuestMemory.builder()
                .ram("ram", 0, 4L << 20)
                .mmio("dev", mmio, 65536, new RecordingMmio(65536))
                .bouncePoolBytes(4096)
                .build();
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memory).sectors(4096).build()) {
            rig.writeDisk(0, pattern(32 * 512, 1));
            rig.writePrdt(PRDT_ADDR, new long[][] {{payload, 512 | PRD_EOT}});
            rig.memory.writeLong(payload, trimRange(4, 8));
            rig.memory.writeLong(payload + 8, trimRange(20, 2));
            DmaMapping held = (DmaMapping) memory.map(mmio + 0x8000, 4096, DmaDirection.FROM_DEVICE);
            rig.outb(REG_DEVICE, LBA);
            rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            rig.outb(REG_FEATURE, 0x01);
            rig.command(CMD_DSM, 0, 1);
            rig.bmWrite(BM_CMD, BM_START);
            if (mode == DmaMode.MAP) {
                assertThat(memory.bouncePool().waitingClients()).isEqualTo(1);
                assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_ACTIVE);
                assertThat(rig.altStatus()).isEqualTo(DRDY | DSC | DRQ);
            }
            rig.bmWrite(BM_CMD, 0);
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
            assertThat(rig.irq14.level()).isTrue();
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(rig.diskBytes(4 * 512, 8 * 512)).containsOnly((byte) 0);
            assertThat(rig.diskBytes(20 * 512, 2 * 512)).containsOnly((byte) 0);
            assertThat(rig.diskBytes(12 * 512, 8 * 512)).isEqualTo(slice(pattern(32 * 512, 1), 12 * 512, 8 * 512));
            assertThat(memory.bouncePool().waitingClients()).isZero();
            memory.unmap(held, 0);
            assertThat(memory.bouncePool().bytesInFlight()).isZero();
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
        }
    }

    private static long trimRange(long sector, int count) {
        return ((long) count << 48) | sector;
    }

    private static byte[] slice(byte[] b, int from, int length) {
        return java.util.Arrays.copyOfRange(b, from, from + length);
    }

    /** PRDs into unassigned space go through the bounce path: reads vanish, writes see zeros. */
    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void prdsIntoUnassignedSpaceCompleteLikeQemu(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).build()) {
            long unassigned = 0x40000000L; // far past the 16 MiB of RAM
            rig.writeDisk(0, pattern(64 * 512, 2));
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096}, {unassigned, 16384},
                {BUF_ADDR + 4096, 12288 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 64, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.ram(BUF_ADDR, 4096)).isEqualTo(slice(pattern(64 * 512, 2), 0, 4096));
            assertThat(rig.ram(BUF_ADDR + 4096, 12288))
                    .isEqualTo(slice(pattern(64 * 512, 2), 4096 + 16384, 12288));
            assertThat(rig.memory.bouncePool().bytesInFlight()).isZero();

            assertThat(rig.sendDma(CMD_WRITE_DMA, 100, 64, PRDT_ADDR, false).bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.diskBytes(100 * 512 + 4096, 16384)).containsOnly((byte) 0);
            assertThat(rig.diskBytes(100 * 512, 4096)).isEqualTo(slice(pattern(64 * 512, 2), 0, 4096));
        }
    }

    /** A read into MMIO reaches the device register by register, through the bounce pool. */
    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void prdsIntoMmioAreWrittenThroughTheBouncePool(DmaMode mode) {
        RecordingMmio mmio = new RecordingMmio(32768);
        GuestMemory memory = GuestMemory.builder()
                .ram("ram", 0, 16L << 20)
                .mmio("dev", 0xfe000000L, 32768, mmio)
                .bouncePoolBytes(4096)
                .build();
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memory).build()) {
            byte[] data = pattern(32768, 6);
            rig.writeDisk(0, data);
            rig.writePrdt(PRDT_ADDR, new long[][] {{0xfe000000L, 32768 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 64, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(mmio.contents()).isEqualTo(data);
            assertThat(memory.bouncePool().bytesInFlight()).isZero();
        }
    }

    /** MAP mode: with the bounce pool held elsewhere the transfer waits on a map client. */
    @org.junit.jupiter.api.Test
    void waitsForBounceSpaceHeldElsewhereAndContinuesWhereItStopped() {
        RecordingMmio mmio = new RecordingMmio(8192);
        GuestMemory memory = GuestMemory.builder()
                .ram("ram", 0, 16L << 20)
                .mmio("dev", 0xfe000000L, 8192, mmio)
                .bouncePoolBytes(4096)
                .build();
        try (IdeRig rig = IdeRig.builder().mode(DmaMode.MAP).memory(memory).build()) {
            byte[] data = pattern(8192 + 1024, 12);
            rig.writeDisk(0, data);
            // 1 KiB of RAM first, then 8 KiB of MMIO through a 4 KiB pool
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 1024}, {0xfe000000L, 8192 | PRD_EOT}});
            var held = (io.guestdma.memory.DmaMapping) memory.map(0xfe000000L, 4096,
                    io.guestdma.memory.DmaDirection.TO_DEVICE);
            rig.outb(REG_DEVICE, LBA);
            rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            rig.command(CMD_READ_DMA, 0, 18);
            rig.bmWrite(BM_CMD, BM_START | BM_TO_MEMORY);
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_ACTIVE);
            assertThat(rig.ram(BUF_ADDR, 1024)).isEqualTo(slice(data, 0, 1024));

            memory.unmap(held, 0); // frees the pool: the engine's map client runs now
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
            assertThat(rig.irq14.level()).isTrue();
            assertThat(mmio.contents()).isEqualTo(slice(data, 1024, 8192));
            assertThat(memory.bouncePool().bytesInFlight()).isZero();
        }
    }

    /**
     * Clearing START while the read waits for bounce space finishes the read, as clearing it while
     * data moves does (QEMU: "as if the DMA was completed by the time the guest cancelled"); it
     * used to drop the transfer, so the outcome depended on whether the pool was full just then.
     */
    @org.junit.jupiter.api.Test
    void clearingStartWhileWaitingForBounceSpaceFinishesTheTransfer() {
        RecordingMmio mmio = new RecordingMmio(4096);
        GuestMemory memory = GuestMemory.builder()
                .ram("ram", 0, 16L << 20)
                .mmio("dev", 0xfe000000L, 4096, mmio)
                .bouncePoolBytes(4096)
                .build();
        try (IdeRig rig = IdeRig.builder().mode(DmaMode.MAP).memory(memory).build()) {
            byte[] data = pattern(1024 + 4096, 13);
            rig.writeDisk(0, data);
            // 1 KiB of RAM moves first; the MMIO part then waits for the pool held here
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 1024}, {0xfe000000L, 4096 | PRD_EOT}});
            var held = (io.guestdma.memory.DmaMapping) memory.map(0xfe000000L, 4096,
                    io.guestdma.memory.DmaDirection.TO_DEVICE);
            rig.outb(REG_DEVICE, LBA);
            rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            rig.command(CMD_READ_DMA, 0, 10);
            rig.bmWrite(BM_CMD, BM_START | BM_TO_MEMORY);
            assertThat(memory.bouncePool().waitingClients()).isEqualTo(1);
            assertThat(rig.ram(BUF_ADDR, 1024)).isEqualTo(slice(data, 0, 1024));
            rig.bmWrite(BM_CMD, BM_TO_MEMORY);
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(mmio.contents()).isEqualTo(slice(data, 1024, 4096));
            memory.unmap(held, 0);
            assertThat(memory.bouncePool().waitingClients()).isZero();
            assertThat(memory.bouncePool().bytesInFlight()).isZero();
        }
    }
}
