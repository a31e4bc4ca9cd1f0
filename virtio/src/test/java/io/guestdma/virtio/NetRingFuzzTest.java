package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioHandler;
import io.guestdma.net.LoopbackNetBackend;
import io.guestdma.net.RxQueue;
import io.guestdma.virtio.GuestDriver.Buf;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Random rings, indices, features, resets and frame lengths against virtio-net, with the
 * virtio-blk fuzzer's invariants ({@link RingFuzzTest}): no register access throws, nothing stays
 * mapped, the device writes nothing but the buffers the guest offered as writable and the used
 * rings, it is idle again within a bound, the backend's queue stays within its bound, and every
 * frame that reached the device is accounted for: delivered, dropped and counted, or still
 * waiting for buffers. Received frames come from the test (as a peer would send them, 1 to 65 535
 * bytes) and from the loopback of what the guest transmits. Seeds are fixed so that a failure
 * reproduces; {@code -Dvirtio.fuzz.iterations=N} runs longer.
 */
class NetRingFuzzTest {
    static final long HEADERS = RandomRings.HEADERS;
    static final long DATA = RandomRings.DATA;
    static final int MAX_FRAMES = 8;
    static final int[] FRAME_LENGTHS = {1, 13, 14, 60, 64, 1500, 1514, 2036, 2037, 4096, 9000, RxQueue.MAX_FRAME_BYTES};
    static final long[] RX_LENGTHS = {1, 10, 11, 12, 13, 64, 1526, 2048, 4096, 9012, 65536};
    static final long[] FEATURES = {VirtioNet.F_MRG_RXBUF, VirtioPci.F_EVENT_IDX, VirtioPci.F_INDIRECT_DESC,
        VirtioNet.F_MAC, VirtioNet.F_STATUS};

    GuestMemory memory;
    RxQueue queue;
    LoopbackNetBackend backend;
    VirtioNet net;
    VirtioPci pci;
    GuestDriver driver;
    RandomRings rings;
    /** Frames the test queued as a peer's, accepted by the backend's queue. */
    long injected;

    void build(boolean inlineNotify) throws IOException {
        memory = RandomRings.memory(new Random(5));
        queue = new RxQueue(RxQueue.DEFAULT_CAPACITY_BYTES / 4, MAX_FRAMES);
        backend = LoopbackNetBackend.create(queue, true, null);
        DeviceAddressSpace dev = memory.deviceSpace("virtio-net");
        net = new VirtioNet(dev, backend, new byte[] {0x52, 0x54, 0, 0x12, 0x34, 0x56},
                VirtioNetConfig.defaults().withQueueSizes(64, 64).withInlineNotify(inlineNotify));
        pci = new VirtioPci(net, dev, level -> { }, 3);
        RandomRings.mapOwnBar(memory, pci);
        driver = new GuestDriver(pci, memory);
        rings = new RandomRings(memory, driver);
    }

    @AfterEach
    void close() {
        if (net != null) {
            net.close();
            backend.close();
            memory.close();
        }
    }

    /** A well-formed receive chain: one to three writable buffers. */
    List<long[]> receiveChain(Random r) {
        List<long[]> chain = new ArrayList<>();
        for (int d = 1 + r.nextInt(3); d > 0; d--) {
            chain.add(new long[] {DATA + r.nextInt(0x1f0000), RX_LENGTHS[r.nextInt(RX_LENGTHS.length)],
                Virtqueue.DESC_F_WRITE});
        }
        return chain;
    }

    /** A well-formed transmit chain: the 12-byte header (now and then short), then the frame in up to 3 pieces. */
    List<long[]> transmitChain(Random r) {
        List<long[]> chain = new ArrayList<>();
        chain.add(new long[] {HEADERS + 16L * r.nextInt(64), r.nextInt(10) == 0 ? r.nextInt(12) : 12, 0});
        for (int d = r.nextInt(4); d > 0; d--) {
            chain.add(new long[] {DATA + r.nextInt(0x1f0000), 1 + r.nextInt(r.nextInt(4) == 0 ? 70_000 : 1600), 0});
        }
        return chain;
    }

