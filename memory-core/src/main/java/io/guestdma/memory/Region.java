package io.guestdma.memory;

/**
 * A piece of the guest physical address space: {@code [base, base + size)} with addresses treated
 * as unsigned 64-bit numbers. A region may end exactly at 2<sup>64</sup> but not wrap past it.
 * Regions of one {@link GuestMemory} never overlap; adding an overlapping one is rejected.
 */
public sealed interface Region permits RamRegion, RomRegion, MmioRegion {
    /**
     * {@return a name unique within its address space, used by {@link GuestMemory#removeRegion} and
     * in messages}
     */
    String name();

    /** {@return the first guest physical address of the region} */
    long base();

    /** {@return the length in bytes, at least 1} */
    long size();

    /** {@return the last guest physical address of the region (inclusive, unsigned)} */
    default long last() {
        return base() + size() - 1;
    }

    /**
     * {@return whether the region covers it}
     *
     * @param address an unsigned guest physical address
     */
    default boolean contains(long address) {
        return Long.compareUnsigned(address, base()) >= 0 && Long.compareUnsigned(address, last()) <= 0;
    }

    /**
     * Checks the invariants every region shares; the region records' constructors call it.
     *
     * @param name the region's name
     * @param base its first address
     * @param size its size in bytes
     * @throws IllegalArgumentException if the name is empty, the size is not positive, or the
     *                                  region would wrap past 2<sup>64</sup>
     */
    static void check(String name, long base, long size) {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException("region name must be non-empty");
        }
        if (size <= 0) {
            throw new IllegalArgumentException("region '" + name + "': size must be positive, was " + size);
        }
        if (base != 0 && Long.compareUnsigned(size, -base) > 0) {
            throw new IllegalArgumentException(String.format(
                    "region '%s': 0x%x + 0x%x wraps past the top of the 64-bit address space", name, base, size));
        }
    }
}
