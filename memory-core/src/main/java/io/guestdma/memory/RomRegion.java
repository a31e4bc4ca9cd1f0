package io.guestdma.memory;

/**
 * Guest ROM: backed by {@link RamBacking} bytes like RAM, but guest and DMA writes are ignored, as
 * in QEMU. TO_DEVICE maps are direct; FROM_DEVICE maps are bounced and their write-back dropped.
 * The machine fills ROM through {@link GuestMemory#backing()} before the guest runs.
 *
 * @param name          unique name
 * @param base          first guest physical address
 * @param size          length in bytes
 * @param backingOffset where the bytes live in the backing
 */
public record RomRegion(String name, long base, long size, long backingOffset) implements Region {
    /**
     * Checks the components of a ROM region.
     *
     * @throws IllegalArgumentException if the name is empty, the size is not positive, the region
     *                                  wraps past 2<sup>64</sup> or backingOffset is negative
     */
    public RomRegion {
        Region.check(name, base, size);
        if (backingOffset < 0) {
            throw new IllegalArgumentException("region '" + name + "': negative backing offset " + backingOffset);
        }
    }
}
