package io.guestdma.memory;

/**
 * An IOMMU's translation function, as a {@link DeviceAddressSpace} asks it: QEMU's
 * {@code IOMMUMemoryRegionClass.translate}. Implementations walk their page tables (typically in
 * guest RAM, through the root address space) and say where a page goes and what is allowed.
 *
 * <p>The device space caches what it is told (an IOTLB) until {@link DeviceAddressSpace#invalidate}
 * drops it; an IOMMU model calls that when the guest invalidates its page tables.
 */
@FunctionalInterface
public interface Iommu {
    /**
     * Translates the page containing {@code iova}.
     *
     * @param iova      the device (I/O virtual) address being accessed
     * @param direction the access: TO_DEVICE reads memory, FROM_DEVICE writes it
     * @return the translation of the page around {@code iova}; {@link IommuTranslation#fault}
     *         when nothing is mapped there
     */
    IommuTranslation translate(long iova, DmaDirection direction);
}
