package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.ErrorPolicy;
import io.guestdma.block.FaultInjectingBackend;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.virtio.GuestDriver.Buf;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

class VirtioBlkTest {
    static final long FEATURES = VirtioPci.F_VERSION_1 | VirtioPci.F_INDIRECT_DESC | VirtioBlk.F_FLUSH;
    static final long HDR = 0x200000;
    static final long STATUS = 0x201000;
    static final long DATA = 0x300000;
    static final long IMAGE_BYTES = 4 << 20;

    @TempDir
    Path dir;
    GuestMemory memory;
    BlockBackend backend;
    VirtioBlk blk;
    VirtioPci pci;
    GuestDriver driver;
    final AtomicBoolean intx = new AtomicBoolean();

    GuestDriver start(VirtioBlkConfig config, BlockBackend image, long features, int vectors) {
        memory = GuestMemory.ofRam(16 << 20);
        backend = image;
        DeviceAddressSpace dev = memory.deviceSpace("virtio-blk");
        blk = new VirtioBlk(dev, image, config);
        pci = new VirtioPci(blk, dev, intx::set, vectors);
        driver = new GuestDriver(pci, memory).start(features, config.queues(), 16);
        return driver;
    }

    BlockBackend image() throws IOException {
        Path file = dir.resolve("disk.img");
        byte[] bytes = new byte[(int) IMAGE_BYTES];
        new Random(1).nextBytes(bytes);
        Files.write(file, bytes);
        return FileChannelBackend.open(file, BlockOptions.defaults());
    }

    @AfterEach
    void close() throws IOException {
        if (blk != null) {
            blk.close();
        }
        if (backend != null) {
            backend.close();
        }
        if (memory != null) {
            assertThat(memory.liveMappings()).isZero();
            memory.close();
        }
    }

    void header(long at, int type, long sector) {
        memory.writeInt(at, type);
        memory.writeInt(at + 4, 0);
        memory.writeLong(at + 8, sector);
    }

    int request(int q, int type, long sector, List<Buf> data) {
        header(HDR, type, sector);
        memory.writeByte(STATUS, (byte) 0x55);
        java.util.ArrayList<Buf> chain = new java.util.ArrayList<>();
        chain.add(new Buf(HDR, 16, false));
        chain.addAll(data);
        chain.add(new Buf(STATUS, 1, true));
        int before = driver.usedIdx(q);
        int head = driver.submit(q, chain);
        driver.notify(q);
        driver.awaitUsed(q, (before + 1) & 0xffff);
        awaitIdle(); // the interrupt follows the used index
        assertThat(driver.usedId(q, before)).isEqualTo(head);
        return memory.readByte(STATUS);
    }

