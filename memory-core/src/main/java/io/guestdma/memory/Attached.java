package io.guestdma.memory;

import java.lang.foreign.MemorySegment;

/**
 * A {@link RamBacking} as one address space uses it: its memory (and a read-only view of it, so that
 * TO_DEVICE slices take one step), and where it sits in the address space's RAM address space, the
 * index space of the {@link DirtyLog} (QEMU's {@code ram_addr_t}: each RAM block has an offset there).
 * The default backing sits at 0; each region's own backing gets a free range of its own.
 *
 * @param backing  the backing, or null for an address space without a default backing
 * @param segment  its memory (read-only if the backing is)
 * @param readOnly the same memory, read-only
 * @param ramBase  where its first byte sits in the RAM address space
 */
record Attached(RamBacking backing, MemorySegment segment, MemorySegment readOnly, long ramBase) {
    static Attached of(RamBacking backing, long ramBase) {
        MemorySegment segment = backing.segment();
        return new Attached(backing, segment, segment.asReadOnly(), ramBase);
    }
}
