package io.guestdma.memory;

import java.lang.foreign.MemorySegment;

/**
 * A piece of guest memory handed to a device by {@link GuestMemory#map}: either a slice of the RAM
 * backing itself (zero copy) or a bounce buffer standing in for MMIO, ROM or unassigned space.
 *
 * <p>{@link #length()} may be shorter than what was asked: a mapping never crosses from RAM into
 * non-RAM, and a bounce mapping is limited by the pool's free space. Map the rest separately.
 *
 * <p>A TO_DEVICE mapping's segment is read-only (the device only reads guest memory). A
 * FROM_DEVICE bounce segment starts with unspecified contents: the map API is for reads
 * <em>or</em> writes, never read-modify-write.
 *
 * <p>The mapping must be given back exactly once with {@link GuestMemory#unmap}, saying how many
 * bytes the device actually accessed. Until then the memory stays valid, even if its region is
 * removed or the {@link GuestMemory} is closed meanwhile. Reading its fields is thread-safe; the
 * segment may be used from any thread that the mapping was safely handed to.
 */
public final class DmaMapping implements MapResult {
    final GuestMemory owner;
    final AddressMap snapshot;
    final int leaseStripe;
    final MemorySegment bounceBuffer;
    final long backingOffset;
    /** Debug mode only: closing it revokes {@link #segment()}; null otherwise. */
    final java.lang.foreign.Arena debugScope;
    /** A bounce mapping of nothing (past 2^64, a disabled device space): nothing to write back. */
    final boolean nowhere;
    /** Set when made through an IOMMU: the translation generation it keeps from draining. */
    DeviceAddressSpace.Epoch iommuEpoch;
    private final long address;
    private final long length;
    private final DmaDirection direction;
    private final MemorySegment segment;
    private volatile boolean unmapped;

    DmaMapping(GuestMemory owner, AddressMap snapshot, int leaseStripe, long address, long length,
               DmaDirection direction, MemorySegment segment, MemorySegment bounceBuffer, long backingOffset,
               java.lang.foreign.Arena debugScope, boolean nowhere) {
        this.owner = owner;
        this.snapshot = snapshot;
        this.leaseStripe = leaseStripe;
        this.address = address;
        this.length = length;
        this.direction = direction;
        this.segment = segment;
        this.bounceBuffer = bounceBuffer;
        this.backingOffset = backingOffset;
        this.debugScope = debugScope;
        this.nowhere = nowhere;
    }

    /** A zero-copy mapping made through an IOMMU translation of {@code epoch}, outside debug mode. */
    DmaMapping(GuestMemory owner, AddressMap snapshot, int leaseStripe, long address, long length,
               DmaDirection direction, MemorySegment segment, long backingOffset, DeviceAddressSpace.Epoch epoch) {
        this(owner, snapshot, leaseStripe, address, length, direction, segment, null, backingOffset, null, false);
        this.iommuEpoch = epoch;
    }

    /**
     * {@return the guest physical address of the first mapped byte (through a device space: the
     * root address the device address went to; for bytes that go nowhere, the device address)}
     */
    public long address() {
        return address;
    }

    /** {@return the mapped length in bytes: at least 1, at most what was asked} */
    public long length() {
        return length;
    }

    /** {@return the direction given to {@link GuestMemory#map}} */
    public DmaDirection direction() {
        return direction;
    }

    /**
     * {@return whether this is a bounce buffer (the range is not RAM, or is ROM mapped for
     * writing)}
     */
    public boolean bounced() {
        return bounceBuffer != null;
    }

    /**
     * {@return the memory to access: {@link #length()} bytes, read-only for TO_DEVICE} Do not use it
     * after {@link GuestMemory#unmap}; in debug mode doing so throws IllegalStateException.
     */
    public MemorySegment segment() {
        return segment;
    }

    /** {@return whether {@link GuestMemory#unmap} has been called for this mapping} */
    public boolean isUnmapped() {
        return unmapped;
    }

    /** Records that the mapping was made through an IOMMU translation of {@code epoch}. */
    void throughIommu(DeviceAddressSpace.Epoch epoch) {
        iommuEpoch = epoch;
    }

    /** {@return true for the one caller that moves the mapping to the unmapped state} */
    boolean markUnmapped() {
        // A monitor, not a CAS: C2 elides the lock when the mapping does not escape the device
        // code that mapped it and then scalar-replaces the whole mapping (0 bytes per map/unmap),
        // which it will not do for an object that is the target of a CAS.
        synchronized (this) {
            if (unmapped) {
                return false;
            }
            unmapped = true;
            return true;
        }
    }

    @Override
    public String toString() {
        return String.format("DmaMapping[0x%x +0x%x %s%s%s]", address, length, direction,
                bounced() ? " bounced" : "", isUnmapped() ? " unmapped" : "");
    }
}