    void awaitIdle() {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!blk.isIdle()) {
            assertThat(System.nanoTime()).as("the device stays busy").isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    byte[] imageBytes(long offset, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        backend.read(offset, b);
        return b.array();
    }

    byte[] guestBytes(long at, int n) {
        byte[] b = new byte[n];
        memory.read(at, b, 0, n);
        return b;
    }

    @Test
    void readsAndWritesThroughScatteredBuffers() throws IOException {
        start(VirtioBlkConfig.defaults(), image(), FEATURES, 2);
        int status = request(0, VirtioBlk.T_IN, 8, List.of(new Buf(DATA, 1000, true), new Buf(DATA + 0x10000, 1048, true)));
        assertThat(status).isEqualTo(VirtioBlk.S_OK);
        byte[] expected = imageBytes(8 * 512, 2048);
        byte[] got = new byte[2048];
        System.arraycopy(guestBytes(DATA, 1000), 0, got, 0, 1000);
        System.arraycopy(guestBytes(DATA + 0x10000, 1048), 0, got, 1000, 1048);
        assertThat(got).isEqualTo(expected);
        assertThat(driver.usedLen(0, 0)).isEqualTo(2049);
        assertThat(intx).isTrue();
        assertThat(driver.bar.read(VirtioPci.ISR, 1)).isEqualTo(1);
        assertThat(intx).isFalse();

        byte[] pattern = new byte[4096];
        new Random(7).nextBytes(pattern);
        memory.write(DATA + 0x20000, pattern, 0, 4096);
        status = request(0, VirtioBlk.T_OUT, 100, List.of(new Buf(DATA + 0x20000, 4096, false)));
        assertThat(status).isEqualTo(VirtioBlk.S_OK);
        assertThat(imageBytes(100 * 512, 4096)).isEqualTo(pattern);
        assertThat(driver.usedLen(0, 1)).isEqualTo(1);
    }

    /**
     * A read whose buffers are the function's own registers (the common configuration, with the
     * device status, and the notify area) must not reach them from the thread doing the device's
     * work, inline or on an I/O thread: the transport refuses it, as QEMU's re-entrancy guard does.
     * Reaching them would write disk bytes into device_status (a reset mid-request) and notify the
     * queue from inside its own processing.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void dmaIntoTheFunctionsOwnRegistersDoesNotReachThem(boolean ioThreads) throws IOException {
        start(VirtioBlkConfig.defaults().withIoThreads(ioThreads), image(), FEATURES, 0);
        long ownBar = 0x1000_0000L; // above the 16 MiB of RAM
        memory.addRegion(new io.guestdma.memory.MmioRegion("own-bar", ownBar, VirtioPci.MODERN_BAR_SIZE,
                pci.modernBar()));
        int statusBefore = (int) driver.bar.read(VirtioPci.COMMON + 0x14, 1);
        assertThat(statusBefore & VirtioPci.STATUS_DRIVER_OK).isNotZero();

        int status = request(0, VirtioBlk.T_IN, 0, List.of(new Buf(ownBar + VirtioPci.COMMON, 512, true),
                new Buf(ownBar + VirtioPci.NOTIFY, 512, true)));

        assertThat(status).isEqualTo(VirtioBlk.S_OK);
        assertThat((int) driver.bar.read(VirtioPci.COMMON + 0x14, 1)).as("device_status").isEqualTo(statusBefore);
        assertThat(driver.usedIdx(0)).as("one request, completed once").isEqualTo(1);
        assertThat(blk.runsOnDeviceThread()).as("the test's thread outside the device's work").isFalse();
        assertThat(request(0, VirtioBlk.T_IN, 8, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_OK);
        assertThat(guestBytes(DATA, 512)).isEqualTo(imageBytes(8 * 512, 512));
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void aPausedDeviceStartsNoRequestUntilUnpaused(boolean ioThreads) throws Exception {
        start(VirtioBlkConfig.defaults().withIoThreads(ioThreads), image(), FEATURES, 0);
        blk.pause();
        header(HDR, VirtioBlk.T_IN, 5);
        memory.writeByte(STATUS, (byte) 0x55);
        driver.submit(0, List.of(new Buf(HDR, 16, false), new Buf(DATA, 512, true), new Buf(STATUS, 1, true)));
        driver.notify(0);
        Thread.sleep(100);
        assertThat(driver.usedIdx(0)).as("nothing completes while paused").isZero();
        assertThat(memory.readByte(STATUS)).isEqualTo((byte) 0x55);
        assertThat(blk.isIdle()).isTrue();
        blk.unpause();
        driver.awaitUsed(0, 1);
        assertThat(memory.readByte(STATUS)).isZero();
        assertThat(guestBytes(DATA, 512)).isEqualTo(imageBytes(5 * 512, 512));
    }

    @Test
    void indirectDescriptors() throws IOException {
        start(VirtioBlkConfig.defaults(), image(), FEATURES, 0);
        header(HDR, VirtioBlk.T_IN, 3);
        int head = driver.submitIndirect(0, 0x400000, List.of(new Buf(HDR, 16, false), new Buf(DATA, 512, true),
                new Buf(STATUS, 1, true)));
        driver.notify(0);
        driver.awaitUsed(0, 1);
        awaitIdle();
        assertThat(driver.usedId(0, 0)).isEqualTo(head);
        assertThat(memory.readByte(STATUS)).isEqualTo((byte) 0);
        assertThat(guestBytes(DATA, 512)).isEqualTo(imageBytes(3 * 512, 512));
    }

    @Test
    void requestChecks() throws IOException {
        start(VirtioBlkConfig.defaults().withSerial("SERIAL-1"), image(), FEATURES, 0);
        long sectors = IMAGE_BYTES / 512;
        assertThat(request(0, VirtioBlk.T_IN, sectors, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(request(0, VirtioBlk.T_IN, sectors - 1, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_OK);
        assertThat(request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 100, true)))).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(request(0, VirtioBlk.T_IN, -1, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(request(0, 77, 0, List.of())).isEqualTo(VirtioBlk.S_UNSUPP);
        assertThat(request(0, VirtioBlk.T_FLUSH, 0, List.of())).isEqualTo(VirtioBlk.S_OK);
        memory.fill(DATA, 64, (byte) 0x77);
        assertThat(request(0, VirtioBlk.T_GET_ID, 0, List.of(new Buf(DATA, 64, true)))).isEqualTo(VirtioBlk.S_OK);
        assertThat(new String(guestBytes(DATA, 9), java.nio.charset.StandardCharsets.US_ASCII)).isEqualTo("SERIAL-1\0");
        assertThat(memory.readByte(DATA + 9)).isEqualTo((byte) 0x77);
        assertThat(pci.status() & VirtioPci.STATUS_NEEDS_RESET).isZero();
    }

    @Test
    void writeZeroesAndDiscard() throws IOException {
        start(VirtioBlkConfig.defaults(), image(), FEATURES | VirtioBlk.F_WRITE_ZEROES | VirtioBlk.F_DISCARD, 0);
        long seg = DATA + 0x1000;
        memory.writeLong(seg, 10);
        memory.writeInt(seg + 8, 4);
        memory.writeInt(seg + 12, 0);
        assertThat(request(0, VirtioBlk.T_WRITE_ZEROES, 0, List.of(new Buf(seg, 16, false)))).isEqualTo(VirtioBlk.S_OK);
        assertThat(imageBytes(10 * 512, 2048)).containsOnly(0);
        assertThat(imageBytes(14 * 512, 512)).isNotEqualTo(new byte[512]);
        memory.writeInt(seg + 12, 2); // an unknown flag
        assertThat(request(0, VirtioBlk.T_WRITE_ZEROES, 0, List.of(new Buf(seg, 16, false)))).isEqualTo(VirtioBlk.S_UNSUPP);
        memory.writeInt(seg + 12, 0);
        memory.writeLong(seg, IMAGE_BYTES / 512 - 1);
        assertThat(request(0, VirtioBlk.T_DISCARD, 0, List.of(new Buf(seg, 16, false)))).isEqualTo(VirtioBlk.S_IOERR);
        memory.writeLong(seg, 20);
        byte[] kept = imageBytes(20 * 512, 2048);
        assertThat(request(0, VirtioBlk.T_DISCARD, 0, List.of(new Buf(seg, 16, false)))).isEqualTo(VirtioBlk.S_OK);
        assertThat(imageBytes(20 * 512, 2048)).isEqualTo(kept); // discard=ignore keeps the data
        assertThat(request(0, VirtioBlk.T_DISCARD & ~1, 0, List.of(new Buf(seg, 16, false)))).isEqualTo(VirtioBlk.S_UNSUPP);
    }

    @Test
    void readOnlyDiskRefusesWrites() throws IOException {
        start(VirtioBlkConfig.defaults().withAccess(true, false, 0), image(), FEATURES, 0);
        assertThat(blk.features() & VirtioBlk.F_RO).isNotZero();
        byte[] before = imageBytes(0, 512);
        memory.fill(DATA, 512, (byte) 1);
        assertThat(request(0, VirtioBlk.T_OUT, 0, List.of(new Buf(DATA, 512, false)))).isEqualTo(VirtioBlk.S_IOERR);
        assertThat(imageBytes(0, 512)).isEqualTo(before);
    }

    @Test
    void errorPolicies() throws IOException {
        FaultInjectingBackend faulty = new FaultInjectingBackend(image());
        start(VirtioBlkConfig.defaults().withPolicies(ErrorPolicy.IGNORE, ErrorPolicy.STOP), faulty, FEATURES, 0);
        faulty.failAt(FaultInjectingBackend.Operation.READ, faulty.requests(FaultInjectingBackend.Operation.READ) + 1,
                FaultInjectingBackend.Fault.EIO);
        assertThat(request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_OK);

        AtomicBoolean stoppedSeen = new AtomicBoolean();
        blk.onStop(() -> stoppedSeen.set(true));
        faulty.failAt(FaultInjectingBackend.Operation.WRITE, 1, FaultInjectingBackend.Fault.EIO);
        byte[] pattern = new byte[512];
        new Random(3).nextBytes(pattern);
        memory.write(DATA, pattern, 0, 512);
        header(HDR, VirtioBlk.T_OUT, 5);
        memory.writeByte(STATUS, (byte) 0x55);
        driver.submit(0, List.of(new Buf(HDR, 16, false), new Buf(DATA, 512, false), new Buf(STATUS, 1, true)));
        driver.notify(0);
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (!(blk.isStopped() && stoppedSeen.get()) && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertThat(blk.isStopped()).isTrue();
        assertThat(stoppedSeen).isTrue();
        assertThat(driver.usedIdx(0)).isEqualTo(1);
        blk.resume();
        driver.awaitUsed(0, 2);
        assertThat(memory.readByte(STATUS)).isEqualTo((byte) 0);
        assertThat(imageBytes(5 * 512, 512)).isEqualTo(pattern);
    }

    @Test
    void reportPolicyGivesIoError() throws IOException {
        FaultInjectingBackend faulty = new FaultInjectingBackend(image());
        start(VirtioBlkConfig.defaults(), faulty, FEATURES, 0);
        faulty.failAt(FaultInjectingBackend.Operation.FLUSH, 1, FaultInjectingBackend.Fault.EIO);
        assertThat(request(0, VirtioBlk.T_FLUSH, 0, List.of())).isEqualTo(VirtioBlk.S_IOERR);
        // (the geometry guess read sector 0 already)
        faulty.failAt(FaultInjectingBackend.Operation.READ, faulty.requests(FaultInjectingBackend.Operation.READ) + 1,
                FaultInjectingBackend.Fault.SHORT_TRANSFER);
        assertThat(request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 4096, true)))).isEqualTo(VirtioBlk.S_IOERR);
    }

    @Test
    void twoQueuesOnTwoThreads() throws Exception {
        start(VirtioBlkConfig.defaults().withQueues(2), image(), FEATURES | VirtioBlk.F_MQ, 3);
        assertThat(driver.common(0x12, 2)).isEqualTo(2);
        assertThat(blk.configRead(34, 2)).isEqualTo(2);
        for (int round = 0; round < 20; round++) {
            for (int q = 0; q < 2; q++) {
                long hdr = HDR + 0x100 * q;
                header(hdr, VirtioBlk.T_IN, round + q);
                driver.submit(q, List.of(new Buf(hdr, 16, false), new Buf(DATA + 0x10000L * q, 512, true),
                        new Buf(STATUS + q, 1, true)));
            }
            driver.notify(0);
            driver.notify(1);
            driver.awaitUsed(0, round + 1);
            driver.awaitUsed(1, round + 1);
            assertThat(guestBytes(DATA + 0x10000, 512)).isEqualTo(imageBytes((round + 1) * 512L, 512));
        }
    }

    @Test
    void msixMessageGoesToGuestMemory() throws IOException {
        start(VirtioBlkConfig.defaults(), image(), FEATURES, 2);
        var table = pci.msixBar();
        table.write(16, 4, 0x500000); // vector 1: address, data
        table.write(20, 4, 0);
        table.write(24, 4, 0xabcd);
        table.write(28, 4, 0); // unmasked
        driver.common(0x16, 2, 0);
        driver.common(0x1a, 2, 1);
        assertThat(driver.common(0x1a, 2)).isEqualTo(1);
        pci.configWrite(0x9b, 1, 0x80); // MSI-X enable
        request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (memory.readInt(0x500000) != 0xabcd && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertThat(memory.readInt(0x500000)).isEqualTo(0xabcd);
        assertThat(intx).isFalse();
        // masked: the message waits in the pending bits until unmasked
        memory.writeInt(0x500000, 0);
        table.write(28, 4, 1);
        request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        deadline = System.nanoTime() + 5_000_000_000L;
        while ((table.read(0x800, 4) & 2) == 0 && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertThat(table.read(0x800, 4)).isEqualTo(2);
        assertThat(memory.readInt(0x500000)).isZero();
        table.write(28, 4, 0);
        assertThat(memory.readInt(0x500000)).isEqualTo(0xabcd);
        assertThat(table.read(0x800, 4)).isZero();
    }

    @Test
    void aQueueInterruptWhileIntxIsHighChangesNothingAndOneAfterTheIsrReadRaisesItAgain() throws IOException {
        start(VirtioBlkConfig.defaults().withQueues(2), image(), FEATURES | VirtioBlk.F_MQ, 0);
        request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        assertThat(intx).isTrue();
        intx.set(false); // a second assertion of the line would show up here
        request(1, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        assertThat(intx).as("already asserted: the line is not set again").isFalse();
        intx.set(true);
        assertThat(driver.bar.read(VirtioPci.ISR, 1)).isEqualTo(1);
        assertThat(intx).isFalse();
        for (int q : new int[] {1, 0}) {
            request(q, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
            assertThat(intx).as("queue %d after the ISR read", q).isTrue();
            assertThat(driver.bar.read(VirtioPci.ISR, 1)).isEqualTo(1);
            assertThat(intx).isFalse();
        }
        driver.common(0x14, 1, 0); // reset lowers the line; the first interrupt after it raises it
        driver.start(FEATURES | VirtioBlk.F_MQ, 2, 16);
        request(1, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        assertThat(intx).isTrue();
    }

    @Test
    void resetStopsTheDeviceAndRestoresDefaults() throws IOException {
        start(VirtioBlkConfig.defaults(), image(), FEATURES, 2);
        request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        driver.common(0x14, 1, 0);
        assertThat(driver.status()).isZero();
        assertThat(driver.common(0x18, 2)).isEqualTo(256);
        assertThat(driver.common(0x1c, 2)).isZero();
        assertThat(driver.common(0x0c, 4)).isZero();
        assertThat(intx).isFalse();
        driver.start(FEATURES, 1, 16);
        assertThat(request(0, VirtioBlk.T_IN, 1, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_OK);
    }

    @Test
    void eventIdxSuppressesInterruptsUntilUsedEvent() throws IOException {
        start(VirtioBlkConfig.defaults(), image(), FEATURES | VirtioPci.F_EVENT_IDX, 0);
        // used_event = 1: no interrupt for the first completion (used index 0 -> 1), one for the second.
        memory.writeShort(driver.avail(0) + 4 + 2 * 16, (short) 1);
        request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        assertThat(intx).isTrue(); // the first interrupt after enabling is always sent
        driver.bar.read(VirtioPci.ISR, 1);
        request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        assertThat(intx).isTrue();
        driver.bar.read(VirtioPci.ISR, 1);
        request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)));
        assertThat(intx).isFalse();
        // avail_event follows the avail index
        assertThat(memory.readShort(driver.used(0) + 4 + 8 * 16)).isEqualTo((short) 3);
    }

    @Test
    void queueResetRestartsOneQueue() throws IOException {
        start(VirtioBlkConfig.defaults().withQueues(2), image(), FEATURES | VirtioPci.F_RING_RESET | VirtioBlk.F_MQ, 0);
        assertThat(request(1, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_OK);
        driver.common(0x16, 2, 1);
        driver.common(0x3a, 2, 1);
        assertThat(driver.common(0x3a, 2)).isZero();
        assertThat(driver.common(0x1c, 2)).isZero();
        assertThat(driver.common(0x18, 2)).isEqualTo(256);
        assertThat(driver.status()).isEqualTo(0xf);
        // queue 0 kept running; queue 1 works again once set up anew
        assertThat(request(0, VirtioBlk.T_IN, 0, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_OK);
        driver.setupQueue(1, 16);
        assertThat(request(1, VirtioBlk.T_IN, 1, List.of(new Buf(DATA, 512, true)))).isEqualTo(VirtioBlk.S_OK);
    }

    @Test
    void notifyOnTheCallingThreadWithoutIoThreads() throws IOException {
        start(VirtioBlkConfig.defaults().withIoThreads(false), image(), FEATURES, 0);
        header(HDR, VirtioBlk.T_IN, 9);
        driver.submit(0, List.of(new Buf(HDR, 16, false), new Buf(DATA, 512, true), new Buf(STATUS, 1, true)));
        driver.notify(0);
        // done before the notify returned
        assertThat(driver.usedIdx(0)).isEqualTo(1);
        assertThat(intx).isTrue();
        assertThat(guestBytes(DATA, 512)).isEqualTo(imageBytes(9 * 512, 512));
    }

    @Test
    void overNbd() throws IOException {
        Path file = dir.resolve("nbd.img");
        byte[] bytes = new byte[1 << 20];
        new Random(11).nextBytes(bytes);
        Files.write(file, bytes);
        try (io.guestdma.block.testing.NbdServer server = io.guestdma.block.testing.NbdServer.qemuNbd(file, dir, "vblk")) {
            start(VirtioBlkConfig.defaults(), io.guestdma.block.NbdBackend.open(server.address(), BlockOptions.defaults()),
                    FEATURES, 0);
            assertThat(request(0, VirtioBlk.T_IN, 4, List.of(new Buf(DATA, 700, true), new Buf(DATA + 0x8000, 324, true))))
                    .isEqualTo(VirtioBlk.S_OK);
            byte[] got = new byte[1024];
            System.arraycopy(guestBytes(DATA, 700), 0, got, 0, 700);
            System.arraycopy(guestBytes(DATA + 0x8000, 324), 0, got, 700, 324);
            assertThat(got).isEqualTo(java.util.Arrays.copyOfRange(bytes, 4 * 512, 4 * 512 + 1024));
            byte[] pattern = new byte[4096];
            new Random(12).nextBytes(pattern);
            memory.write(DATA, pattern, 0, pattern.length);
            assertThat(request(0, VirtioBlk.T_OUT, 64, List.of(new Buf(DATA, 4096, false)))).isEqualTo(VirtioBlk.S_OK);
            assertThat(request(0, VirtioBlk.T_FLUSH, 0, List.of())).isEqualTo(VirtioBlk.S_OK);
            blk.close();
            blk = null;
            backend.close();
            backend = null;
            assertThat(java.util.Arrays.copyOfRange(Files.readAllBytes(file), 64 * 512, 64 * 512 + 4096)).isEqualTo(pattern);
        }
    }

    @Test
    void copyPathMovesTheSameBytes() throws IOException {
        start(VirtioBlkConfig.defaults().withCopyPath(true), image(), FEATURES, 0);
        assertThat(request(0, VirtioBlk.T_IN, 8, List.of(new Buf(DATA, 1000, true), new Buf(DATA + 0x10000, 1048, true))))
                .isEqualTo(VirtioBlk.S_OK);
        byte[] got = new byte[2048];
        System.arraycopy(guestBytes(DATA, 1000), 0, got, 0, 1000);
        System.arraycopy(guestBytes(DATA + 0x10000, 1048), 0, got, 1000, 1048);
        assertThat(got).isEqualTo(imageBytes(8 * 512, 2048));
        byte[] pattern = new byte[200 * 1024]; // more than one 128 KiB chunk of the heap buffer
        new Random(8).nextBytes(pattern);
        memory.write(DATA + 0x20000, pattern, 0, pattern.length);
        assertThat(request(0, VirtioBlk.T_OUT, 100, List.of(new Buf(DATA + 0x20000, 100 * 1024, false),
                new Buf(DATA + 0x20000 + 100 * 1024, 100 * 1024, false)))).isEqualTo(VirtioBlk.S_OK);
        assertThat(imageBytes(100 * 512, pattern.length)).isEqualTo(pattern);
    }
}
