package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.NativeBackend;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.MmioHandler;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Faults below the controller as a guest sees them: a device handler that throws under the bus
 * master, a handler that re-enters the controller, a backend that throws an Error, a PRD table in a
 * failing device. Each ends in a guest-visible status; nothing escapes a register access, the pool
 * and the mappings return to zero, and the controller keeps working (the rig checks at close that no
 * mapping is left).
 */
class IdeFaultContainmentTest {
    private static final long BAD = 0xfe000000L;
    private static final long EVIL = 0xfe100000L;

    /** A device whose registers throw on every access. */
    private static final MmioHandler BROKEN = new MmioHandler() {
        @Override
        public long read(long offset, int size) {
            throw new IllegalStateException("broken device read");
        }

        @Override
        public void write(long offset, int size, long value) {
            throw new IllegalStateException("broken device write");
        }
    };

    private static GuestMemory memoryWith(long base, MmioHandler device) {
        return GuestMemory.builder().ram("ram", 0, 16L << 20).mmio("dev", base, 0x10000, device).build();
    }

    private static void assertNothingHeld(IdeRig rig) {
        assertThat(rig.memory.bouncePool().bytesInFlight()).as("bounce bytes").isZero();
        assertThat(rig.memory.liveMappings()).as("live mappings").isZero();
    }

    /** A plain write and read-back works: the controller was not wedged. */
    private static void stillWorks(IdeRig rig) {
        rig.bmWrite(BM_STATUS, BM_ERROR | BM_INTR); // as a driver's error handler clears it
        rig.writePrdt(PRDT_ADDR + 0x800, new long[][] {{BUF_ADDR, 1024 | PRD_EOT}});
        rig.fillRam(BUF_ADDR, 1024, 0x6b);
        assertThat(rig.sendDma(CMD_WRITE_DMA, 300, 2, PRDT_ADDR + 0x800, false).bmStatus()).isEqualTo(BM_INTR);
        rig.fillRam(BUF_ADDR, 1024, 0);
        assertThat(rig.sendDma(CMD_READ_DMA, 300, 2, PRDT_ADDR + 0x800, false).bmStatus()).isEqualTo(BM_INTR);
        assertThat(rig.ram(BUF_ADDR, 1024)).containsOnly((byte) 0x6b);
        assertNothingHeld(rig);
    }

