package io.guestdma.memory;

/**
 * Guest ROM: backed by {@link RamBacking} bytes like RAM (the default backing's, or its own
 * {@code backing}'s, which may be read-only), but guest and DMA writes are ignored, as in QEMU.
 * TO_DEVICE maps are direct; FROM_DEVICE maps are bounced and their write-back dropped. The
 * machine fills ROM through the backing's segment ({@link GuestMemory#backing()} for the default
 * one) before the guest runs. Ownership of an own backing is as for {@link RamRegion}.
 *
 * @param name          unique name
 * @param base          first guest physical address
 * @param size          length in bytes
 * @param backingOffset where the bytes live in the backing
 * @param backing       the region's own backing, or null for the address space's default one
 */
public record RomRegion(String name, long base, long size, long backingOffset, RamBacking backing)
        implements Region {
    /**
     * Checks the components of a ROM region.
     *
     * @throws IllegalArgumentException if the name is empty, the size is not positive, the region
     *                                  wraps past 2<sup>64</sup>, backingOffset is negative, or its
     *                                  own backing is too small for it
     */
    public RomRegion {
        Region.check(name, base, size);
        RamBacking.checkRegion(name, size, backingOffset, backing, false);
    }

    /**
     * ROM in the address space's default backing.
     *
     * @param name          unique name
     * @param base          first guest physical address
     * @param size          length in bytes
     * @param backingOffset where the bytes live in the default backing
     * @throws IllegalArgumentException as the canonical constructor
     */
    public RomRegion(String name, long base, long size, long backingOffset) {
        this(name, base, size, backingOffset, null);
    }
}
