package io.guestdma.memory;

/**
 * One IOMMU translation: the naturally aligned block {@code [iova, iova + size)} of device
 * addresses goes to {@code [target, target + size)} in the root address space, with the given
 * permissions. QEMU's {@code IOMMUTLBEntry}.
 *
 * @param iova      first device address of the block, aligned to {@code size}
 * @param target    first root address it maps to, aligned to {@code size}
 * @param size      block size in bytes, a power of two of at least 4096 (a page, a huge page)
 * @param readable  whether the device may read it (TO_DEVICE)
 * @param writable  whether the device may write it (FROM_DEVICE)
 */
public record IommuTranslation(long iova, long target, long size, boolean readable, boolean writable) {
    /**
     * Checks the translation.
     *
     * @throws IllegalArgumentException if size is not a power of two of at least 4096, or iova or
     *                                  target is not aligned to it
     */
    public IommuTranslation {
        if (size < 4096 || Long.bitCount(size) != 1) {
            throw new IllegalArgumentException("translation size must be a power of two >= 4096, was " + size);
        }
        if (((iova | target) & (size - 1)) != 0) {
            throw new IllegalArgumentException(String.format("iova 0x%x and target 0x%x must be aligned to 0x%x",
                    iova, target, size));
        }
    }

    /**
     * No mapping for the page around {@code iova}: every access faults.
     *
     * @param iova the device address that was looked up
     * @return a translation that permits nothing
     */
    public static IommuTranslation fault(long iova) {
        return new IommuTranslation(iova & -4096L, 0, 4096, false, false);
    }

    /**
     * {@return whether the translation permits it}
     *
     * @param direction an access
     */
    public boolean permits(DmaDirection direction) {
        return direction == DmaDirection.TO_DEVICE ? readable : writable;
    }
}
