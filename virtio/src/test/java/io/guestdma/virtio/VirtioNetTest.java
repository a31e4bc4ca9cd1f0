package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;

import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.MmioHandler;
import io.guestdma.memory.MmioRegion;
import io.guestdma.net.LoopbackNetBackend;
import io.guestdma.net.NetBackend;
import io.guestdma.net.RxQueue;
import io.guestdma.virtio.GuestDriver.Buf;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class VirtioNetTest {
    static final long MRG = VirtioPci.F_VERSION_1 | VirtioNet.F_MAC | VirtioNet.F_STATUS | VirtioNet.F_MRG_RXBUF;
    static final long NO_MRG = VirtioPci.F_VERSION_1 | VirtioNet.F_MAC | VirtioNet.F_STATUS;
    static final long TX_BUF = 0x400000;
    static final long RX_BUF = 0x800000;
    static final byte[] MAC = {0x52, 0x54, 0, 0x12, 0x34, 0x56};

    GuestMemory memory;
    NetBackend backend;
    VirtioNet net;
    VirtioPci pci;
    GuestDriver driver;
    final AtomicBoolean intx = new AtomicBoolean();

    GuestDriver start(NetBackend b, long features) {
        memory = GuestMemory.ofRam(32 << 20);
        backend = b;
        DeviceAddressSpace dev = memory.deviceSpace("virtio-net");
        net = new VirtioNet(dev, b, MAC, 256, 256, false);
        pci = new VirtioPci(net, dev, intx::set, 0);
        driver = new GuestDriver(pci, memory).start(features, 3, 64);
        return driver;
    }

    @AfterEach
    void close() {
        if (net != null) {
            net.close();
        }
        if (backend != null) {
            backend.close();
        }
        if (memory != null) {
            memory.close();
        }
    }

    static byte[] frame(Random random, int size) {
        byte[] f = new byte[size];
        random.nextBytes(f);
        return f;
    }

    /** Transmits one frame in {@code pieces} readable buffers after a 12-byte header. */
    void transmit(byte[] frame, int pieces) {
        memory.fill(TX_BUF, 12, (byte) 0x77); // a header the device must not pass on
        memory.write(TX_BUF + 12, MemorySegment.ofArray(frame));
        List<Buf> bufs = new ArrayList<>(List.of(new Buf(TX_BUF, 12, false)));
        int at = 0;
        for (int i = 0; i < pieces; i++) {
            int len = i + 1 == pieces ? frame.length - at : frame.length / pieces;
            bufs.add(new Buf(TX_BUF + 12 + at, len, false));
            at += len;
        }
        driver.submit(VirtioNet.TX, bufs);
        driver.notify(VirtioNet.TX);
    }

    byte[] read(long address, int length) {
        byte[] b = new byte[length];
        memory.read(address, MemorySegment.ofArray(b));
        return b;
    }

    void awaitUntil(java.util.function.BooleanSupplier condition) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!condition.getAsBoolean()) {
            assertThat(System.nanoTime()).as("condition within 10 s").isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    @Test
    void configurationShowsMacAndLink() {
        start(loopback(), MRG);
        assertThat(pci.pciDeviceId()).isEqualTo(0x1000);
        byte[] mac = new byte[6];
        for (int i = 0; i < 6; i++) {
            mac[i] = (byte) driver.bar.read(VirtioPci.DEVICE + i, 1);
        }
        assertThat(mac).isEqualTo(MAC);
        assertThat(driver.bar.read(VirtioPci.DEVICE + 6, 2)).isEqualTo(1);
        assertThat(driver.bar.read(VirtioPci.DEVICE + 8, 4)).as("past the config").isEqualTo(0xffff_ffffL);
        driver.bar.write(VirtioPci.DEVICE, 1, 0x99);
        assertThat(driver.bar.read(VirtioPci.DEVICE, 1)).as("mac is read-only with VERSION_1").isEqualTo(0x52);
        driver.common(0x14, 1, 0);
        driver.common(0x16, 2, 2);
        assertThat(driver.common(0x18, 2)).as("control queue size").isEqualTo(64);
        driver.common(0x16, 2, 0);
        assertThat(driver.common(0x18, 2)).as("receive queue size").isEqualTo(256);
    }

    @Test
    void loopedBackFrameLandsWholeWithMergeableHeader() {
        start(loopback(), MRG);
        Random random = new Random(1);
        byte[] f = frame(random, 1514);
        memory.fill(RX_BUF, 4096, (byte) 0xee);
        driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF, 2048, true)));
        driver.notify(VirtioNet.RX);
        transmit(f, 3);
        driver.awaitUsed(VirtioNet.TX, 1);
        assertThat(driver.usedLen(VirtioNet.TX, 0)).isZero();
        driver.awaitUsed(VirtioNet.RX, 1);
        assertThat(driver.usedLen(VirtioNet.RX, 0)).isEqualTo(12 + 1514);
        assertThat(read(RX_BUF, 12)).isEqualTo(new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0});
        assertThat(read(RX_BUF + 12, 1514)).isEqualTo(f);
        assertThat(read(RX_BUF + 12 + 1514, 1)[0]).as("past the frame: untouched").isEqualTo((byte) 0xee);
        assertThat(net.txFrames()).isEqualTo(1);
        assertThat(net.rxFrames()).isEqualTo(1);
    }

    @Test
    void aPausedDeviceMovesNoFrameUntilUnpaused() throws InterruptedException {
        start(loopback(), MRG);
        Random random = new Random(3);
        byte[] f = frame(random, 1000);
        driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF, 2048, true)));
        driver.notify(VirtioNet.RX);
        pci.pause();
        transmit(f, 1);
        Thread.sleep(200);
        assertThat(driver.usedIdx(VirtioNet.TX)).as("nothing transmitted while paused").isZero();
        assertThat(driver.usedIdx(VirtioNet.RX)).as("nothing received while paused").isZero();
        assertThat(intx).as("no interrupt while paused").isFalse();
        pci.unpause();
        driver.awaitUsed(VirtioNet.TX, 1);
        driver.awaitUsed(VirtioNet.RX, 1);
        assertThat(read(RX_BUF + 12, 1000)).isEqualTo(f);
    }

    @Test
    void frameSpreadsOverSeveralChainsWithNumBuffers() {
        start(loopback(), MRG);
        byte[] f = frame(new Random(2), 5000);
        for (int i = 0; i < 4; i++) {
            driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF + 0x1000L * i, 2048, true)));
        }
        driver.notify(VirtioNet.RX);
        transmit(f, 1);
        driver.awaitUsed(VirtioNet.RX, 3);
        assertThat(read(RX_BUF + 10, 2)).isEqualTo(new byte[] {3, 0});
        assertThat(driver.usedLen(VirtioNet.RX, 0)).isEqualTo(2048);
        assertThat(driver.usedLen(VirtioNet.RX, 1)).isEqualTo(2048);
        assertThat(driver.usedLen(VirtioNet.RX, 2)).isEqualTo(5000 + 12 - 4096);
        byte[] got = new byte[5000];
        System.arraycopy(read(RX_BUF + 12, 2036), 0, got, 0, 2036);
        System.arraycopy(read(RX_BUF + 0x1000, 2048), 0, got, 2036, 2048);
        System.arraycopy(read(RX_BUF + 0x2000, 5000 - 4084), 0, got, 4084, 5000 - 4084);
        assertThat(got).isEqualTo(f);
    }

    @Test
    void frameWaitsForEnoughBuffersAndIsNeverWrittenInPart() {
        start(loopback(), MRG);
        byte[] f = frame(new Random(3), 3000);
        memory.fill(RX_BUF, 0x3000, (byte) 0xee);
        driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF, 2048, true)));
        driver.notify(VirtioNet.RX);
        transmit(f, 2);
        driver.awaitUsed(VirtioNet.TX, 1);
        awaitUntil(net::isIdle);
        assertThat(backend.rxQueue().size()).as("the frame waits").isEqualTo(1);
        assertThat(driver.usedIdx(VirtioNet.RX)).isZero();
        assertThat(read(RX_BUF, 2048)).as("nothing written").containsOnly((byte) 0xee);
        driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF + 0x1000, 2048, true)));
        driver.notify(VirtioNet.RX);
        driver.awaitUsed(VirtioNet.RX, 2);
        assertThat(read(RX_BUF + 12, 2036)).isEqualTo(java.util.Arrays.copyOf(f, 2036));
        assertThat(net.rxDropped()).isZero();
    }

    @Test
    void withoutMergeableBuffersATooSmallChainDropsTheFrameAndStaysAvailable() {
        start(loopback(), NO_MRG);
        memory.fill(RX_BUF, 0x2000, (byte) 0xee);
        memory.fill(RX_BUF + 0x1000, 0x2000, (byte) 0xee);
        driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF, 1000, true)));
        driver.notify(VirtioNet.RX);
        transmit(frame(new Random(4), 1500), 1);
        awaitUntil(() -> net.rxDropped() == 1);
        assertThat(read(RX_BUF, 1000)).as("all or nothing").containsOnly((byte) 0xee);
        byte[] small = frame(new Random(5), 900);
        transmit(small, 1);
        driver.awaitUsed(VirtioNet.RX, 1);
        assertThat(driver.usedId(VirtioNet.RX, 0)).as("the same chain took the next frame").isZero();
        assertThat(driver.usedLen(VirtioNet.RX, 0)).isEqualTo(912);
        assertThat(read(RX_BUF, 12)).as("num_buffers left as the driver wrote it")
                .isEqualTo(new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte) 0xee, (byte) 0xee});
        assertThat(read(RX_BUF + 12, 900)).isEqualTo(small);
    }

    @Test
    void aFrameNoRingOfBuffersCanHoldIsDropped() {
        start(loopback(), MRG);
        // 64 chains of 16 bytes = 1024 bytes of buffers; a 2000-byte frame can never fit
        for (int i = 0; i < 64; i++) {
            driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF + 16L * i, 16, true)));
        }
        driver.notify(VirtioNet.RX);
        transmit(frame(new Random(6), 2000), 1);
        awaitUntil(() -> net.rxDropped() == 1);
        byte[] small = frame(new Random(7), 100);
        transmit(small, 1);
        driver.awaitUsed(VirtioNet.RX, 7); // 4 bytes after the header in the first chain, then 6 x 16
        assertThat(read(RX_BUF + 10, 2)).isEqualTo(new byte[] {7, 0});
    }

    @Test
    void hostileTransmitChains() {
        start(loopback(), MRG);
        // a header shorter than 12 bytes breaks the device
        driver.submit(VirtioNet.TX, List.of(new Buf(TX_BUF, 8, false)));
        assertThatCode(() -> driver.notify(VirtioNet.TX)).doesNotThrowAnyException();
        driver.awaitNeedsReset();
    }

    @Test
    void framesTooLongOrEmptyOrInFailingMmioAreCountedDrops() {
        start(loopback(), MRG);
        memory.transaction().add(new MmioRegion("failing", 0x1_0000_0000L, 0x10000, new MmioHandler() {
            @Override
            public long read(long offset, int size) {
                throw new IllegalStateException("device error");
            }

            @Override
            public void write(long offset, int size, long value) {
            }
        })).commit();
        driver.submit(VirtioNet.TX, List.of(new Buf(TX_BUF, 12, false)));
        driver.submit(VirtioNet.TX, List.of(new Buf(TX_BUF, 12, false), new Buf(TX_BUF + 12, 65536, false)));
        driver.submit(VirtioNet.TX, List.of(new Buf(TX_BUF, 12, false), new Buf(0x1_0000_0000L, 100, false)));
        assertThatCode(() -> driver.notify(VirtioNet.TX)).doesNotThrowAnyException();
        driver.awaitUsed(VirtioNet.TX, 3);
        awaitUntil(() -> net.txDropped() == 3);
        assertThat(driver.status() & VirtioPci.STATUS_NEEDS_RESET).isZero();
        assertThat(net.txFrames()).isZero();
    }

    @Test
    void linkChangesRaiseAConfigurationInterrupt() {
        Switchable link = new Switchable();
        start(link, MRG);
        intx.set(false);
        link.set(false);
        assertThat(driver.bar.read(VirtioPci.DEVICE + 6, 2)).isZero();
        awaitUntil(intx::get);
        assertThat(driver.bar.read(VirtioPci.ISR, 1)).isEqualTo(3);
        link.set(true);
        assertThat(driver.bar.read(VirtioPci.DEVICE + 6, 2)).isEqualTo(1);
    }

    @Test
    void randomFramesOverRandomBuffersArriveIntact() {
        start(loopback(), MRG);
        Random random = new Random(8);
        int txUsed = 0;
        for (int round = 0; round < 300; round++) {
            int size = 14 + random.nextInt(random.nextBoolean() ? 200 : 20000);
            // just enough buffers, each with room for a header: the frame needs every chain
            int chains = Math.min(1 + random.nextInt(4), (size + 12) / 12);
            int bufLen = (size + 12 + chains - 1) / chains;
            int before = driver.usedIdx(VirtioNet.RX);
            long[] at = new long[chains];
            for (int i = 0; i < chains; i++) {
                at[i] = RX_BUF + 0x8000L * i;
                int first = bufLen == 1 ? 1 : 1 + random.nextInt(bufLen - 1);
                List<Buf> bufs = first == bufLen || random.nextBoolean() ? List.of(new Buf(at[i], bufLen, true))
                        : List.of(new Buf(at[i], first, true), new Buf(at[i] + first, bufLen - first, true));
                driver.submit(VirtioNet.RX, bufs);
            }
            driver.notify(VirtioNet.RX);
            byte[] f = frame(random, size);
            transmit(f, 1 + random.nextInt(3));
            driver.awaitUsed(VirtioNet.TX, ++txUsed & 0xffff);
            driver.awaitUsed(VirtioNet.RX, (before + chains) & 0xffff);
            assertThat(Short.toUnsignedInt(memory.readShort(at[0] + 10))).isEqualTo(chains);
            byte[] all = new byte[size];
            int copied = 0;
            for (int i = 0; i < chains; i++) {
                assertThat(driver.usedId(VirtioNet.RX, before + i)).isNotNegative();
                int len = driver.usedLen(VirtioNet.RX, before + i) - (i == 0 ? 12 : 0);
                System.arraycopy(read(at[i] + (i == 0 ? 12 : 0), len), 0, all, copied, len);
                copied += len;
            }
            assertThat(copied).isEqualTo(size);
            assertThat(all).isEqualTo(f);
        }
        assertThat(net.rxDropped()).isZero();
        assertThat(backend.txDropped()).isZero();
    }

    static NetBackend loopback() {
        try {
            return LoopbackNetBackend.create(new RxQueue(), true, null);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** A backend whose link the test switches; it sends nothing anywhere. */
    static final class Switchable implements NetBackend {
        private final RxQueue queue = new RxQueue();
        private volatile Consumer<Boolean> listener = up -> { };
        private volatile boolean up = true;

        void set(boolean value) {
            up = value;
            listener.accept(value);
        }

        @Override
        public boolean transmit(IoVector frame) {
            return up;
        }

        @Override
        public RxQueue rxQueue() {
            return queue;
        }

        @Override
        public boolean linkUp() {
            return up;
        }

        @Override
        public void onLinkChange(Consumer<Boolean> l) {
            listener = l;
        }

        @Override
        public long txFrames() {
            return 0;
        }

        @Override
        public long txDropped() {
            return 0;
        }

        @Override
        public long rxErrors() {
            return 0;
        }

        @Override
        public void close() {
            queue.close();
        }
    }
}
