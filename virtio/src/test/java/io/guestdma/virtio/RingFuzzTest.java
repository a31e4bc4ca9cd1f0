package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioHandler;
import io.guestdma.virtio.GuestDriver.Buf;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Random rings, indices, features and resets against virtio-blk, with the IDE fuzzers'
 * invariants: no register access throws, nothing stays mapped, the device writes nothing but the
 * buffers the guest offered as writable and the used ring, and every notify is done within a bound.
 * Seeds are fixed so that a failure reproduces; {@code -Dvirtio.fuzz.iterations=N} runs longer.
 */
class RingFuzzTest {
    static final int RAM = RandomRings.RAM;
    static final long HEADERS = RandomRings.HEADERS;
    static final long DATA = RandomRings.DATA;
    static final int ITERATIONS = RandomRings.ITERATIONS;
    static final long NOTIFY_BOUND_NANOS = RandomRings.NOTIFY_BOUND_NANOS;

    @TempDir
    Path dir;
    GuestMemory memory;
    BlockBackend backend;
    VirtioBlk blk;
    VirtioPci pci;
    GuestDriver driver;
    RandomRings rings;

    @BeforeEach
    void start() throws IOException {
        build(true);
    }

    void build(boolean ioThreads) throws IOException {
        if (blk != null) {
            close();
        }
        Path file = dir.resolve("disk.img");
        Files.write(file, new byte[1 << 20]);
        backend = FileChannelBackend.open(file, BlockOptions.defaults());
        memory = RandomRings.memory(new Random(99));
        DeviceAddressSpace dev = memory.deviceSpace("virtio-blk");
        blk = new VirtioBlk(dev, backend, VirtioBlkConfig.defaults().withQueues(2).withIoThreads(ioThreads));
        pci = new VirtioPci(blk, dev, level -> { }, 3);
        RandomRings.mapOwnBar(memory, pci);
        driver = new GuestDriver(pci, memory);
        rings = new RandomRings(memory, driver);
    }

    @AfterEach
    void close() throws IOException {
        blk.close();
        backend.close();
        memory.close();
        blk = null;
    }

    /** A well-formed request: a header, up to 3 data buffers, a status byte. */
    List<long[]> request(Random r) {
        boolean write = r.nextBoolean();
        List<long[]> chain = new ArrayList<>(); // address, length, flags
        int header = r.nextInt(64);
        memory.writeInt(HEADERS + 16L * header, write ? VirtioBlk.T_OUT : VirtioBlk.T_IN);
        memory.writeLong(HEADERS + 16L * header + 8, r.nextInt(2040));
        chain.add(new long[] {HEADERS + 16L * header, 16, 0});
        for (int d = r.nextInt(4); d > 0; d--) {
            chain.add(new long[] {DATA + 512L * r.nextInt(4000), 512L * (1 + r.nextInt(8)), write ? 0 : Virtqueue.DESC_F_WRITE});
        }
        chain.add(new long[] {DATA + 0x1f0000 + r.nextInt(0x10000), 1, Virtqueue.DESC_F_WRITE});
        return chain;
    }

    @Test
    void randomRingsKeepTheInvariants() {
        fuzzRings(20261203);
    }

    @Test
    void randomRingsKeepTheInvariantsWhenANotifyProcessesTheQueue() throws IOException {
        build(false);
        fuzzRings(77);
    }

