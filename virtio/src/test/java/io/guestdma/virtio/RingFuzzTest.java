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
    static final int RAM = 10 << 20;
    static final long ROM = 0x1000000;
    static final long MMIO = 0x1010000;
    /** The device's own registers, mapped so that DMA can reach them (re-entrancy). */
    static final long OWN_BAR = 0x1020000;
    static final long HEADERS = 0x500000;
    static final long TABLES = 0x600000;
    static final long DATA = 0x700000;
    static final int ITERATIONS = Integer.getInteger("virtio.fuzz.iterations", 150);
    static final long NOTIFY_BOUND_NANOS = 5_000_000_000L;

    @TempDir
    Path dir;
    GuestMemory memory;
    BlockBackend backend;
    VirtioBlk blk;
    VirtioPci pci;
    GuestDriver driver;

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
        Random r = new Random(99);
        memory = GuestMemory.builder()
                .ram("ram", 0, RAM)
                .rom("rom", ROM, 0x10000)
                .mmio("mmio", MMIO, 0x1000, new MmioHandler() {
                    @Override
                    public long read(long offset, int size) {
                        return r.nextLong();
                    }

                    @Override
                    public void write(long offset, int size, long value) {
                    }
                })
                .build();
        DeviceAddressSpace dev = memory.deviceSpace("virtio-blk");
        blk = new VirtioBlk(dev, backend, VirtioBlkConfig.defaults().withQueues(2).withIoThreads(ioThreads));
        pci = new VirtioPci(blk, dev, level -> { }, 3);
        memory.addRegion(new io.guestdma.memory.MmioRegion("own-bar", OWN_BAR, VirtioPci.MODERN_BAR_SIZE, pci.modernBar()));
        driver = new GuestDriver(pci, memory);
    }

    @AfterEach
    void close() throws IOException {
        blk.close();
        backend.close();
        memory.close();
        blk = null;
    }

    private static final long[] LENGTHS = {0, 1, 15, 16, 17, 100, 511, 512, 513, 1024, 4096, 8192, 65536, 1 << 20,
        0xffff_ffffL};

    long address(Random r) {
        return switch (r.nextInt(10)) {
            case 0 -> ROM + r.nextInt(0x10000);
            case 1 -> MMIO + r.nextInt(0x1000);
            case 2 -> r.nextBoolean() ? 0x7000_0000L + r.nextInt(1 << 20) // unassigned
                    : OWN_BAR + r.nextInt(VirtioPci.MODERN_BAR_SIZE); // the device's own registers
            case 3 -> -1L - r.nextInt(4096); // near 2^64
            case 4, 5 -> HEADERS + 16L * r.nextInt(64);
            default -> DATA + r.nextInt(0x200000);
        };
    }

    void descriptor(Random r, long at, int tableSize, List<long[]> writable) {
        long address = address(r);
        long length = LENGTHS[r.nextInt(LENGTHS.length)];
        if (r.nextInt(4) == 0) {
            length = r.nextInt(1 << 16);
        }
        int flags = r.nextInt(8);
        if (r.nextInt(3) != 0) {
            flags &= ~Virtqueue.DESC_F_INDIRECT;
        }
        if ((flags & Virtqueue.DESC_F_INDIRECT) != 0 && r.nextBoolean()) {
            address = TABLES + 0x1000L * r.nextInt(4);
            length = 16L * (1 + r.nextInt(32)) + (r.nextInt(8) == 0 ? 8 : 0);
        }
        memory.writeLong(at, address);
        memory.writeInt(at + 8, (int) length);
        memory.writeShort(at + 12, (short) flags);
        memory.writeShort(at + 14, (short) r.nextInt(tableSize + 3));
        if ((flags & Virtqueue.DESC_F_WRITE) != 0) {
            writable.add(new long[] {address, length});
        }
    }

    /**
     * Fills the table with chains, mostly well formed (a header, data, a status byte; some through
     * an indirect table), some mutated, some random; returns the heads.
     */
    int[] chains(Random r, int q, int n, List<long[]> writable) {
        List<Integer> heads = new ArrayList<>();
        int next = 0;
        int table = 0;
        while (next < n) {
            int kind = r.nextInt(10);
            if (kind == 0) {
                descriptor(r, driver.desc(q) + 16L * next, n, writable);
                heads.add(next++);
                continue;
            }
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
            if (kind < 4) { // mutate one field
                long[] victim = chain.get(r.nextInt(chain.size()));
                switch (r.nextInt(4)) {
                    case 0 -> victim[0] = address(r);
                    case 1 -> victim[1] = LENGTHS[r.nextInt(LENGTHS.length)];
                    case 2 -> victim[2] ^= 1 << r.nextInt(3);
                    default -> victim[2] ^= Virtqueue.DESC_F_WRITE;
                }
            }
            boolean indirect = kind == 9 && table < 4;
            int slots = indirect ? 1 : chain.size();
            if (next + slots > n) {
                break;
            }
            long base = indirect ? TABLES + 0x1000L * table++ : driver.desc(q);
            int first = indirect ? 0 : next;
            int limit = indirect ? chain.size() : n;
            for (int i = 0; i < chain.size(); i++) {
                long[] c = chain.get(i);
                long at = base + 16L * (first + i);
                boolean more = i + 1 < chain.size();
                memory.writeLong(at, c[0]);
                memory.writeInt(at + 8, (int) c[1]);
                memory.writeShort(at + 12, (short) (c[2] | (more ? Virtqueue.DESC_F_NEXT : 0)));
                memory.writeShort(at + 14, (short) (more ? (first + i + 1) % limit : 0));
                if ((c[2] & Virtqueue.DESC_F_WRITE) != 0) {
                    writable.add(new long[] {c[0], c[1]});
                }
            }
            if (indirect) {
                long at = driver.desc(q) + 16L * next;
                memory.writeLong(at, base);
                memory.writeInt(at + 8, 16 * chain.size());
                memory.writeShort(at + 12, (short) Virtqueue.DESC_F_INDIRECT);
                memory.writeShort(at + 14, (short) 0);
            }
            heads.add(next);
            next += slots;
        }
        return heads.stream().mapToInt(Integer::intValue).toArray();
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
            for (int t = 0; t < 4; t++) {
                for (int i = 0; i < 34; i++) {
                    descriptor(r, TABLES + 0x1000L * t + 16L * i, 34, writable);
                }
            }
            for (int q = 0; q < queues; q++) {
                int n = size;
                int[] heads = chains(r, q, n, writable);
                int offered = heads.length;
                for (int i = 0; i < n; i++) {
                    int head = i < heads.length ? heads[i] : r.nextInt(n);
                    memory.writeShort(driver.avail(q) + 4 + 2L * i, (short) (r.nextInt(30) == 0 ? r.nextInt() : head));
                }
                memory.writeShort(driver.avail(q), (short) (r.nextInt(4) == 0 ? 1 : 0));
                memory.writeShort(driver.avail(q) + 2, (short) (r.nextInt(30) == 0 ? r.nextInt() : offered));
                memory.writeShort(driver.avail(q) + 4 + 2L * n, (short) r.nextInt(n + 1));
                writable.add(new long[] {driver.used(q), 6 + 8L * n});
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
            checkOnlyOfferedBytesChanged(iteration, before, after, writable);
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

    static void checkOnlyOfferedBytesChanged(int iteration, byte[] before, byte[] after, List<long[]> writable) {
        boolean[] allowed = new boolean[before.length];
        for (long[] w : writable) {
            long start = w[0];
            long end = start + w[1];
            for (long a = Math.max(start, 0); a < Math.min(end, before.length); a++) {
                if (Long.compareUnsigned(a, start) >= 0) {
                    allowed[(int) a] = true;
                }
            }
        }
        for (int i = 0; i < before.length; i++) {
            if (before[i] != after[i] && !allowed[i]) {
                fail(String.format("iteration %d: the device wrote 0x%x, which the guest did not offer", iteration, i));
            }
        }
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
