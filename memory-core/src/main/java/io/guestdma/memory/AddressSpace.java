package io.guestdma.memory;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.concurrent.Executor;

/**
 * The consumer side of guest memory: what device code uses to reach memory, and nothing of what
 * builds it (regions, backings, closing). QEMU's {@code AddressSpace} as a device sees it; rust-vmm
 * vm-memory's {@code GuestMemory} trait.
 *
 * <p>Two kinds exist. {@link GuestMemory} is the root, the machine's physical address space.
 * A {@link DeviceAddressSpace} is one device's view of it, what a PCI function's bus master sees:
 * it can be disabled (every access then fails as on hardware), can be a window onto part of the
 * root, and can go through an {@link Iommu}. Device models take an {@code AddressSpace} and work
 * the same on both; {@link DmaStream}, {@link DmaPacket} and the block layer's {@code DmaBlockIo}
 * accept either.
 *
 * <p>Addresses are unsigned 64-bit device addresses (guest physical addresses for the root, I/O
 * virtual addresses behind an IOMMU). Results follow QEMU's {@code MemTxResult}: copy-path
 * accesses return an {@link AccessResult}; maps return {@link MapResult}. Thread-safe.
 */
public sealed interface AddressSpace permits GuestMemory, DeviceAddressSpace {
    /**
     * Copies memory at {@code address} into {@code destination} (the copy path).
     *
     * @param address     device address
     * @param destination where the bytes go; its size is the length
     * @return OK, UNASSIGNED (bytes nothing answered read as zero) or DEVICE_ERROR (a handler
     *         failed, a re-entrant access was refused, or an IOMMU denied the access)
     * @throws IllegalStateException if the memory is closed
     */
    AccessResult read(long address, MemorySegment destination);

    /**
     * Copies {@code source} into memory at {@code address} (the copy path).
     *
     * @param address device address
     * @param source  the bytes; its size is the length
     * @return as {@link #read(long, MemorySegment)}; dropped bytes are reported, not thrown
     * @throws IllegalStateException if the memory is closed
     */
    AccessResult write(long address, MemorySegment source);

    /**
     * Copies into an array.
     *
     * @param address     device address
     * @param destination the array
     * @param offset      where in it to start
     * @param length      how many bytes
     * @return as {@link #read(long, MemorySegment)}
     * @throws IndexOutOfBoundsException if the array range is invalid
     * @throws IllegalStateException     if the memory is closed
     */
    default AccessResult read(long address, byte[] destination, int offset, int length) {
        java.util.Objects.checkFromIndexSize(offset, length, destination.length);
        return read(address, MemorySegment.ofArray(destination).asSlice(offset, length));
    }

    /**
     * Copies from an array.
     *
     * @param address device address
     * @param source  the array
     * @param offset  where in it to start
     * @param length  how many bytes
     * @return as {@link #write(long, MemorySegment)}
     * @throws IndexOutOfBoundsException if the array range is invalid
     * @throws IllegalStateException     if the memory is closed
     */
    default AccessResult write(long address, byte[] source, int offset, int length) {
        java.util.Objects.checkFromIndexSize(offset, length, source.length);
        return write(address, MemorySegment.ofArray(source).asSlice(offset, length));
    }

    /**
     * {@return the byte there (0 where nothing answers)}
     *
     * @param address device address
     * @throws IllegalStateException if the memory is closed
     */
    default byte readByte(long address) {
        return (byte) load(address, 1);
    }

    /**
     * {@return the little-endian 16-bit value there (unanswered bytes read 0)}
     *
     * @param address device address
     * @throws IllegalStateException if the memory is closed
     */
    default short readShort(long address) {
        return (short) load(address, 2);
    }

    /**
     * {@return the little-endian 32-bit value there (unanswered bytes read 0)}
     *
     * @param address device address
     * @throws IllegalStateException if the memory is closed
     */
    default int readInt(long address) {
        return (int) load(address, 4);
    }

    /**
     * {@return the little-endian 64-bit value there (unanswered bytes read 0)}
     *
     * @param address device address
     * @throws IllegalStateException if the memory is closed
     */
    default long readLong(long address) {
        return load(address, 8);
    }

