package io.guestdma.memory;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * One immutable snapshot of the region map (RCU style): readers load it from a volatile field and
 * never block; a change builds a new snapshot and retires the old one.
 *
 * <p>Each snapshot also counts the DMA mappings made through it. A retired snapshot's
 * {@link #drained} future completes when its last mapping is unmapped, which is how a removed
 * region (and, at close, the backing) is kept alive until nobody can touch it any more. The count
 * is striped by thread, so two device threads mapping at once do not fight over one cache line,
 * and each mapping decrements the stripe it incremented, so every stripe is exact and the sum
 * cannot read zero while a mapping is live.
 */
final class AddressMap {
    static final AddressMap CLOSED = new AddressMap(List.of(), null, true);

    private static final int STRIPES = 8;
    private static final int STRIPE_SPACING = 16; // 128 bytes: no false sharing between stripes
    private static final VarHandle COUNT = MethodHandles.arrayElementVarHandle(long[].class);

    private final Region[] regions;
    private final long[] bases;
    private final long[] lasts;
    final boolean closed;

    /*
     * What map() reads about a region, packed into one 64-byte record per region (array-of-structs)
     * so that a lookup among 10 000 regions touches one cache line for the region instead of one
     * per array plus the Region object. With the array's 16-byte header, the six used slots of a
     * record share one line.
     */
    private static final int HOT_STRIDE = 8;
    private static final int HOT_BASE = 0;
    private static final int HOT_LAST = 1;
    private static final int HOT_BACKING = 2; // -1 for MMIO
    /** For RAM and ROM: the last address of the backing-contiguous readable run that starts here. */
    private static final int HOT_READ_RUN = 3;
    /** For RAM: the same for writes (ROM cannot be written directly). */
    private static final int HOT_WRITE_RUN = 4;
    private static final int HOT_DIRECT = 5;
    private static final long DIRECT_TO_DEVICE = 1;
    private static final long DIRECT_FROM_DEVICE = 2;
    private final long[] hot;

    /*
     * The bucket index behind find(): the span from the first region's base to the last region's
     * last byte is cut into at most 2^16 equal power-of-two buckets (about four per region), and
     * bucketFirst[b] is the first region that reaches into bucket b. The regions that can hold an
     * address in bucket b are then bucketFirst[b]..bucketFirst[b + 1], usually one or two, so a
     * lookup costs the same with 10 000 regions as with one (a plain binary search over 10 000
     * regions takes ~14 unpredictable branches). Sparse layouts (RAM at 0, a device near 2^64)
     * put many regions in one bucket; those fall back to a binary search within the bucket.
     */
    private static final int MAX_BUCKET_BITS = 16;
    private static final int LINEAR_SCAN = 4;
    private final long spanBase;
    private final long spanLastOffset;
    private final int bucketShift;
    private final int[] bucketFirst;

    /**
     * Stripe {@code k} lives at index {@code (k + 1) * STRIPE_SPACING}: a padding stripe's worth of
     * slots at each end keeps the counters off the cache lines of the array header and of whatever
     * the allocator placed next to the array (this snapshot's own fields, read on every map).
     */
    private final long[] leases = new long[(STRIPES + 2) * STRIPE_SPACING];
    private volatile boolean retired;
    final CompletableFuture<Void> drained = new CompletableFuture<>();

    AddressMap(List<Region> list, MemorySegment backing, boolean closed) {
        this.closed = closed;
        regions = list.toArray(new Region[0]);
        Arrays.sort(regions, Comparator.comparing(Region::base, Long::compareUnsigned));
        int n = regions.length;
        bases = new long[n];
        lasts = new long[n];
        hot = new long[n * HOT_STRIDE];
        for (int i = 0; i < n; i++) {
            Region r = regions[i];
            bases[i] = r.base();
            lasts[i] = r.last();
            if (i > 0 && Long.compareUnsigned(bases[i], lasts[i - 1]) <= 0) {
                throw new IllegalArgumentException(String.format("region '%s' [0x%x-0x%x] overlaps '%s' [0x%x-0x%x]",
                        r.name(), r.base(), r.last(), regions[i - 1].name(), bases[i - 1], lasts[i - 1]));
            }
            long offset = switch (r) {
                case RamRegion ram -> ram.backingOffset();
                case RomRegion rom -> rom.backingOffset();
                case MmioRegion mmio -> -1;
            };
            if (offset >= 0) {
                long available = backing == null ? 0 : backing.byteSize();
                if (offset > available || r.size() > available - offset) {
                    throw new IllegalArgumentException(String.format(
                            "region '%s' needs backing bytes [0x%x, +0x%x) but the RAM backing has 0x%x bytes",
                            r.name(), offset, r.size(), available));
                }
            }
            int h = i * HOT_STRIDE;
            hot[h + HOT_BASE] = bases[i];
            hot[h + HOT_LAST] = lasts[i];
            hot[h + HOT_BACKING] = offset;
            hot[h + HOT_DIRECT] = switch (r) {
                case RamRegion ram -> DIRECT_TO_DEVICE | DIRECT_FROM_DEVICE;
                case RomRegion rom -> DIRECT_TO_DEVICE;
                case MmioRegion mmio -> 0;
            };
        }
        for (int i = n - 1; i >= 0; i--) {
            int h = i * HOT_STRIDE;
            int next = h + HOT_STRIDE;
            boolean joinsNext = i + 1 < n && lasts[i] + 1 == bases[i + 1] && lasts[i] != -1
                    && hot[next + HOT_BACKING] == hot[h + HOT_BACKING] + regions[i].size();
            boolean writable = (hot[h + HOT_DIRECT] & DIRECT_FROM_DEVICE) != 0;
            boolean readable = (hot[h + HOT_DIRECT] & DIRECT_TO_DEVICE) != 0;
            hot[h + HOT_WRITE_RUN] = writable && joinsNext && (hot[next + HOT_DIRECT] & DIRECT_FROM_DEVICE) != 0
                    ? hot[next + HOT_WRITE_RUN] : lasts[i];
            hot[h + HOT_READ_RUN] = readable && joinsNext && hot[next + HOT_BACKING] >= 0
                    ? hot[next + HOT_READ_RUN] : lasts[i];
        }
        if (n == 0) {
            spanBase = 0;
            spanLastOffset = 0;
            bucketShift = 0;
            bucketFirst = null;
        } else {
            spanBase = bases[0];
            spanLastOffset = lasts[n - 1] - bases[0];
            int spanBits = 64 - Long.numberOfLeadingZeros(spanLastOffset);
            int bucketBits = Math.min(MAX_BUCKET_BITS, 34 - Integer.numberOfLeadingZeros(Math.max(1, n - 1)));
            bucketShift = Math.max(0, spanBits - bucketBits);
            int used = (int) (spanLastOffset >>> bucketShift) + 1;
            bucketFirst = new int[used + 1];
            int r = 0;
            for (int b = 0; b < used; b++) {
                long start = spanBase + ((long) b << bucketShift);
                while (Long.compareUnsigned(lasts[r], start) < 0) {
                    r++; // stops at n - 1 at the latest: the last region reaches the span's end
                }
                bucketFirst[b] = r;
            }
            bucketFirst[used] = n - 1;
        }
    }

    List<Region> regions() {
        return List.of(regions);
    }

    /**
     * @return the index of the region containing {@code address}, or -1 if it is unassigned.
     *         One bucket load and, for all but pathological layouts, a scan of one or two
     *         regions, whatever the region count; never worse than a binary search.
     */
    int find(long address) {
        long offset = address - spanBase;
        if (bucketFirst == null || Long.compareUnsigned(offset, spanLastOffset) > 0) {
            return -1;
        }
        int i = bucketFirst[(int) (offset >>> bucketShift)];
        if (Long.compareUnsigned(address, hot[i * HOT_STRIDE + HOT_LAST]) > 0) {
            // Past the bucket's first region: then the next one (which exists, as the last region
            // reaches the span's end), unless the bucket holds more than two regions.
            i++;
            if (Long.compareUnsigned(address, hot[i * HOT_STRIDE + HOT_LAST]) > 0) {
                return findPast(address, i, (int) (offset >>> bucketShift));
            }
        }
        // Regions before i end before the address and regions after i start after lasts[i]: i is
        // the only candidate. Kept short so that map() still inlines into device code, which is
        // what lets C2 scalar-replace the mapping (0 bytes per map and unmap).
        return Long.compareUnsigned(hot[i * HOT_STRIDE + HOT_BASE], address) <= 0 ? i : -1;
    }

    /** The rest of {@link #find}: the address lies past the bucket's first region. */
    private int findPast(long address, int first, int bucket) {
        int hi = bucketFirst[bucket + 1];
        if (hi - first > LINEAR_SCAN) {
            return binarySearch(address, first, hi);
        }
        int i = first;
        while (i < hi && Long.compareUnsigned(bases[i + 1], address) <= 0) {
            i++;
        }
        return Long.compareUnsigned(bases[i], address) <= 0 && Long.compareUnsigned(address, lasts[i]) <= 0 ? i : -1;
    }

    private int binarySearch(long address, int from, int to) {
        int i = firstAbove(address, from, to) - 1;
        return i >= from && Long.compareUnsigned(address, lasts[i]) <= 0 ? i : -1;
    }

    /** @return the first index in {@code [from, to]} whose base is above {@code address}, or {@code to + 1} */
    private int firstAbove(long address, int from, int to) {
        int lo = from;
        int hi = to;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(bases[mid], address) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    /**
     * @return bytes from {@code address} (unassigned) to the next region, or to the top of the
     *         address space; 0 stands for 2<sup>64</sup> (address 0 in an empty map)
     */
    long unassignedExtent(long address) {
        int next = firstAbove(address, 0, bases.length - 1);
        return next < bases.length ? bases[next] - address : -address;
    }

    Region region(int index) {
        return regions[index];
    }

    long base(int index) {
        return hot[index * HOT_STRIDE + HOT_BASE];
    }

    long last(int index) {
        return hot[index * HOT_STRIDE + HOT_LAST];
    }

    long backingOffset(int index) {
        return hot[index * HOT_STRIDE + HOT_BACKING];
    }

    /** @return whether DMA in that direction may use the backing directly at region {@code index} */
    boolean isDirect(int index, DmaDirection direction) {
        long flag = direction == DmaDirection.FROM_DEVICE ? DIRECT_FROM_DEVICE : DIRECT_TO_DEVICE;
        return (hot[index * HOT_STRIDE + HOT_DIRECT] & flag) != 0;
    }

    long directRunLast(int index, DmaDirection direction) {
        return hot[index * HOT_STRIDE + (direction == DmaDirection.FROM_DEVICE ? HOT_WRITE_RUN : HOT_READ_RUN)];
    }

    boolean contains(Region region) {
        for (Region r : regions) {
            if (r == region) {
                return true;
            }
        }
        return false;
    }

    /** @return the stripe to hand back to {@link #release}, or -1 if this snapshot is retired */
    int acquire() {
        int stripe = (int) ((Thread.currentThread().threadId() & (STRIPES - 1)) + 1) * STRIPE_SPACING;
        COUNT.getAndAdd(leases, stripe, 1L);
        if (retired) {
            release(stripe);
            return -1;
        }
        return stripe;
    }

    void release(int stripe) {
        COUNT.getAndAdd(leases, stripe, -1L);
        if (retired && liveMappings() == 0) {
            drained.complete(null);
        }
    }

    void retire() {
        retired = true;
        if (liveMappings() == 0) {
            drained.complete(null);
        }
    }

    long liveMappings() {
        long sum = 0;
        for (int i = STRIPE_SPACING; i <= STRIPES * STRIPE_SPACING; i += STRIPE_SPACING) {
            sum += (long) COUNT.getVolatile(leases, i);
        }
        return sum;
    }
}
