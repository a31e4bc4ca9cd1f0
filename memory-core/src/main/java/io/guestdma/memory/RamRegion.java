package io.guestdma.memory;

/**
 * Guest RAM: {@code size} bytes of the address space's {@link RamBacking}, starting at
 * {@code backingOffset}. DMA maps it directly (zero copy) in both directions, and writes through
 * the copy path or FROM_DEVICE mappings mark the {@link DirtyLog}.
 *
 * @param name          unique name
 * @param base          first guest physical address
 * @param size          length in bytes
 * @param backingOffset where the bytes live in the backing
 */
public record RamRegion(String name, long base, long size, long backingOffset) implements Region {
    /**
     * Checks the components of a RAM region.
     *
     * @throws IllegalArgumentException if the name is empty, the size is not positive, the region
     *                                  wraps past 2<sup>64</sup> or backingOffset is negative
     */
    public RamRegion {
        Region.check(name, base, size);
        if (backingOffset < 0) {
            throw new IllegalArgumentException("region '" + name + "': negative backing offset " + backingOffset);
        }
    }
}
