package io.guestdma.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * A pinned view of a small range of guest RAM for structures a device reads and writes all the
 * time, such as a virtqueue's ring indices and descriptor table: QEMU's {@code MemoryRegionCache}.
 * The range is looked up once, by {@link GuestMemory#ramView}; afterwards an access is one load or
 * store on the backing, with the ordering the caller asks for, and no region lookup.
 *
 * <p><b>Accessors.</b> Offsets are relative to the view's first byte; values are in the view's byte
 * order. Plain loads and stores may be unaligned. Acquire loads, release stores and the atomic
 * operations ({@code compareAndSet}, {@code getAndAdd}, {@code getAndBitwiseOr} on 4 and 8 bytes)
 * are single instructions and need natural alignment of the guest address, as on hardware.
 * Every store marks its page in the {@link DirtyLog}.
 *
 * <p><b>Validity.</b> A region change (add, remove, transaction) marks every live view of its
 * address space stale. The next access notices it (one volatile read of the view's own field, the
 * only check an access makes besides FFM's bounds and liveness checks) and looks the range up
 * again: if it is still the same RAM, the view carries on; if it is not (the RAM was removed or
 * replaced), the access throws {@link DmaAccessException}, which a device reports as a failed ring
 * (virtio's DEVICE_NEEDS_RESET). The view never reaches memory that is no longer guest RAM: an
 * access that races with the unmapping of a removed region's own backing (the view holds no lease)
 * fails with IllegalStateException from the closed segment, never with a fault.
 *
 * <p>Thread-safe: several device threads may use one view (atomic accessors are atomic across
 * threads and with the guest).
 */
public final class RamView {
    // VarHandles are only fast when they are constants: one static final handle per order.
    private static final VarHandle SHORT_LE = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle();
    private static final VarHandle SHORT_BE = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.BIG_ENDIAN).varHandle();
    private static final VarHandle INT_LE = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle();
    private static final VarHandle INT_BE = ValueLayout.JAVA_INT.withOrder(ByteOrder.BIG_ENDIAN).varHandle();
    private static final VarHandle LONG_LE = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle();
    private static final VarHandle LONG_BE = ValueLayout.JAVA_LONG.withOrder(ByteOrder.BIG_ENDIAN).varHandle();
    // The same for the plain accessors: a layout held in a field is not a constant, and an access
    // through it goes the generic way (the layout's VarHandle looked up and invoked out of line),
    // several times the cost of the load itself on a ring's descriptor and index reads.
    private static final ValueLayout.OfShort PLAIN_SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort PLAIN_SHORT_BE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt PLAIN_INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt PLAIN_INT_BE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfLong PLAIN_LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong PLAIN_LONG_BE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    private final GuestMemory memory;
    private final long address;
    private final long length;
    private final boolean writable;
    /** The backing the range lives in and where in its segment: what "still the same RAM" compares. */
    private final Attached slot;
    private final long segmentOffset;
    /** The RAM address (dirty-log index) of the first byte. */
    private final long ramAddress;
    private final MemorySegment segment;
    private final boolean bigEndian;
    /**
     * What an access must check before it touches the segment, as bits: {@link #STALE} once a region
     * change happened since the range was last looked up, {@link #THROUGH_IOMMU} for good on a view
     * made through an IOMMU (its translation generation is checked on every access),
     * {@link #BIG_ENDIAN} for good on a big-endian view. Zero, the common case, is one volatile load
     * of this object's own field and one branch per access.
     */
    private volatile int checks;
    private static final int STALE = 1;
    private static final int THROUGH_IOMMU = 2;
    /** Set for good on a big-endian view, so that the acquire loads' one test also covers byte order. */
    private static final int BIG_ENDIAN = 4;
    private static final VarHandle CHECKS;

    static {
        try {
            CHECKS = java.lang.invoke.MethodHandles.lookup().findVarHandle(RamView.class, "checks", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Made through a device space's IOMMU: the space, the device address and the translation generation. */
    private DeviceAddressSpace space;
    private long deviceAddress;
    private DeviceAddressSpace.Epoch epoch;

    RamView(GuestMemory memory, long address, long length, ByteOrder order, boolean writable,
            Attached slot, long segmentOffset, long ramAddress, MemorySegment backing) {
        this.memory = memory;
        this.address = address;
        this.length = length;
        this.writable = writable;
        this.slot = slot;
        this.segmentOffset = segmentOffset;
        this.ramAddress = ramAddress;
        MemorySegment slice = backing.asSlice(segmentOffset, length);
        this.segment = writable ? slice : slice.asReadOnly();
        this.bigEndian = order == ByteOrder.BIG_ENDIAN;
        this.checks = bigEndian ? BIG_ENDIAN : 0;
    }

    /** {@return the guest physical address of the view's first byte} */
    public long address() {
        return address;
    }

    /** {@return the view's length in bytes} */
    public long byteSize() {
        return length;
    }

    /** {@return whether stores are allowed (the range is RAM, not ROM)} */
    public boolean isWritable() {
        return writable;
    }

    /** {@return the byte order of the multi-byte accessors} */
    public ByteOrder order() {
        return bigEndian ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
    }

    /** Binds a view made for a device space's IOMMU translation; called before it is handed out. */
    RamView through(DeviceAddressSpace via, long address, DeviceAddressSpace.Epoch generation) {
        if (generation != null) {
            this.space = via;
            this.deviceAddress = address;
            this.epoch = generation;
            CHECKS.getAndBitwiseOr(this, THROUGH_IOMMU); // atomic: a region change may be marking it stale
        }
        return this;
    }

    /** Called by the address space after every region change (the new map is already current). */
    void regionsChanged() {
        CHECKS.getAndBitwiseOr(this, STALE);
    }

    /**
     * The check before every access: one volatile load of {@link #checks}; then the access is the
     * VarHandle operation on the final segment (FFM checks its bounds and liveness).
     */
    private MemorySegment live() {
        if (checks != 0) {
            recheck();
        }
        return segment;
    }

    private void recheck() {
        if ((checks & STALE) != 0) {
            // Cleared before the lookup, so that a region change during it marks the view again.
            CHECKS.getAndBitwiseAnd(this, ~STALE);
            try {
                revalidate();
            } catch (RuntimeException | Error e) {
                regionsChanged(); // still stale: every later access fails the same way
                throw e;
            }
        }
        DeviceAddressSpace.Epoch e = epoch;
        if (e != null && e.retired) {
            retranslate();
        }
    }

    /** After an IOMMU invalidation: the device address must still reach the same RAM, permitted. */
    private void retranslate() {
        DeviceAddressSpace.Epoch now = space.currentEpoch(); // before the route: a later flip retires it
        DeviceAddressSpace.Route r = new DeviceAddressSpace.Route();
        space.route(deviceAddress, length, writable ? DmaDirection.FROM_DEVICE : DmaDirection.TO_DEVICE, r);
        if (r.kind != DeviceAddressSpace.ROUTE_ROOT || r.length != length || r.rootAddress != address) {
            throw new DmaAccessException(String.format("device %s: 0x%x (+0x%x) no longer translates to the RAM"
                    + " this view was made for", space.name(), deviceAddress, length), deviceAddress, length);
        }
        epoch = now;
    }

    private MemorySegment writableLive(long offset) {
        MemorySegment s = live();
        if (!writable) {
            throw new UnsupportedOperationException(String.format("guest 0x%x is ROM: the view is read-only",
                    address + offset));
        }
        return s;
    }

    /** Marks a store that has happened (so it was inside the view) in the dirty log. */
    private void dirty(long offset, long size) {
        memory.dirtyLog().mark(ramAddress + offset, size);
    }

    private void revalidate() {
        AddressMap now = memory.snapshot();
        int i = now.find(address);
        DmaDirection need = writable ? DmaDirection.FROM_DEVICE : DmaDirection.TO_DEVICE;
        boolean same = i >= 0 && now.isDirect(i, need)
                && Long.compareUnsigned(now.directRunLast(i, need), address + length - 1) >= 0
                && now.slot(i) == slot && now.backingOffset(i) + (address - now.base(i)) == segmentOffset;
        if (!same) {
            throw new DmaAccessException(String.format("guest 0x%x (+0x%x) is no longer the RAM this view was made "
                    + "for", address, length), address, length);
        }
    }

    /**
     * {@return the byte there}
     *
     * @param offset from the view's start
     * @throws IndexOutOfBoundsException if offset is outside the view
     * @throws DmaAccessException        if the range is no longer RAM
     */
    public byte getByte(long offset) {
        return live().get(ValueLayout.JAVA_BYTE, offset);
    }

    /**
     * {@return the 16-bit value there (plain load)}
     *
     * @param offset from the view's start
     * @throws IndexOutOfBoundsException if the access is outside the view
     * @throws DmaAccessException        if the range is no longer RAM
     */
    public short getShort(long offset) {
        MemorySegment s = live();
        return bigEndian ? s.get(PLAIN_SHORT_BE, offset) : s.get(PLAIN_SHORT_LE, offset);
    }

    /**
     * {@return the 32-bit value there (plain load)}
     *
     * @param offset from the view's start
     * @throws IndexOutOfBoundsException if the access is outside the view
     * @throws DmaAccessException        if the range is no longer RAM
     */
    public int getInt(long offset) {
        MemorySegment s = live();
        return bigEndian ? s.get(PLAIN_INT_BE, offset) : s.get(PLAIN_INT_LE, offset);
    }

    /**
     * {@return the 64-bit value there (plain load)}
     *
     * @param offset from the view's start
     * @throws IndexOutOfBoundsException if the access is outside the view
     * @throws DmaAccessException        if the range is no longer RAM
     */
    public long getLong(long offset) {
        MemorySegment s = live();
        return bigEndian ? s.get(PLAIN_LONG_BE, offset) : s.get(PLAIN_LONG_LE, offset);
    }

    /**
     * A load with acquire ordering: later loads (of the ring entries the index publishes) see what
     * the guest wrote before it released the index.
     *
     * @param offset from the view's start, 2-byte aligned in guest memory
     * @return the 16-bit value
     * @throws IllegalArgumentException  if the guest address is not 2-byte aligned
     * @throws IndexOutOfBoundsException if the access is outside the view
     * @throws DmaAccessException        if the range is no longer RAM
     */
    public short getShortAcquire(long offset) {
        if (checks == 0) { // little-endian, nothing to re-check: a ring index's load is this and FFM's checks
            return (short) SHORT_LE.getAcquire(segment, offset);
        }
        MemorySegment s = live();
        return bigEndian ? (short) SHORT_BE.getAcquire(s, offset) : (short) SHORT_LE.getAcquire(s, offset);
    }

    /**
     * {@return the 32-bit value, loaded with acquire ordering}
     *
     * @param offset from the view's start, 4-byte aligned in guest memory
     * @throws IllegalArgumentException  if the guest address is not 4-byte aligned
     * @throws IndexOutOfBoundsException if the access is outside the view
     * @throws DmaAccessException        if the range is no longer RAM
     */
    public int getIntAcquire(long offset) {
        if (checks == 0) { // little-endian, nothing to re-check: a ring index's load is this and FFM's checks
            return (int) INT_LE.getAcquire(segment, offset);
        }
        MemorySegment s = live();
        return bigEndian ? (int) INT_BE.getAcquire(s, offset) : (int) INT_LE.getAcquire(s, offset);
    }

    /**
     * {@return the 64-bit value, loaded with acquire ordering}
     *
     * @param offset from the view's start, 8-byte aligned in guest memory
     * @throws IllegalArgumentException  if the guest address is not 8-byte aligned
     * @throws IndexOutOfBoundsException if the access is outside the view
     * @throws DmaAccessException        if the range is no longer RAM
     */
    public long getLongAcquire(long offset) {
        if (checks == 0) { // little-endian, nothing to re-check: a ring index's load is this and FFM's checks
            return (long) LONG_LE.getAcquire(segment, offset);
        }
        MemorySegment s = live();
        return bigEndian ? (long) LONG_BE.getAcquire(s, offset) : (long) LONG_LE.getAcquire(s, offset);
    }

    /**
     * Stores a byte (plain) and marks its page dirty.
     *
     * @param offset from the view's start
     * @param value  the byte to store (plain)
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if offset is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public void setByte(long offset, byte value) {
        writableLive(offset).set(ValueLayout.JAVA_BYTE, offset, value);
        dirty(offset, 1);
    }

    /**
     * Stores a little-endian 16-bit value (plain) and marks its page dirty.
     *
     * @param offset from the view's start
     * @param value  the 16-bit value to store (plain)
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public void setShort(long offset, short value) {
        MemorySegment s = writableLive(offset);
        if (bigEndian) {
            s.set(PLAIN_SHORT_BE, offset, value);
        } else {
            s.set(PLAIN_SHORT_LE, offset, value);
        }
        dirty(offset, 2);
    }

    /**
     * Stores a little-endian 32-bit value (plain) and marks its page dirty.
     *
     * @param offset from the view's start
     * @param value  the 32-bit value to store (plain)
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public void setInt(long offset, int value) {
        MemorySegment s = writableLive(offset);
        if (bigEndian) {
            s.set(PLAIN_INT_BE, offset, value);
        } else {
            s.set(PLAIN_INT_LE, offset, value);
        }
        dirty(offset, 4);
    }

    /**
     * Stores a little-endian 64-bit value (plain) and marks its page dirty.
     *
     * @param offset from the view's start
     * @param value  the 64-bit value to store (plain)
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public void setLong(long offset, long value) {
        MemorySegment s = writableLive(offset);
        if (bigEndian) {
            s.set(PLAIN_LONG_BE, offset, value);
        } else {
            s.set(PLAIN_LONG_LE, offset, value);
        }
        dirty(offset, 8);
    }

    /**
     * A store with release ordering: the guest, loading it with acquire ordering, sees every store
     * this thread made before it (the used-ring entries a used index publishes).
     *
     * @param offset from the view's start, 2-byte aligned in guest memory
     * @param value  the 16-bit value
     * @throws IllegalArgumentException      if the guest address is not 2-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public void setShortRelease(long offset, short value) {
        MemorySegment s = writableLive(offset);
        if (bigEndian) {
            SHORT_BE.setRelease(s, offset, value);
        } else {
            SHORT_LE.setRelease(s, offset, value);
        }
        dirty(offset, 2);
    }

    /**
     * Stores a 32-bit value with release ordering and marks its page dirty.
     *
     * @param offset from the view's start, 4-byte aligned in guest memory
     * @param value  the 32-bit value, stored with release ordering
     * @throws IllegalArgumentException      if the guest address is not 4-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public void setIntRelease(long offset, int value) {
        MemorySegment s = writableLive(offset);
        if (bigEndian) {
            INT_BE.setRelease(s, offset, value);
        } else {
            INT_LE.setRelease(s, offset, value);
        }
        dirty(offset, 4);
    }

    /**
     * Stores a 64-bit value with release ordering and marks its page dirty.
     *
     * @param offset from the view's start, 8-byte aligned in guest memory
     * @param value  the 64-bit value, stored with release ordering
     * @throws IllegalArgumentException      if the guest address is not 8-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public void setLongRelease(long offset, long value) {
        MemorySegment s = writableLive(offset);
        if (bigEndian) {
            LONG_BE.setRelease(s, offset, value);
        } else {
            LONG_LE.setRelease(s, offset, value);
        }
        dirty(offset, 8);
    }

    /**
     * Atomically sets the 32-bit value to {@code update} if it is {@code expected}.
     *
     * @param offset   from the view's start, 4-byte aligned in guest memory
     * @param expected the value expected
     * @param update   the new value
     * @return whether the value was {@code expected} and is now {@code update}
     * @throws IllegalArgumentException      if the guest address is not 4-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public boolean compareAndSetInt(long offset, int expected, int update) {
        MemorySegment s = writableLive(offset);
        boolean result = bigEndian ? INT_BE.compareAndSet(s, offset, expected, update)
                : INT_LE.compareAndSet(s, offset, expected, update);
        dirty(offset, 4);
        return result;
    }

    /**
     * Atomically sets the 64-bit value to {@code update} if it is {@code expected}.
     *
     * @param offset   from the view's start, 8-byte aligned in guest memory
     * @param expected the value expected
     * @param update   the new value
     * @return whether the value was {@code expected} and is now {@code update}
     * @throws IllegalArgumentException      if the guest address is not 8-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public boolean compareAndSetLong(long offset, long expected, long update) {
        MemorySegment s = writableLive(offset);
        boolean result = bigEndian ? LONG_BE.compareAndSet(s, offset, expected, update)
                : LONG_LE.compareAndSet(s, offset, expected, update);
        dirty(offset, 8);
        return result;
    }

    /**
     * Atomically adds to the 32-bit value.
     *
     * @param offset from the view's start, 4-byte aligned in guest memory
     * @param delta  what to add
     * @return the value before the addition
     * @throws IllegalArgumentException      if the guest address is not 4-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public int getAndAddInt(long offset, int delta) {
        MemorySegment s = writableLive(offset);
        int result = bigEndian ? (int) INT_BE.getAndAdd(s, offset, delta)
                : (int) INT_LE.getAndAdd(s, offset, delta);
        dirty(offset, 4);
        return result;
    }

    /**
     * Atomically adds to the 64-bit value.
     *
     * @param offset from the view's start, 8-byte aligned in guest memory
     * @param delta  what to add
     * @return the value before the addition
     * @throws IllegalArgumentException      if the guest address is not 8-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public long getAndAddLong(long offset, long delta) {
        MemorySegment s = writableLive(offset);
        long result = bigEndian ? (long) LONG_BE.getAndAdd(s, offset, delta)
                : (long) LONG_LE.getAndAdd(s, offset, delta);
        dirty(offset, 8);
        return result;
    }

    /**
     * Atomically ORs bits into the 32-bit value (an interrupt status register in RAM, say).
     *
     * @param offset from the view's start, 4-byte aligned in guest memory
     * @param bits   the bits to set
     * @return the value before
     * @throws IllegalArgumentException      if the guest address is not 4-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public int getAndBitwiseOrInt(long offset, int bits) {
        MemorySegment s = writableLive(offset);
        int result = bigEndian ? (int) INT_BE.getAndBitwiseOr(s, offset, bits)
                : (int) INT_LE.getAndBitwiseOr(s, offset, bits);
        dirty(offset, 4);
        return result;
    }

    /**
     * Atomically ORs bits into the 64-bit value.
     *
     * @param offset from the view's start, 8-byte aligned in guest memory
     * @param bits   the bits to set
     * @return the value before
     * @throws IllegalArgumentException      if the guest address is not 8-byte aligned
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the access is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public long getAndBitwiseOrLong(long offset, long bits) {
        MemorySegment s = writableLive(offset);
        long result = bigEndian ? (long) LONG_BE.getAndBitwiseOr(s, offset, bits)
                : (long) LONG_LE.getAndBitwiseOr(s, offset, bits);
        dirty(offset, 8);
        return result;
    }

    /**
     * Copies bytes of the view into {@code destination} (a descriptor, a header).
     *
     * @param offset      from the view's start
     * @param destination where the bytes go; its size is the length
     * @throws IndexOutOfBoundsException if the range is outside the view
     * @throws DmaAccessException        if the range is no longer RAM
     */
    public void read(long offset, MemorySegment destination) {
        MemorySegment.copy(live(), offset, Objects.requireNonNull(destination, "destination"), 0,
                destination.byteSize());
    }

    /**
     * Copies {@code source} into the view and marks its pages dirty.
     *
     * @param offset from the view's start
     * @param source the bytes
     * @throws UnsupportedOperationException if the view is read-only (ROM)
     * @throws IndexOutOfBoundsException     if the range is outside the view
     * @throws DmaAccessException            if the range is no longer RAM
     */
    public void write(long offset, MemorySegment source) {
        MemorySegment.copy(source, 0, writableLive(offset), offset, source.byteSize());
        dirty(offset, source.byteSize());
    }

    @Override
    public String toString() {
        return String.format("RamView[0x%x +0x%x %s%s]", address, length, order(), writable ? "" : " read-only");
    }
}