    void fuzzRings(long seed) {
        Random r = new Random(seed);
        int completed = 0;
        int broken = 0;
        for (int iteration = 0; iteration < ITERATIONS; iteration++) {
            long features = VirtioPci.F_VERSION_1 | (r.nextBoolean() ? VirtioPci.F_EVENT_IDX : 0)
                    | (r.nextBoolean() ? VirtioPci.F_INDIRECT_DESC : 0) | (r.nextBoolean() ? VirtioBlk.F_FLUSH : 0);
            int size = r.nextInt(10) == 0 ? 3 + r.nextInt(60) : 1 << (1 + r.nextInt(6));
            int queues = 1 + r.nextInt(2);
            memory.fill(0, RAM, (byte) 0);
            driver.common(0x14, 1, 0);
            driver.start(features, queues, size);
            List<long[]> writable = new ArrayList<>();
            // headers: mostly plausible requests
            for (int i = 0; i < 64; i++) {
                int[] types = {0, 1, 4, 8, 11, 13, 9, 5, r.nextInt()};
                memory.writeInt(HEADERS + 16L * i, types[r.nextInt(types.length)]);
                memory.writeLong(HEADERS + 16L * i + 8, r.nextBoolean() ? r.nextInt(2100) : r.nextLong());
            }
            rings.tables(r, writable);
            for (int q = 0; q < queues; q++) {
                rings.avail(r, q, size, rings.chains(r, q, size, writable, this::request), writable);
            }
            byte[] before = new byte[RAM];
            memory.read(0, before, 0, RAM);
            long started = System.nanoTime();
            try {
                for (int q = 0; q < queues + 1; q++) {
                    driver.notify(r.nextInt(queues + 1));
                }
                if (r.nextInt(8) == 0) {
                    driver.common(0x14, 1, 0); // reset while requests run
                }
            } catch (RuntimeException e) {
                throw new AssertionError("iteration " + iteration + ": a register access threw", e);
            }
            while (!blk.isIdle()) {
                if (System.nanoTime() - started > NOTIFY_BOUND_NANOS) {
                    fail("iteration " + iteration + ": the device was still busy after 5 s");
                }
                Thread.onSpinWait();
            }
            assertThat(memory.liveMappings()).as("iteration %d: mappings left", iteration).isZero();
            byte[] after = new byte[RAM];
            memory.read(0, after, 0, RAM);
            RandomRings.checkOnlyOfferedBytesChanged(iteration, before, after, writable);
            for (int q = 0; q < queues; q++) {
                completed += driver.usedIdx(q);
            }
            broken += (driver.status() & VirtioPci.STATUS_NEEDS_RESET) != 0 ? 1 : 0;
        }
        // Not vacuous: requests completed, and rings broke.
        assertThat(completed).isGreaterThan(ITERATIONS / 4);
        assertThat(broken).isGreaterThan(ITERATIONS / 4);
        System.out.printf("ring fuzz: %d iterations, %d requests completed, %d rings broken%n", ITERATIONS, completed,
                broken);
    }

    @Test
    void randomRegisterAccessesNeverThrow() {
        Random r = new Random(42);
        MmioHandler bar = pci.modernBar();
        MmioHandler msix = pci.msixBar();
        driver.start(VirtioPci.F_VERSION_1, 2, 16);
        for (int i = 0; i < 20_000; i++) {
            int size = 1 << r.nextInt(3);
            try {
                switch (r.nextInt(9)) {
                    case 0 -> bar.read(r.nextInt(VirtioPci.MODERN_BAR_SIZE) & -size, size);
                    // the legacy BAR: page frame numbers anywhere (RAM, MMIO, past the end), any register
                    case 6 -> pci.legacyWrite(0x08, 4, r.nextBoolean() ? r.nextInt(RAM >>> 12) : r.nextInt());
                    case 7 -> pci.legacyWrite(r.nextInt(0x40) & -size, size, r.nextInt(4) == 0 ? r.nextInt() : r.nextInt(8));
                    case 8 -> pci.legacyRead(r.nextInt(0x40) & -size, size);
                    case 1 -> bar.write(r.nextInt(0x40) & -size, size, r.nextInt(8) == 0 ? r.nextLong() : r.nextInt(4));
                    case 2 -> bar.write(r.nextInt(VirtioPci.MODERN_BAR_SIZE) & -size, size, r.nextLong());
                    case 3 -> pci.configWrite(0x40 + r.nextInt(0xc0), 1 + r.nextInt(4), r.nextInt());
                    case 4 -> msix.write(r.nextInt(VirtioPci.MSIX_BAR_SIZE) & -4, 4, r.nextLong());
                    default -> pci.configRead(0x40 + r.nextInt(0xc0), 1 + r.nextInt(4));
                }
            } catch (RuntimeException e) {
                throw new AssertionError("access " + i + " threw", e);
            }
        }
        long deadline = System.nanoTime() + NOTIFY_BOUND_NANOS;
        while (!blk.isIdle() && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertThat(blk.isIdle()).isTrue();
        pci.resetFunction();
        assertThat(memory.liveMappings()).isZero();
        // After a reset the device works as new.
        memory.fill(0, RAM, (byte) 0);
        driver.start(VirtioPci.F_VERSION_1, 1, 16);
        memory.writeInt(HEADERS, VirtioBlk.T_IN);
        memory.writeByte(HEADERS + 0x100, (byte) 0x55);
        driver.submit(0, List.of(new Buf(HEADERS, 16, false), new Buf(DATA, 512, true), new Buf(HEADERS + 0x100, 1, true)));
        driver.notify(0);
        driver.awaitUsed(0, 1);
        assertThat(memory.readByte(HEADERS + 0x100)).isZero();
        assertThat(Arrays.asList(driver.status())).containsExactly(0xf);
    }
}