    /** A well-formed control command: class and command, some data, the status byte. */
    List<long[]> controlChain(Random r) {
        List<long[]> chain = new ArrayList<>();
        chain.add(new long[] {HEADERS + 16L * r.nextInt(64), 2, 0});
        if (r.nextBoolean()) {
            chain.add(new long[] {DATA + r.nextInt(0x1f0000), 1 + r.nextInt(8), 0});
        }
        chain.add(new long[] {DATA + 0x1f0000 + r.nextInt(0x10000), 1, Virtqueue.DESC_F_WRITE});
        return chain;
    }

    /** Queues a frame of a random hostile length as the peer's; counts it if the queue took it. */
    void inject(Random r) {
        int length = r.nextInt(3) == 0 ? 1 + r.nextInt(RxQueue.MAX_FRAME_BYTES)
                : FRAME_LENGTHS[r.nextInt(FRAME_LENGTHS.length)];
        byte[] frame = new byte[length];
        r.nextBytes(frame);
        if (queue.offer(MemorySegment.ofArray(frame))) {
            injected++;
        }
    }

    void awaitIdle(String when) {
        long started = System.nanoTime();
        while (!net.isIdle()) {
            if (System.nanoTime() - started > RandomRings.NOTIFY_BOUND_NANOS) {
                fail(when + ": the device was still busy after 5 s");
            }
            Thread.onSpinWait();
        }
    }

    @Test
    void randomRingsKeepTheInvariants() throws IOException {
        build(false);
        fuzzRings(20261203);
    }

    @Test
    void randomRingsKeepTheInvariantsWhenANotifyProcessesTheQueue() throws IOException {
        build(true);
        fuzzRings(14);
    }

    void fuzzRings(long seed) {
        Random r = new Random(seed);
        long usedEntries = 0;
        int broken = 0;
        for (int iteration = 0; iteration < RandomRings.ITERATIONS; iteration++) {
            long features = VirtioPci.F_VERSION_1;
            for (long f : FEATURES) {
                features |= r.nextBoolean() ? f : 0;
            }
            int size = r.nextInt(10) == 0 ? 3 + r.nextInt(60) : 1 << (1 + r.nextInt(6));
            memory.fill(0, RandomRings.RAM, (byte) 0);
            driver.common(0x14, 1, 0);
            driver.start(features, 3, size);
            awaitIdle("iteration " + iteration + " after DRIVER_OK"); // frames left from before find no buffers
            List<long[]> writable = new ArrayList<>();
            for (int i = 0; i < 64; i++) { // headers and control commands: mostly zero, some random
                memory.writeLong(HEADERS + 16L * i, r.nextInt(3) == 0 ? r.nextLong() : 0);
                memory.writeLong(HEADERS + 16L * i + 8, r.nextInt(3) == 0 ? r.nextLong() : 0);
            }
            rings.tables(r, writable);
            rings.avail(r, VirtioNet.RX, size, rings.chains(r, VirtioNet.RX, size, writable, this::receiveChain), writable);
            rings.avail(r, VirtioNet.TX, size, rings.chains(r, VirtioNet.TX, size, writable, this::transmitChain), writable);
            rings.avail(r, VirtioNet.CTRL, size, rings.chains(r, VirtioNet.CTRL, size, writable, this::controlChain),
                    writable);
            byte[] before = new byte[RandomRings.RAM];
            memory.read(0, before, 0, RandomRings.RAM);
            try {
                for (int i = r.nextInt(4); i > 0; i--) {
                    inject(r);
                }
                for (int i = 1 + r.nextInt(4); i > 0; i--) {
                    driver.notify(r.nextInt(4)); // queue 3 does not exist
                }
                if (r.nextInt(8) == 0) {
                    driver.common(0x14, 1, 0); // reset while frames move
                }
            } catch (RuntimeException e) {
                throw new AssertionError("iteration " + iteration + ": a register access threw", e);
            }
            awaitIdle("iteration " + iteration);
            assertThat(memory.liveMappings()).as("iteration %d: mappings left", iteration).isZero();
            byte[] after = new byte[RandomRings.RAM];
            memory.read(0, after, 0, RandomRings.RAM);
            RandomRings.checkOnlyOfferedBytesChanged(iteration, before, after, writable);
            assertThat(queue.size()).as("iteration %d: frames held", iteration).isBetween(0, MAX_FRAMES);
            assertThat(net.rxFrames() + net.rxDropped() + queue.size())
                    .as("iteration %d: frames delivered, dropped or waiting", iteration)
                    .isEqualTo(injected + backend.txFrames());
            assertThat(net.txFrames()).as("iteration %d: frames the loopback took", iteration)
                    .isEqualTo(backend.txFrames());
            for (int q = 0; q < 3; q++) {
                usedEntries += driver.usedIdx(q);
            }
            broken += (driver.status() & VirtioPci.STATUS_NEEDS_RESET) != 0 ? 1 : 0;
        }
        // Not vacuous: frames went both ways and were dropped, and rings broke.
        assertThat(net.rxFrames()).as("frames delivered").isGreaterThan(RandomRings.ITERATIONS / 20);
        assertThat(net.txFrames()).as("frames sent").isGreaterThan(RandomRings.ITERATIONS / 20);
        assertThat(net.rxDropped() + net.txDropped() + queue.dropped()).as("frames dropped").isPositive();
        assertThat(broken).as("rings broken").isGreaterThan(RandomRings.ITERATIONS / 10);
        System.out.printf("virtio-net ring fuzz: %d iterations, %d used entries, %d rings broken, rx %d (dropped %d),"
                        + " tx %d (dropped %d), backend queue drops %d%n", RandomRings.ITERATIONS, usedEntries, broken,
                net.rxFrames(), net.rxDropped(), net.txFrames(), net.txDropped(), queue.dropped());
    }

