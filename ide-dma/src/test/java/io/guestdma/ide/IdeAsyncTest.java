package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** With a real I/O thread the guest polls; stopping, pausing and resetting wait for the I/O. */
class IdeAsyncTest {
    private final ExecutorService io = Executors.newFixedThreadPool(2);

    @AfterEach
    void shutDown() throws InterruptedException {
        io.shutdownNow();
        assertThat(io.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void dmaAndPioCompleteOnTheIoThread(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).executor(io).build()) {
            byte[] data = pattern(16 * 512, 3);
            rig.memory.write(BUF_ADDR, data, 0, data.length);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 8192 | PRD_EOT}});
            assertThat(rig.sendDma(CMD_WRITE_DMA, 64, 16, PRDT_ADDR, false).bmStatus()).isEqualTo(BM_INTR);
            assertThat(rig.diskBytes(64 * 512, data.length)).isEqualTo(data);

            rig.command(CMD_READ_PIO, 64, 1);
            assertThat(rig.waitNotBusy() & (DRQ | ERR)).isEqualTo(DRQ);
            int first = rig.inw(REG_DATA);
            assertThat(first).isEqualTo((data[0] & 0xff) | (data[1] & 0xff) << 8);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void clearingStartMidTransferWaitsForTheRequestToFinish(DmaMode mode) throws Exception {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = IdeRig.builder().mode(mode).executor(io)
                .decorate(b -> faulty[0] = new FaultyBackend(b)).build()) {
            CountDownLatch gate = new CountDownLatch(1);
            faulty[0].writeGate = gate;
            rig.fillRam(BUF_ADDR, 4096, 0x5a);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096 | PRD_EOT}});
            rig.outb(REG_DEVICE, LBA);
            rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            rig.command(CMD_WRITE_DMA, 8, 8);
            rig.bmWrite(BM_CMD, BM_START);
            assertThat(faulty[0].writeEntered.await(10, TimeUnit.SECONDS)).isTrue();
            assertThat(rig.altStatus() & DRQ).isEqualTo(DRQ);
            Thread opener = new Thread(gate::countDown);
            opener.start();
            rig.bmWrite(BM_CMD, 0); // returns only once the write is done
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(rig.diskBytes(8 * 512, 4096)).containsOnly((byte) 0x5a);
            opener.join();
        }
    }

    /**
     * On an I/O thread, a read into MMIO waits for bounce space something else holds (MAP; COPY
     * needs none and finishes): clearing START returns only once the read is done, with the data
     * where the PRD points, as when the transfer is moving data.
     */
    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void clearingStartWhileTheTransferWaitsForBounceSpaceFinishesIt(DmaMode mode) {
        long mmio = 0xfe000000L;
        RecordingMmio device = new RecordingMmio(65536);
        GuestMemory memory = GuestMemory.builder()
                .ram("ram", 0, 4L << 20)
                .mmio("dev", mmio, 65536, device)
                .bouncePoolBytes(4096)
                .build();
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memory).executor(io).build()) {
            byte[] data = pattern(8 * 512, 4);
            rig.writeDisk(16 * 512, data);
            rig.writePrdt(PRDT_ADDR, new long[][] {{mmio + 0x1000, 4096 | PRD_EOT}});
            DmaMapping held = (DmaMapping) memory.map(mmio + 0x8000, 4096, DmaDirection.FROM_DEVICE);
            rig.outb(REG_DEVICE, LBA);
            rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            rig.command(CMD_READ_DMA, 16, 8);
            rig.bmWrite(BM_CMD, BM_START | BM_TO_MEMORY);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (mode == DmaMode.MAP ? memory.bouncePool().waitingClients() == 0
                    : (rig.bmRead(BM_STATUS) & BM_INTR) == 0) {
                assertThat(System.nanoTime()).as("transfer reached its waiting point").isLessThan(deadline);
                Thread.onSpinWait();
            }
            rig.bmWrite(BM_CMD, 0); // returns only once the read is done
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
            assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
            assertThat(java.util.Arrays.copyOfRange(device.contents(), 0x1000, 0x2000)).isEqualTo(data);
            assertThat(memory.bouncePool().waitingClients()).isZero();
            memory.unmap(held, 0);
            assertThat(memory.bouncePool().bytesInFlight()).isZero();
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void pauseParksTransfersAndResumeFinishesThem(DmaMode mode) throws Exception {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = IdeRig.builder().mode(mode).executor(io)
                .decorate(b -> faulty[0] = new FaultyBackend(b)).build()) {
            CountDownLatch gate = new CountDownLatch(1);
            faulty[0].writeGate = gate;
            rig.fillRam(BUF_ADDR, 256 * 1024, 0x21);
            // 512 KiB of PRDs for a 128 KiB command: the leftover keeps ACTIVE set
            long[][] prdt = new long[8][];
            for (int i = 0; i < 8; i++) {
                prdt[i] = new long[] {BUF_ADDR + 65536L * (i % 4), i == 7 ? PRD_EOT : 0};
            }
            rig.writePrdt(PRDT_ADDR, prdt);
            rig.outb(REG_DEVICE, LBA);
            rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
            rig.command(CMD_WRITE_DMA, 0, 0); // 256 sectors
            rig.bmWrite(BM_CMD, BM_START);
            assertThat(faulty[0].writeEntered.await(10, TimeUnit.SECONDS)).isTrue();
            Thread opener = new Thread(gate::countDown);
            opener.start();
            rig.ide.pause();
            opener.join();
            assertThat(rig.ide.isPaused()).isTrue();
            rig.ide.resume();
            int status;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (((status = rig.bmRead(BM_STATUS)) & BM_INTR) == 0) {
                assertThat(System.nanoTime()).isLessThan(deadline);
                Thread.onSpinWait();
            }
            assertThat(status).isEqualTo(BM_ACTIVE | BM_INTR);
            assertThat(rig.diskBytes(0, 256 * 512)).containsOnly((byte) 0x21);
        }
    }
}
