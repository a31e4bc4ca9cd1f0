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
    /** For RAM regions: the last address of the backing-contiguous RAM run that starts here. */
    private final long[] writableRunLast;
    /** For RAM and ROM regions: the same for reads (ROM can be read directly). */
    private final long[] readableRunLast;
    private final long[] backingOffsets;
    final boolean closed;

    private final long[] leases = new long[STRIPES * STRIPE_SPACING];
    private volatile boolean retired;
    final CompletableFuture<Void> drained = new CompletableFuture<>();

    AddressMap(List<Region> list, MemorySegment backing, boolean closed) {
        this.closed = closed;
        regions = list.toArray(new Region[0]);
        Arrays.sort(regions, Comparator.comparing(Region::base, Long::compareUnsigned));
        int n = regions.length;
        bases = new long[n];
        lasts = new long[n];
        backingOffsets = new long[n];
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
            backingOffsets[i] = offset;
        }
        writableRunLast = new long[n];
        readableRunLast = new long[n];
        for (int i = n - 1; i >= 0; i--) {
            boolean ram = regions[i] instanceof RamRegion;
            boolean readable = ram || regions[i] instanceof RomRegion;
            boolean joinsNext = i + 1 < n && lasts[i] + 1 == bases[i + 1] && lasts[i] != -1
                    && backingOffsets[i + 1] == backingOffsets[i] + regions[i].size();
            writableRunLast[i] = ram && joinsNext && regions[i + 1] instanceof RamRegion ? writableRunLast[i + 1] : lasts[i];
            readableRunLast[i] = readable && joinsNext && backingOffsets[i + 1] >= 0 ? readableRunLast[i + 1] : lasts[i];
        }
    }

    List<Region> regions() {
        return List.of(regions);
    }

    /** @return the index of the region containing {@code address}, or -1 if it is unassigned */
    int find(long address) {
        int lo = 0;
        int hi = bases.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(bases[mid], address) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return hi >= 0 && Long.compareUnsigned(address, lasts[hi]) <= 0 ? hi : -1;
    }

    /**
     * @return bytes from {@code address} (unassigned) to the next region, or to the top of the
     *         address space; 0 stands for 2<sup>64</sup> (address 0 in an empty map)
     */
    long unassignedExtent(long address) {
        int lo = 0;
        int hi = bases.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(bases[mid], address) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return lo < bases.length ? bases[lo] - address : -address;
    }

    Region region(int index) {
        return regions[index];
    }

    long base(int index) {
        return bases[index];
    }

    long last(int index) {
        return lasts[index];
    }

    long backingOffset(int index) {
        return backingOffsets[index];
    }

    /** @return whether DMA in that direction may use the backing directly at region {@code index} */
    boolean isDirect(int index, DmaDirection direction) {
        Region r = regions[index];
        return r instanceof RamRegion || (r instanceof RomRegion && direction == DmaDirection.TO_DEVICE);
    }

    long directRunLast(int index, DmaDirection direction) {
        return direction == DmaDirection.FROM_DEVICE ? writableRunLast[index] : readableRunLast[index];
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
        int stripe = (int) (Thread.currentThread().threadId() & (STRIPES - 1)) * STRIPE_SPACING;
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
        for (int i = 0; i < leases.length; i += STRIPE_SPACING) {
            sum += (long) COUNT.getVolatile(leases, i);
        }
        return sum;
    }
}
