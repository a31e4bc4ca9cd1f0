package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.fail;

import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioHandler;
import io.guestdma.memory.MmioRegion;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Function;

/**
 * The guest side of the ring fuzzers: a memory map with RAM, ROM, an MMIO device that reads
 * random values and the device's own registers, and random descriptor tables, chains (mostly a
 * device's well-formed shape, some mutated, some random), available rings and used-ring events.
 * Every range the guest offers the device to write is collected, so that a fuzzer can check that
 * the device wrote nothing else.
 */
final class RandomRings {
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
    static final long[] LENGTHS = {0, 1, 15, 16, 17, 100, 511, 512, 513, 1024, 4096, 8192, 65536, 1 << 20,
        0xffff_ffffL};

    private final GuestMemory memory;
    private final GuestDriver driver;

    RandomRings(GuestMemory memory, GuestDriver driver) {
        this.memory = memory;
        this.driver = driver;
    }

    /** RAM at 0, a ROM, and an MMIO device whose reads return random values. */
    static GuestMemory memory(Random r) {
        return GuestMemory.builder()
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
    }

    /** Maps the function's registers at {@link #OWN_BAR}, where the device's own DMA can reach them. */
    static void mapOwnBar(GuestMemory memory, VirtioPci pci) {
        memory.addRegion(new MmioRegion("own-bar", OWN_BAR, VirtioPci.MODERN_BAR_SIZE, pci.modernBar()));
    }

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

    /** Fills the four indirect tables at {@link #TABLES} with random descriptors. */
    void tables(Random r, List<long[]> writable) {
        for (int t = 0; t < 4; t++) {
            for (int i = 0; i < 34; i++) {
                descriptor(r, TABLES + 0x1000L * t + 16L * i, 34, writable);
            }
        }
    }

    /**
     * Fills queue {@code q}'s table of {@code n} with chains, mostly of the device's well-formed
     * shape ({@code wellFormed}: address, length, flags per descriptor; some through an indirect
     * table), some with one field mutated, some random; returns the heads.
     */
    int[] chains(Random r, int q, int n, List<long[]> writable, Function<Random, List<long[]>> wellFormed) {
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
            List<long[]> chain = wellFormed.apply(r);
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

    /**
     * Makes the heads available on queue {@code q} of {@code n} entries, with the odd random entry,
     * flags, index and used_event; the used ring is the device's to write.
     */
    void avail(Random r, int q, int n, int[] heads, List<long[]> writable) {
        for (int i = 0; i < n; i++) {
            int head = i < heads.length ? heads[i] : r.nextInt(n);
            memory.writeShort(driver.avail(q) + 4 + 2L * i, (short) (r.nextInt(30) == 0 ? r.nextInt() : head));
        }
        memory.writeShort(driver.avail(q), (short) (r.nextInt(4) == 0 ? 1 : 0));
        memory.writeShort(driver.avail(q) + 2, (short) (r.nextInt(30) == 0 ? r.nextInt() : heads.length));
        memory.writeShort(driver.avail(q) + 4 + 2L * n, (short) r.nextInt(n + 1));
        writable.add(new long[] {driver.used(q), 6 + 8L * n});
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
}