    @Test
    void randomRegisterAccessesNeverThrow() throws IOException {
        build(false);
        Random r = new Random(43);
        MmioHandler bar = pci.modernBar();
        driver.start(VirtioPci.F_VERSION_1 | VirtioNet.F_MRG_RXBUF, 3, 16);
        for (int i = 0; i < 20_000; i++) {
            int size = 1 << r.nextInt(3);
            try {
                switch (r.nextInt(5)) {
                    case 0 -> bar.read(r.nextInt(VirtioPci.MODERN_BAR_SIZE) & -size, size);
                    case 1 -> bar.write(r.nextInt(0x40) & -size, size, r.nextInt(8) == 0 ? r.nextLong() : r.nextInt(4));
                    case 2 -> bar.write(r.nextInt(VirtioPci.MODERN_BAR_SIZE) & -size, size, r.nextLong());
                    case 3 -> pci.configWrite(0x40 + r.nextInt(0xc0), 1 + r.nextInt(4), r.nextInt());
                    default -> pci.configRead(0x40 + r.nextInt(0xc0), 1 + r.nextInt(4));
                }
            } catch (RuntimeException e) {
                throw new AssertionError("access " + i + " threw", e);
            }
        }
        awaitIdle("after the accesses");
        pci.resetFunction();
        assertThat(memory.liveMappings()).isZero();
        // After a reset the device works as new: a frame sent comes back through the loopback.
        for (int round = 0; !queue.isEmpty(); round++) { // frames the random accesses left waiting
            assertThat(round).as("rounds to take the waiting frames").isLessThan(MAX_FRAMES + 1);
            driver.start(VirtioPci.F_VERSION_1 | VirtioNet.F_MRG_RXBUF, 3, 16);
            driver.submit(VirtioNet.RX, List.of(new Buf(DATA, 65536, true)));
            driver.submit(VirtioNet.RX, List.of(new Buf(DATA + 65536, 65536, true)));
            driver.notify(VirtioNet.RX);
            awaitIdle("draining");
        }
        memory.fill(0, RandomRings.RAM, (byte) 0);
        driver.start(VirtioPci.F_VERSION_1 | VirtioNet.F_MRG_RXBUF, 3, 16);
        driver.submit(VirtioNet.RX, List.of(new Buf(DATA, 2048, true)));
        byte[] frame = new byte[60];
        r.nextBytes(frame);
        memory.write(HEADERS + 12, frame, 0, frame.length);
        driver.submit(VirtioNet.TX, List.of(new Buf(HEADERS, 12, false), new Buf(HEADERS + 12, 60, false)));
        driver.notify(VirtioNet.TX);
        driver.awaitUsed(VirtioNet.RX, 1);
        byte[] received = new byte[60];
        memory.read(DATA + 12, received, 0, 60);
        assertThat(received).isEqualTo(frame);
        assertThat(Arrays.asList(driver.status())).containsExactly(0xf);
    }
}
