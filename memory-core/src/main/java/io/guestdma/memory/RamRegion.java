package io.guestdma.memory;

/**
 * Guest RAM: {@code size} bytes of a {@link RamBacking}, starting at {@code backingOffset}: of the
 * address space's default backing, or of the region's own {@code backing} (a hot-plugged DIMM,
 * memory shared with another process). DMA maps it directly (zero copy) in both directions, and
 * writes through the copy path or FROM_DEVICE mappings mark the {@link DirtyLog}.
 *
 * <p>A region with its own backing hands that backing to the address space when it is added
 * ({@link GuestMemory#addRegion}, a {@link RegionTransaction}): from then on the address space
 * owns it, and unmaps it once no region uses it and the last DMA mapping through it is gone.
 *
 * @param name          unique name
 * @param base          first guest physical address
 * @param size          length in bytes
 * @param backingOffset where the bytes live in the backing
 * @param backing       the region's own backing, or null for the address space's default one
 */
public record RamRegion(String name, long base, long size, long backingOffset, RamBacking backing)
        implements Region {
    /**
     * Checks the components of a RAM region.
     *
     * @throws IllegalArgumentException if the name is empty, the size is not positive, the region
     *                                  wraps past 2<sup>64</sup>, backingOffset is negative, or its
     *                                  own backing is read-only or too small for it
     */
    public RamRegion {
        Region.check(name, base, size);
        RamBacking.checkRegion(name, size, backingOffset, backing, true);
    }

    /**
     * RAM in the address space's default backing.
     *
     * @param name          unique name
     * @param base          first guest physical address
     * @param size          length in bytes
     * @param backingOffset where the bytes live in the default backing
     * @throws IllegalArgumentException as the canonical constructor
     */
    public RamRegion(String name, long base, long size, long backingOffset) {
        this(name, base, size, backingOffset, null);
    }
}