    // ------------------------------------------------------------------ 1: handler faults

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void aWriteFromAFailingDeviceEndsWithABusMasterErrorAndWedgesNothing(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memoryWith(BAD, BROKEN)).build()) {
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 512}, {BAD, 512 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_WRITE_DMA, 0, 2, PRDT_ADDR, false);
            assertThat(r.bmStatus()).as("ERROR and INTR, not ACTIVE").isEqualTo(BM_ERROR | BM_INTR);
            assertThat(r.irqBeforeStatusRead()).isTrue();
            assertThat(r.ataStatus()).isEqualTo(DRDY | ERR);
            assertThat(r.error()).isEqualTo(ABRT);
            assertNothingHeld(rig);
            assertThat(rig.memory.deviceFaults()).isPositive();
            stillWorks(rig);
            rig.ide.reset();
            stillWorks(rig);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void aReadIntoAFailingDeviceEndsWithABusMasterError(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memoryWith(BAD, BROKEN)).build()) {
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 512}, {BAD, 512 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 2, PRDT_ADDR, false);
            assertThat(r.bmStatus()).isEqualTo(BM_ERROR | BM_INTR);
            assertThat(r.ataStatus()).isEqualTo(DRDY | ERR);
            assertThat(r.error()).isEqualTo(ABRT);
            assertNothingHeld(rig);
            stillWorks(rig);
        }
    }

    // ------------------------------------------------------------------ 8: PRD table in a failing device

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void aPrdTableInAFailingDeviceIsABusMasterErrorNotAnException(DmaMode mode) {
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memoryWith(BAD, BROKEN)).build()) {
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 1, BAD, false); // the START write fetches the table
            assertThat(r.bmStatus()).isEqualTo(BM_ERROR | BM_INTR);
            assertThat(r.ataStatus()).isEqualTo(DRDY | ERR);
            assertThat(r.error()).isEqualTo(ABRT);
            assertThat(rig.bmRead(BM_STATUS) & BM_ACTIVE).isZero();
            // ERROR is write-1-to-clear like INTR.
            rig.bmWrite(BM_STATUS, BM_ERROR | BM_INTR);
            assertThat(rig.bmRead(BM_STATUS)).isZero();
            assertNothingHeld(rig);
            stillWorks(rig);
        }
    }

    // ------------------------------------------------------------------ 2: re-entrancy

    /**
     * A device that, when the controller's DMA writes into it, does what a malicious guest would
     * arrange: stops the bus master, issues a new WRITE DMA and starts it again, all in the middle
     * of the running transfer.
     */
    private static final class ReenteringDevice implements MmioHandler {
        final RecordingMmio store = new RecordingMmio(0x10000);
        IdeRig rig;
        int triggers;

        @Override
        public long read(long offset, int size) {
            return store.read(offset, size);
        }

        @Override
        public void write(long offset, int size, long value) {
            store.write(offset, size, value);
            if (rig != null && offset == 0) {
                triggers++;
                rig.bmWrite(BM_CMD, 0);
                rig.ide.busMasterWrite(BM_PRDT, 4, (int) (PRDT_ADDR + 0x400));
                rig.command(CMD_WRITE_DMA, 500, 8);
                rig.bmWrite(BM_CMD, BM_START);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void aHandlerReachedByTheControllersDmaCannotStartAnotherTransferInsideIt(DmaMode mode) {
        ReenteringDevice evil = new ReenteringDevice();
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memoryWith(EVIL, evil)).build()) {
            evil.rig = rig;
            byte[] data = pattern(8192, 21);
            rig.writeDisk(0, data);
            rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096}, {EVIL, 4096 | PRD_EOT}});
            rig.writePrdt(PRDT_ADDR + 0x400, new long[][] {{BUF_ADDR + 0x10000, 4096 | PRD_EOT}});
            DmaResult r = rig.sendDma(CMD_READ_DMA, 0, 16, PRDT_ADDR, false);
            assertThat(evil.triggers).as("the device did try").isPositive();
            assertThat(rig.ide.reentrancyGuard().refusals()).as("and was refused").isPositive();
            // The outer transfer completed untouched.
            assertThat(r.bmStatus()).isEqualTo(BM_INTR);
            assertThat(r.ataStatus()).isEqualTo(DRDY | DSC);
            assertThat(rig.ram(BUF_ADDR, 4096)).isEqualTo(java.util.Arrays.copyOfRange(data, 0, 4096));
            byte[] inDevice = java.util.Arrays.copyOfRange(evil.store.contents(), 0, 4096);
            assertThat(inDevice).isEqualTo(java.util.Arrays.copyOfRange(data, 4096, 8192));
            assertThat(rig.diskBytes(500 * 512, 4096)).as("the nested WRITE DMA never ran").containsOnly((byte) 0);
            assertNothingHeld(rig);
            evil.rig = null;
            stillWorks(rig);
        }
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void aMachineResetFromInsideTheControllersDmaWaitsUntilTheTransferIsOver(DmaMode mode) {
        int[] resets = new int[1];
        IdeRig[] holder = new IdeRig[1];
        MmioHandler resetting = new MmioHandler() {
            @Override
            public long read(long offset, int size) {
                return 0;
            }

            @Override
            public void write(long offset, int size, long value) {
                if (offset == 0 && holder[0] != null) {
                    resets[0]++;
                    holder[0].ide.reset(); // e.g. a reset-control register the DMA landed on
                }
            }
        };
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memoryWith(EVIL, resetting)).build()) {
            holder[0] = rig;
            byte[] sectorZero = rig.diskBytes(0, 512);
            rig.writeDisk(8 * 512, pattern(4096, 3));
            rig.writePrdt(PRDT_ADDR, new long[][] {{EVIL, 4096 | PRD_EOT}});
            // The table the reset would leave the bus master pointing at (address 0) names sector 0 data.
            rig.writePrdt(0, new long[][] {{BUF_ADDR, 512 | PRD_EOT}});
            rig.sendDma(CMD_READ_DMA, 8, 8, PRDT_ADDR, false);
            assertThat(resets[0]).isPositive();
            // The reset happened once the transfer was over: power-on registers, no command left.
            assertThat(rig.bmRead(BM_STATUS)).isZero();
            assertThat(rig.bmRead(BM_CMD)).isZero();
            assertThat(rig.altStatus() & (BSY | DRQ | ERR)).isZero();
            assertThat(rig.diskBytes(0, 512)).as("no stale command ran on the fresh state").isEqualTo(sectorZero);
            assertNothingHeld(rig);
            holder[0] = null;
            stillWorks(rig);
        }
    }

    // ------------------------------------------------------------------ 3: backends that throw Errors

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void aBackendThrowingAnAssertionErrorIsAnIoErrorForTheGuest(DmaMode mode) {
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = IdeRig.builder().mode(mode).decorate(b -> faulty[0] = new FaultyBackend(b)).build()) {
            for (Supplier<Throwable> error : java.util.List.<Supplier<Throwable>>of(
                    () -> new AssertionError("backend bug"), StackOverflowError::new)) {
                faulty[0].throwing = error;
                rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096 | PRD_EOT}});
                DmaResult r = rig.sendDma(CMD_WRITE_DMA, 0, 8, PRDT_ADDR, false);
                assertThat(r.bmStatus()).as("report policy: ABRT with INTR, inactive").isEqualTo(BM_INTR);
                assertThat(r.ataStatus()).isEqualTo(DRDY | ERR);
                assertThat(r.error()).isEqualTo(ABRT);
                assertNothingHeld(rig);
                faulty[0].throwing = null;
                stillWorks(rig);
            }
        }
    }

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void resetAndCloseFinishAfterAnAsyncBackendThrewAnError() throws Exception {
        ExecutorService io = Executors.newSingleThreadExecutor();
        FaultyBackend[] faulty = new FaultyBackend[1];
        try (IdeRig rig = IdeRig.builder().mode(DmaMode.MAP).executor(io)
                .decorate(b -> faulty[0] = new FaultyBackend(b)).build()) {
            for (Supplier<Throwable> error : java.util.List.<Supplier<Throwable>>of(
                    () -> new AssertionError("backend bug"), () -> new OutOfMemoryError("simulated"))) {
                faulty[0].throwing = error;
                rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096 | PRD_EOT}});
                DmaResult r = rig.sendDma(CMD_WRITE_DMA, 0, 8, PRDT_ADDR, false);
                assertThat(r.ataStatus() & ERR).isEqualTo(ERR);
                long start = System.nanoTime();
                rig.ide.reset();
                assertThat(System.nanoTime() - start).as("reset is bounded").isLessThan(TimeUnit.SECONDS.toNanos(5));
                assertNothingHeld(rig);
                faulty[0].throwing = null;
            }
        } finally {
            io.shutdownNow();
            assertThat(io.awaitTermination(5, TimeUnit.SECONDS)).isTrue();
        }
    }

    // ------------------------------------------------------------------ 4: native reads into read-only memory

    @Test
    void theNativeBackendNeverReadsIntoReadOnlyGuestMemory(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("disk.img");
        byte[] content = pattern(8192, 5);
        Files.write(image, content);
        try (GuestMemory memory = GuestMemory.builder().ram("ram", 0, 0x10000).rom("rom", 0x100000, 0x1000).build();
             NativeBackend disk = NativeBackend.open(image, BlockOptions.defaults())) {
            memory.backing().segment().asSlice(0x10000, 0x1000).fill((byte) 0x77); // the ROM's bytes
            memory.writeLong(0x2000, 0x0102030405060708L);
            DmaMapping rom = (DmaMapping) memory.map(0x100000, 0x1000, DmaDirection.TO_DEVICE);
            DmaMapping ram = (DmaMapping) memory.map(0x2000, 0x1000, DmaDirection.TO_DEVICE);
            for (DmaMapping target : new DmaMapping[] {rom, ram}) {
                IoVector iov = new IoVector().add(target.segment());
                assertThatThrownBy(() -> disk.readv(0, iov)).isInstanceOf(IllegalArgumentException.class)
                        .hasMessageContaining("read-only");
            }
            assertThatThrownBy(() -> disk.read(0, java.nio.ByteBuffer.allocateDirect(512).asReadOnlyBuffer()))
                    .isInstanceOf(IllegalArgumentException.class);
            assertThat(memory.readByte(0x100000)).as("ROM unchanged").isEqualTo((byte) 0x77);
            assertThat(memory.readLong(0x2000)).as("RAM unchanged").isEqualTo(0x0102030405060708L);
            memory.unmap(rom, 0);
            memory.unmap(ram, 0);
        }
    }
}