    /**
     * Stores a byte.
     *
     * @param address device address
     * @param value   the byte to store (dropped where nothing answers)
     * @throws IllegalStateException if the memory is closed
     */
    default void writeByte(long address, byte value) {
        store(address, 1, value);
    }

    /**
     * Stores a 16-bit value.
     *
     * @param address device address
     * @param value   the 16-bit value to store little-endian
     * @throws IllegalStateException if the memory is closed
     */
    default void writeShort(long address, short value) {
        store(address, 2, value);
    }

    /**
     * Stores a 32-bit value.
     *
     * @param address device address
     * @param value   the 32-bit value to store little-endian
     * @throws IllegalStateException if the memory is closed
     */
    default void writeInt(long address, int value) {
        store(address, 4, value);
    }

    /**
     * Stores a 64-bit value.
     *
     * @param address device address
     * @param value   the 64-bit value to store little-endian
     * @throws IllegalStateException if the memory is closed
     */
    default void writeLong(long address, long value) {
        store(address, 8, value);
    }

    private long load(long address, int size) {
        MemorySegment bytes = MemorySegment.ofArray(new byte[8]);
        read(address, bytes.asSlice(0, size));
        return bytes.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
    }

    private void store(long address, int size, long value) {
        MemorySegment bytes = MemorySegment.ofArray(new byte[8]);
        bytes.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, value);
        write(address, bytes.asSlice(0, size));
    }

    /**
     * Sets {@code length} bytes to {@code value} ({@code dma_memory_set}).
     *
     * @param address device address
     * @param length  bytes, at least 0
     * @param value   the byte
     * @return as {@link #write(long, MemorySegment)}
     * @throws IllegalArgumentException if length is negative
     * @throws IllegalStateException    if the memory is closed
     */
    AccessResult fill(long address, long length, byte value);

    /**
     * Maps memory for DMA; see {@link GuestMemory#map}. Through a device space the range is
     * translated first and the mapping is cut at the end of the translation.
     *
     * @param address   device address
     * @param length    bytes wanted, at least 1
     * @param direction TO_DEVICE or FROM_DEVICE
     * @return a mapping of 1..length bytes, {@link BounceExhausted}, or {@link MapFailed}
     * @throws IllegalArgumentException if length is not positive
     * @throws NullPointerException     if direction is null
     * @throws IllegalStateException    if the memory is closed
     */
    MapResult map(long address, long length, DmaDirection direction);

    /**
     * Gives a mapping back; see {@link GuestMemory#unmap}.
     *
     * @param mapping      a live mapping made through this space
     * @param accessLength bytes accessed, 0..length
     * @return the write-back's outcome
     * @throws IllegalArgumentException if the mapping belongs elsewhere or accessLength is out of range
     * @throws IllegalStateException    if the mapping was unmapped already
     */
    AccessResult unmap(DmaMapping mapping, long accessLength);

    /**
     * Asks to be told when bounce space frees; see {@link GuestMemory#registerMapClient}.
     *
     * @param executor where the callback runs
     * @param callback what to run
     * @return the registration
     * @throws NullPointerException  if an argument is null
     * @throws IllegalStateException if the memory is closed
     */
    MapClient registerMapClient(Executor executor, Runnable callback);

    /**
     * Pins a small RAM range for ring structures; see {@link GuestMemory#ramView}. Through a device
     * space the range must lie in one translation.
     *
     * @param address  device address
     * @param length   bytes, at least 1
     * @param order    byte order of multi-byte values
     * @param writable whether the device stores into it
     * @return the view
     * @throws DmaAccessException       if the range is not RAM (or not permitted)
     * @throws IllegalArgumentException if length is not positive
     * @throws IllegalStateException    if the memory is closed
     */
    RamView ramView(long address, long length, ByteOrder order, boolean writable);

    /** {@return the bounce pool this space's non-RAM maps draw from} */
    BouncePool bouncePool();

    /** {@return the root address space behind this one (itself for the root)} */
    GuestMemory root();
}
