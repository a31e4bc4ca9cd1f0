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
    static final AddressMap CLOSED = new AddressMap(List.of(), backing -> null, true);

    /*
     * Threads pick a stripe by id, so two device threads share one when their ids are equal
     * modulo the count: with 8 that was one pair in 8, and virtio-blk's two queues on two threads
     * then ran at one queue's speed for a whole fork. 64 stripes (8 KiB per snapshot) make it one
     * in 64.
     */
    private static final int STRIPES = 64;
    private static final int STRIPE_SPACING = 16; // 128 bytes: no false sharing between stripes
    private static final VarHandle COUNT = MethodHandles.arrayElementVarHandle(long[].class);

    private final Region[] regions;
    /** Per region: where its bytes live (null for MMIO). */
    private final Attached[] slots;
    /**
     * Per region, two entries: {@code [2i]} the backing's memory (what writes and the copy path use),
     * {@code [2i + 1]} a read-only view of it (TO_DEVICE maps). One load on the map path, whichever
     * backing the region lives in.
     */
    private final MemorySegment[] segments;
    /** Per region: what the map path reads about it, as one object (see {@link Extent}). */
    private final Extent[] extents;
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
    /** For RAM and ROM: the RAM address (dirty-log index) of the region's first byte. */
    private static final int HOT_RAM = 6;
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
    /** The same as {@link #bucketFirst}, as the regions' extents: what the map path looks up. */
    private final Extent[] bucketExtent;

    /**
     * Stripe {@code k} lives at index {@code (k + 1) * STRIPE_SPACING}: a padding stripe's worth of
     * slots at each end keeps the counters off the cache lines of the array header and of whatever
     * the allocator placed next to the array (this snapshot's own fields, read on every map).
     */
    private final long[] leases = new long[(STRIPES + 2) * STRIPE_SPACING];
    private volatile boolean retired;
    final CompletableFuture<Void> drained = new CompletableFuture<>();

    /**
     * @param list     the regions, in any order
     * @param backings where a RAM or ROM region's bytes live: the slot of its own backing, or for
     *                 null the address space's default slot (null if it has none)
     * @param closed   whether this is the closed address space's map
     * @throws IllegalArgumentException if regions overlap or one lies outside its backing
     */
    AddressMap(List<Region> list, java.util.function.Function<RamBacking, Attached> backings, boolean closed) {
        this.closed = closed;
        regions = list.toArray(new Region[0]);
        Arrays.sort(regions, Comparator.comparing(Region::base, Long::compareUnsigned));
        int n = regions.length;
        slots = new Attached[n];
        segments = new MemorySegment[2 * n];
        extents = new Extent[n];
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
            int h = i * HOT_STRIDE;
            if (offset >= 0) {
                RamBacking own = switch (r) {
                    case RamRegion ram -> ram.backing();
                    case RomRegion rom -> rom.backing();
                    case MmioRegion mmio -> null;
                };
                Attached slot = backings.apply(own);
                long available = slot == null ? 0 : slot.segment().byteSize();
                if (offset > available || r.size() > available - offset) {
                    throw new IllegalArgumentException(String.format(
                            "region '%s' needs backing bytes [0x%x, +0x%x) but the %s has 0x%x bytes",
                            r.name(), offset, r.size(), own == null ? "RAM backing" : "region's own backing",
                            available));
                }
                slots[i] = slot;
                segments[2 * i] = slot.segment();
                segments[2 * i + 1] = slot.readOnly();
                hot[h + HOT_RAM] = slot.ramBase() + offset;
            }
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
                    && slots[i] != null && slots[i] == slots[i + 1]
                    && hot[next + HOT_BACKING] == hot[h + HOT_BACKING] + regions[i].size();
            boolean writable = (hot[h + HOT_DIRECT] & DIRECT_FROM_DEVICE) != 0;
            boolean readable = (hot[h + HOT_DIRECT] & DIRECT_TO_DEVICE) != 0;
            hot[h + HOT_WRITE_RUN] = writable && joinsNext && (hot[next + HOT_DIRECT] & DIRECT_FROM_DEVICE) != 0
                    ? hot[next + HOT_WRITE_RUN] : lasts[i];
            hot[h + HOT_READ_RUN] = readable && joinsNext && hot[next + HOT_BACKING] >= 0
                    ? hot[next + HOT_READ_RUN] : lasts[i];
        }
        for (int i = 0; i < n; i++) {
            int h = i * HOT_STRIDE;
            extents[i] = new Extent(hot[h + HOT_BASE], hot[h + HOT_LAST], hot[h + HOT_BACKING], hot[h + HOT_RAM],
                    hot[h + HOT_READ_RUN], hot[h + HOT_WRITE_RUN], (hot[h + HOT_DIRECT] & DIRECT_TO_DEVICE) != 0,
                    (hot[h + HOT_DIRECT] & DIRECT_FROM_DEVICE) != 0, segments[2 * i], segments[2 * i + 1]);
        }
        if (n == 0) {
            spanBase = 0;
            spanLastOffset = 0;
            bucketShift = 0;
            bucketFirst = null;
            bucketExtent = null;
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
            bucketExtent = new Extent[used];
            for (int b = 0; b < used; b++) {
                bucketExtent[b] = extents[bucketFirst[b]];
            }
        }
    }

    /**
     * What {@link GuestMemory#map}'s zero-copy path reads about a region, as final fields of one
     * object: each read is a plain field load. Read from {@link #hot} instead, every one would be an
     * array access with its own range check and deoptimisation exit, and those exits alone made the
     * map path's machine code too large for C2 to inline into device code (InlineSmallCode), which
     * is what lets it scalar-replace the mapping.
     *
     * @param base          first guest address of the region
     * @param last          its last guest address
     * @param backingOffset where the region starts in its backing's segment (-1 for MMIO)
     * @param ramAddress    the RAM address (dirty-log index) of its first byte
     * @param readRunLast   the last address of the backing-contiguous run from here, for TO_DEVICE
     * @param writeRunLast  the same for FROM_DEVICE
     * @param directRead    whether TO_DEVICE DMA may use the backing directly (RAM, ROM)
     * @param directWrite   whether FROM_DEVICE DMA may (RAM)
     * @param segment       its backing's memory
     * @param readOnly      the same, read-only
     */
    record Extent(long base, long last, long backingOffset, long ramAddress, long readRunLast, long writeRunLast,
                  boolean directRead, boolean directWrite, MemorySegment segment, MemorySegment readOnly) {
        /** {@return whether DMA in that direction may use the backing directly} */
        boolean direct(DmaDirection direction) {
            return direction == DmaDirection.FROM_DEVICE ? directWrite : directRead;
        }

        /** {@return the last address of the direct run from the region's start in that direction} */
        long runLast(DmaDirection direction) {
            return direction == DmaDirection.FROM_DEVICE ? writeRunLast : readRunLast;
        }

        /** {@return the memory a map in that direction slices: read-only for TO_DEVICE} */
        MemorySegment memory(DmaDirection direction) {
            return direction == DmaDirection.TO_DEVICE ? readOnly : segment;
        }
    }

    /**
     * {@link #find} for the map path: the extent of the region containing {@code address}, or null.
     * The common case (the address is in its bucket's first region) is one array load and two
     * field compares, with nothing that can deoptimise but the bucket's range check.
     */
    Extent findExtent(long address) {
        long offset = address - spanBase;
        if (bucketExtent == null || Long.compareUnsigned(offset, spanLastOffset) > 0) {
            return null;
        }
        Extent first = bucketExtent[(int) (offset >>> bucketShift)];
        if (Long.compareUnsigned(address, first.last()) <= 0) {
            return Long.compareUnsigned(first.base(), address) <= 0 ? first : null;
        }
        return extentAt(find(address));
    }

    private Extent extentAt(int index) {
        return index < 0 ? null : extents[index];
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

    /** @return where region {@code index} starts in its backing's segment, or -1 for MMIO */
    long backingOffset(int index) {
        return hot[index * HOT_STRIDE + HOT_BACKING];
    }

    /** @return the RAM address (dirty-log index) of region {@code index}'s first byte; RAM and ROM only */
    long ramAddress(int index) {
        return hot[index * HOT_STRIDE + HOT_RAM];
    }

    /** @return the memory region {@code index} lives in (writable for RAM); RAM and ROM only */
    MemorySegment segment(int index) {
        return segments[2 * index];
    }

    /** @return the memory a map of region {@code index} in that direction slices: read-only for TO_DEVICE */
    MemorySegment segment(int index, DmaDirection direction) {
        return segments[2 * index + (direction == DmaDirection.TO_DEVICE ? 1 : 0)];
    }

    /** @return the backing region {@code index} lives in, as this address space uses it; null for MMIO */
    Attached slot(int index) {
        return slots[index];
    }

    /** @return whether any region of this snapshot lives in {@code backing} */
    boolean uses(RamBacking backing) {
        for (Attached slot : slots) {
            if (slot != null && slot.backing() == backing) {
                return true;
            }
        }
        return false;
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

    /** {@return whether a region change replaced this snapshot (one volatile read)} */
    boolean isRetired() {
        return retired;
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
