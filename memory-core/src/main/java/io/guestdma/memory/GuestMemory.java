package io.guestdma.memory;

import io.guestdma.memory.posix.PosixException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;

/**
 * A guest physical address space: RAM and ROM carved from a default {@link RamBacking} or from
 * backings of their own (see {@link RamRegion}), MMIO regions served by device handlers, and
 * unassigned space everywhere else.
 *
 * <p><b>Consumer side</b> (device models):
 * <ul>
 * <li>the copy path, QEMU's {@code cpu_physical_memory_rw}: {@link #read(long, MemorySegment)},
 *     {@link #write(long, MemorySegment)} and the {@code byte[]} forms cross region boundaries and
 *     report unassigned bytes with {@link AccessResult}; little-endian typed loads and stores
 *     ({@link #readInt} is {@code ldl_phys}). An access of 1, 2, 4 or 8 bytes within one RAM region
 *     is a single memory access, never torn (vm-memory's RUSTSEC-2020-0157).</li>
 * <li>the map path, QEMU's {@code cpu_physical_memory_map}: {@link #map} hands out a slice of RAM
 *     (zero copy) or a bounce buffer, possibly shorter than asked; {@link #unmap} takes it back
 *     with the number of bytes actually accessed; {@link #registerMapClient} waits for bounce
 *     space.</li>
 * </ul>
 * <p><b>Provider side</b> (machine code): {@link #builder()}, {@link #addRegion},
 * {@link #removeRegion}, {@link #transaction()}, {@link #backing()}, {@link #dirtyLog()}.
 *
 * <p>Addresses are unsigned 64-bit values. Regions never overlap (adding an overlapping region is
 * rejected). Lookups go through a bucket index (constant time for ordinary layouts, a binary
 * search, O(log n), at worst) in an immutable snapshot that readers load without locking; a change
 * swaps in a new snapshot. A region removed while mapped stays valid until its last mapping is
 * unmapped; its own backing, and at close the default one, is unmapped only then. A copy-path
 * access that races with such an unmap is run again on the new layout (FFM makes the closed
 * backing throw rather than fault).
 *
 * <p>Thread-safe: any number of threads may access, map and unmap at once; region changes are
 * serialised among themselves but never block readers.
 */
public final class GuestMemory implements AddressSpace, AutoCloseable {
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED;

    private final RamBacking backing;
    /** The default backing as the regions use it, at RAM address 0; null without one. */
    private final Attached arena;
    /** Where RAM addresses of regions' own backings start: past the default backing. */
    private final long ramFloor;
    /**
     * Regions' own backings while any region, or any snapshot not yet drained, may use them; the
     * RAM address ranges they hold, by start. Both guarded by this.
     */
    private final java.util.Map<RamBacking, OwnBacking> attached = new java.util.IdentityHashMap<>();
    private final java.util.TreeMap<Long, Long> ramRanges = new java.util.TreeMap<>();
    private final BouncePool bouncePool;
    private final DirtyLog dirtyLog;
    private final List<AddressMap> undrained = new CopyOnWriteArrayList<>();
    private final CompletableFuture<Void> released = new CompletableFuture<>();
    private final DmaDebug debug; // null unless debug mode is on: the hot path tests one field
    private final java.util.concurrent.atomic.AtomicLong deviceFaults = new java.util.concurrent.atomic.AtomicLong();
    private volatile AddressMap current;
    /**
     * The ring views to tell about region changes, held weakly (a view its device dropped just goes
     * away). Guarded by this; region changes hold the lock already.
     */
    private final java.util.Set<RamView> views = java.util.Collections.newSetFromMap(new java.util.WeakHashMap<>());

    /**
     * A region's own backing as this address space holds it. {@code generation} moves on with every
     * change that adds a region on it or leaves it without one, so that a deferred unmap scheduled
     * by an older change does nothing once the backing is back in use.
     */
    private static final class OwnBacking {
        final Attached slot;
        long generation;

        OwnBacking(Attached slot) {
            this.slot = slot;
        }
    }

    private GuestMemory(RamBacking backing, List<Region> regions, long bouncePoolBytes, boolean debug) {
        this.debug = debug ? new DmaDebug() : null;
        this.backing = backing;
        this.arena = backing == null ? null : Attached.of(backing, 0);
        this.ramFloor = backing == null ? 0 : backing.size();
        this.bouncePool = new BouncePool(bouncePoolBytes);
        this.dirtyLog = new DirtyLog(ramFloor);
        java.util.Map<RamBacking, Attached> joining = join(regions);
        AddressMap first;
        try {
            first = new AddressMap(regions, slots(joining), false);
            if (backing != null) {
                backing.claim(this);
            }
        } catch (RuntimeException e) {
            unjoin(joining);
            throw e;
        }
        admit(joining, regions);
        this.current = first;
    }

    /**
     * A guest with {@code ramBytes} of RAM at address 0 on an anonymous backing (advised for
     * transparent huge pages, see {@link Builder#build()}), nothing else.
     *
     * @param ramBytes RAM size, positive and a multiple of 4096
     * @return the address space
     * @throws IllegalArgumentException if the size is not positive or not a multiple of 4096
     */
    public static GuestMemory ofRam(long ramBytes) {
        if (ramBytes <= 0 || ramBytes % DirtyLog.PAGE_SIZE != 0) {
            throw new IllegalArgumentException("guest RAM must be a positive multiple of " + DirtyLog.PAGE_SIZE
                    + " bytes, was " + ramBytes);
        }
        return builder().ram("ram", 0, ramBytes).build();
    }

    /** {@return a builder for an address space; see {@link Builder}} */
    public static Builder builder() {
        return new Builder();
    }

    // ------------------------------------------------------------------ copy path

    /**
     * Copies guest memory starting at {@code address} into {@code destination}.
     *
     * @param address     unsigned guest physical address
     * @param destination where the bytes go; its size is the access length
     * @return {@link AccessResult#OK}; {@link AccessResult#UNASSIGNED} if some bytes were unassigned
     *         (they read as zero); {@link AccessResult#DEVICE_ERROR} if an MMIO handler failed or
     *         refused a re-entrant access (its bytes read as zero), which wins over UNASSIGNED
     * @throws IllegalStateException if the address space is closed
     */
    public AccessResult read(long address, MemorySegment destination) {
        AddressMap map = snapshot();
        while (true) {
            try {
                return access(map, address, destination, false);
            } catch (IllegalStateException e) {
                map = retryAfter(map, e);
            }
        }
    }

    /**
     * The copy path holds no lease on its snapshot (a lease costs two atomic operations per
     * access), so a region's own backing can be unmapped under an access that found it just
     * before the region went. FFM turns that into IllegalStateException from the closed segment
     * instead of a fault; the access then runs again on the layout that replaced it, as if it had
     * started a moment later. Anything else (the caller's own buffer closed, this address space
     * closed) is rethrown.
     *
     * @return the snapshot to run the access on again
     */
    private AddressMap retryAfter(AddressMap used, IllegalStateException failure) {
        AddressMap now = current;
        if (now == used || now.closed) {
            throw failure;
        }
        return now;
    }

    /**
     * Copies {@code length} bytes of guest memory starting at {@code address} into an array.
     *
     * @param address     unsigned guest physical address
     * @param destination the array the bytes go to
     * @param offset      where in {@code destination} to start
     * @param length      how many bytes to copy
     * @return as {@link #read(long, MemorySegment)}
     * @throws IndexOutOfBoundsException if the array range is invalid
     * @throws IllegalStateException     if the address space is closed
     */
    public AccessResult read(long address, byte[] destination, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, destination.length);
        return read(address, MemorySegment.ofArray(destination).asSlice(offset, length));
    }

    /**
     * Copies {@code source} into guest memory starting at {@code address}. RAM pages written are
     * marked in the dirty log; writes to ROM are ignored; MMIO handlers see split accesses.
     *
     * @param address unsigned guest physical address
     * @param source  the bytes to write; its size is the access length
     * @return {@link AccessResult#OK}; {@link AccessResult#UNASSIGNED} if some bytes were unassigned
     *         (they were dropped); {@link AccessResult#DEVICE_ERROR} if an MMIO handler failed or
     *         refused a re-entrant access, which wins over UNASSIGNED
     * @throws IllegalStateException if the address space is closed
     */
    public AccessResult write(long address, MemorySegment source) {
        AddressMap map = snapshot();
        while (true) {
            try {
                return access(map, address, source, true);
            } catch (IllegalStateException e) {
                map = retryAfter(map, e);
            }
        }
    }

    /**
     * Copies {@code length} bytes of an array into guest memory starting at {@code address}.
     *
     * @param address unsigned guest physical address
     * @param source  the array holding the bytes
     * @param offset  where in {@code source} to start
     * @param length  how many bytes to copy
     * @return as {@link #write(long, MemorySegment)}
     * @throws IndexOutOfBoundsException if the array range is invalid
     * @throws IllegalStateException     if the address space is closed
     */
    public AccessResult write(long address, byte[] source, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, source.length);
        return write(address, MemorySegment.ofArray(source).asSlice(offset, length));
    }

    /**
     * Loads the byte at {@code address}: one access, never torn, for RAM; split as the handler
     * accepts for MMIO.
     *
     * @param address unsigned guest physical address
     * @return the byte (0 if unassigned)
     * @throws IllegalStateException if the address space is closed
     */
    public byte readByte(long address) {
        return (byte) load(address, 1);
    }

    /**
     * Loads the little-endian 16-bit value at {@code address}: one access, never torn, for RAM; split as the handler
     * accepts for MMIO.
     *
     * @param address unsigned guest physical address
     * @return the little-endian 16-bit value (unassigned bytes read 0)
     * @throws IllegalStateException if the address space is closed
     */
    public short readShort(long address) {
        return (short) load(address, 2);
    }

    /**
     * Loads the little-endian 32-bit value at {@code address}: one access, never torn, for RAM; split as the handler
     * accepts for MMIO.
     *
     * @param address unsigned guest physical address
     * @return the little-endian 32-bit value (unassigned bytes read 0)
     * @throws IllegalStateException if the address space is closed
     */
    public int readInt(long address) {
        return (int) load(address, 4);
    }

    /**
     * Loads the little-endian 64-bit value at {@code address}: one access, never torn, for RAM; split as the handler
     * accepts for MMIO.
     *
     * @param address unsigned guest physical address
     * @return the little-endian 64-bit value (unassigned bytes read 0)
     * @throws IllegalStateException if the address space is closed
     */
    public long readLong(long address) {
        return load(address, 8);
    }

    /**
     * Stores a byte at {@code address}: one access, never torn, for RAM (its page is marked
     * dirty); dropped for ROM and unassigned space; split as the handler accepts for MMIO.
     *
     * @param address unsigned guest physical address
     * @param value   the value
     * @throws IllegalStateException if the address space is closed
     */
    public void writeByte(long address, byte value) {
        store(address, 1, value);
    }

    /**
     * Stores a little-endian 16-bit value at {@code address}: one access, never torn, for RAM (its page is marked
     * dirty); dropped for ROM and unassigned space; split as the handler accepts for MMIO.
     *
     * @param address unsigned guest physical address
     * @param value   the value
     * @throws IllegalStateException if the address space is closed
     */
    public void writeShort(long address, short value) {
        store(address, 2, value);
    }

    /**
     * Stores a little-endian 32-bit value at {@code address}: one access, never torn, for RAM (its page is marked
     * dirty); dropped for ROM and unassigned space; split as the handler accepts for MMIO.
     *
     * @param address unsigned guest physical address
     * @param value   the value
     * @throws IllegalStateException if the address space is closed
     */
    public void writeInt(long address, int value) {
        store(address, 4, value);
    }

    /**
     * Stores a little-endian 64-bit value at {@code address}: one access, never torn, for RAM (its page is marked
     * dirty); dropped for ROM and unassigned space; split as the handler accepts for MMIO.
     *
     * @param address unsigned guest physical address
     * @param value   the value
     * @throws IllegalStateException if the address space is closed
     */
    public void writeLong(long address, long value) {
        store(address, 8, value);
    }

    private long load(long address, int size) {
        AddressMap map = snapshot();
        while (true) {
            try {
                return load(map, address, size);
            } catch (IllegalStateException e) {
                map = retryAfter(map, e);
            }
        }
    }

    private long load(AddressMap map, long address, int size) {
        int i = map.find(address);
        if (i >= 0 && fitsIn(map, i, address, size)) {
            long offset = address - map.base(i);
            switch (map.region(i)) {
                case MmioRegion mmio -> {
                    return loadMmio(mmio, offset, size);
                }
                default -> {
                    long at = map.backingOffset(i) + offset;
                    MemorySegment memory = map.segment(i);
                    return switch (size) {
                        case 1 -> memory.get(ValueLayout.JAVA_BYTE, at);
                        case 2 -> memory.get(SHORT_LE, at);
                        case 4 -> memory.get(INT_LE, at);
                        default -> memory.get(LONG_LE, at);
                    };
                }
            }
        }
        // Straddles a region boundary or is unassigned: the general path, rare enough to allocate.
        MemorySegment bytes = MemorySegment.ofArray(new byte[8]);
        access(map, address, bytes.asSlice(0, size), false);
        return bytes.get(LONG_LE, 0);
    }

    /** Whether {@code [address, address + size)} lies inside region {@code i} without wrapping. */
    private static boolean fitsIn(AddressMap map, int i, long address, long size) {
        long last = address + size - 1;
        return Long.compareUnsigned(last, address) >= 0 && Long.compareUnsigned(last, map.last(i)) <= 0;
    }

    private void store(long address, int size, long value) {
        AddressMap map = snapshot();
        while (true) {
            try {
                store(map, address, size, value);
                return;
            } catch (IllegalStateException e) {
                map = retryAfter(map, e);
            }
        }
    }

    private void store(AddressMap map, long address, int size, long value) {
        int i = map.find(address);
        if (i >= 0 && fitsIn(map, i, address, size)) {
            long offset = address - map.base(i);
            switch (map.region(i)) {
                case MmioRegion mmio -> storeMmio(mmio, offset, size, value);
                case RomRegion rom -> { /* ROM ignores writes */ }
                case RamRegion ram -> {
                    long at = map.backingOffset(i) + offset;
                    MemorySegment memory = map.segment(i);
                    switch (size) {
                        case 1 -> memory.set(ValueLayout.JAVA_BYTE, at, (byte) value);
                        case 2 -> memory.set(SHORT_LE, at, (short) value);
                        case 4 -> memory.set(INT_LE, at, (int) value);
                        default -> memory.set(LONG_LE, at, value);
                    }
                    dirtyLog.mark(map.ramAddress(i) + offset, size);
                }
            }
            return;
        }
        MemorySegment bytes = MemorySegment.ofArray(new byte[8]);
        bytes.set(LONG_LE, 0, value);
        access(map, address, bytes.asSlice(0, size), true);
    }

    /** The copy path proper: walks regions from {@code address} for {@code buffer.byteSize()} bytes. */
    private AccessResult access(AddressMap map, long address, MemorySegment buffer, boolean write) {
        long length = buffer.byteSize();
        int first = map.find(address);
        if (first >= 0 && length > 0 && fitsIn(map, first, address, length) && map.backingOffset(first) >= 0
                && !(write && map.region(first) instanceof RomRegion)) {
            // Inside one RAM region (or reading ROM): one copy, no slicing, as small device reads
            // of descriptors and PRD entries are.
            long offset = address - map.base(first);
            copyRam(map.segment(first), map.backingOffset(first) + offset, buffer, write);
            if (write) {
                dirtyLog.mark(map.ramAddress(first) + offset, length);
            }
            return AccessResult.OK;
        }
        AccessResult result = AccessResult.OK;
        long done = 0;
        while (done < length) {
            long at = address + done;
            long remaining = length - done;
            if (done > 0 && at == 0) {
                // Wrapped past 2^64: there is nothing up there.
                if (!write) {
                    buffer.asSlice(done).fill((byte) 0);
                }
                return result.and(AccessResult.UNASSIGNED);
            }
            int i = map.find(at);
            long chunk;
            if (i < 0) {
                chunk = unsignedMin(remaining, map.unassignedExtent(at));
                if (!write) {
                    buffer.asSlice(done, chunk).fill((byte) 0);
                }
                result = result.and(AccessResult.UNASSIGNED);
            } else {
                chunk = Math.min(remaining, map.last(i) - at + 1);
                long offset = at - map.base(i);
                MemorySegment part = buffer.asSlice(done, chunk);
                switch (map.region(i)) {
                    case MmioRegion mmio -> result = result.and(accessMmio(mmio, offset, part, write));
                    case RomRegion rom -> {
                        if (!write) {
                            copyRam(map.segment(i), map.backingOffset(i) + offset, part, false);
                        }
                    }
                    case RamRegion ram -> {
                        copyRam(map.segment(i), map.backingOffset(i) + offset, part, write);
                        if (write) {
                            dirtyLog.mark(map.ramAddress(i) + offset, chunk);
                        }
                    }
                }
            }
            done += chunk;
        }
        return result;
    }

    /**
     * One region part of a copy-path access to MMIO. A handler that throws, or an access that
     * re-enters a busy device, fails this part only ({@link AccessResult#DEVICE_ERROR}, read bytes
     * zero), as QEMU's dispatch returns MEMTX_ERROR and carries on; the JVM's own fatal errors
     * still propagate.
     */
    private AccessResult accessMmio(MmioRegion mmio, long offset, MemorySegment part, boolean write) {
        ReentrancyGuard guard = mmio.guard();
        if (guard != null && !guard.enter()) {
            guard.refuse(describe(mmio, offset, part.byteSize(), write));
            if (!write) {
                part.fill((byte) 0);
            }
            return AccessResult.DEVICE_ERROR;
        }
        try {
            if (write) {
                MmioAccess.write(mmio.handler(), offset, part);
            } else {
                MmioAccess.read(mmio.handler(), offset, part);
            }
            return AccessResult.OK;
        } catch (Throwable t) {
            handlerFault(mmio, offset, part.byteSize(), write, t);
            if (!write) {
                part.fill((byte) 0);
            }
            return AccessResult.DEVICE_ERROR;
        } finally {
            if (guard != null) {
                guard.exit();
            }
        }
    }

    /** A typed load from MMIO; a failed or refused access reads 0, like unassigned space. */
    private long loadMmio(MmioRegion mmio, long offset, int size) {
        ReentrancyGuard guard = mmio.guard();
        if (guard != null && !guard.enter()) {
            guard.refuse(describe(mmio, offset, size, false));
            return 0;
        }
        try {
            return MmioAccess.load(mmio.handler(), offset, size);
        } catch (Throwable t) {
            handlerFault(mmio, offset, size, false, t);
            return 0;
        } finally {
            if (guard != null) {
                guard.exit();
            }
        }
    }

    /** A typed store to MMIO; a failed or refused access is dropped, like one to unassigned space. */
    private void storeMmio(MmioRegion mmio, long offset, int size, long value) {
        ReentrancyGuard guard = mmio.guard();
        if (guard != null && !guard.enter()) {
            guard.refuse(describe(mmio, offset, size, true));
            return;
        }
        try {
            MmioAccess.store(mmio.handler(), offset, size, value);
        } catch (Throwable t) {
            handlerFault(mmio, offset, size, true, t);
        } finally {
            if (guard != null) {
                guard.exit();
            }
        }
    }

    private static String describe(MmioRegion mmio, long offset, long length, boolean write) {
        return String.format("%s of %d byte(s) at 0x%x (region '%s' + 0x%x)", write ? "write" : "read", length,
                mmio.base() + offset, mmio.name(), offset);
    }

    /**
     * Counts a handler fault and logs the first one. Errors the JVM cannot recover from
     * (OutOfMemoryError, InternalError) are rethrown after that: the caller's finally blocks still
     * release what the access held. A StackOverflowError has unwound by the time it arrives here,
     * so it counts as the handler's fault like any exception.
     */
    private void handlerFault(MmioRegion mmio, long offset, long length, boolean write, Throwable t) {
        long n = deviceFaults.getAndIncrement();
        System.getLogger(GuestMemory.class.getName()).log(n == 0 ? System.Logger.Level.WARNING : System.Logger.Level.DEBUG,
                "MMIO handler failed on " + describe(mmio, offset, length, write)
                        + "; the access reports DEVICE_ERROR" + (n == 0 ? " (later faults are logged at DEBUG)" : ""), t);
        if (t instanceof VirtualMachineError && !(t instanceof StackOverflowError)) {
            throw (VirtualMachineError) t;
        }
    }

    /**
     * {@return how many MMIO accesses failed because a handler threw (each is reported to its
     * caller as {@link AccessResult#DEVICE_ERROR}; re-entrant accesses refused by a {@link
     * ReentrancyGuard} are counted by the guard instead)}
     */
    public long deviceFaults() {
        return deviceFaults.get();
    }

    /**
     * Sets {@code length} bytes of guest memory to {@code value}, QEMU's {@code dma_memory_set}:
     * RAM is filled (and marked dirty), ROM is skipped, MMIO handlers see the bytes as writes.
     *
     * @param address unsigned guest physical address
     * @param length  bytes to set, at least 0
     * @param value   the byte
     * @return as {@link #write(long, MemorySegment)}
     * @throws IllegalArgumentException if length is negative
     * @throws IllegalStateException    if the address space is closed
     */
    public AccessResult fill(long address, long length, byte value) {
        if (length < 0) {
            throw new IllegalArgumentException("negative fill length " + length);
        }
        AddressMap map = snapshot();
        while (true) {
            try {
                return fill(map, address, length, value);
            } catch (IllegalStateException e) {
                map = retryAfter(map, e);
            }
        }
    }

    private AccessResult fill(AddressMap map, long address, long length, byte value) {
        int i = map.find(address);
        if (i >= 0 && length > 0 && fitsIn(map, i, address, length) && map.region(i) instanceof RamRegion) {
            long offset = address - map.base(i);
            map.segment(i).asSlice(map.backingOffset(i) + offset, length).fill(value);
            dirtyLog.mark(map.ramAddress(i) + offset, length);
            return AccessResult.OK;
        }
        // Mixed or non-RAM: through the copy path, a page at a time, so handlers see ordinary writes.
        byte[] page = new byte[(int) Math.min(length, DirtyLog.PAGE_SIZE)];
        java.util.Arrays.fill(page, value);
        MemorySegment bytes = MemorySegment.ofArray(page);
        AccessResult result = AccessResult.OK;
        for (long done = 0; done < length; done += page.length) {
            long n = Math.min(page.length, length - done);
            long at = address + done;
            if (done > 0 && Long.compareUnsigned(at, address) < 0) {
                return result.and(AccessResult.UNASSIGNED); // past 2^64: nothing there
            }
            result = result.and(access(map, at, bytes.asSlice(0, n), true));
        }
        return result;
    }

    /**
     * Marks guest RAM as written for the dirty log, for writes a device made outside this library
     * (a file mapped over guest RAM, another process sharing it). Bytes that are not RAM are
     * ignored.
     *
     * @param address unsigned guest physical address
     * @param length  bytes, at least 0
     * @throws IllegalArgumentException if length is negative
     * @throws IllegalStateException    if the address space is closed
     */
    public void markDirty(long address, long length) {
        if (length < 0) {
            throw new IllegalArgumentException("negative length " + length);
        }
        AddressMap map = snapshot();
        long done = 0;
        while (done < length) {
            long at = address + done;
            if (done > 0 && Long.compareUnsigned(at, address) < 0) {
                return; // past 2^64
            }
            int i = map.find(at);
            long chunk;
            if (i < 0) {
                chunk = unsignedMin(length - done, map.unassignedExtent(at));
            } else {
                chunk = unsignedMin(length - done, map.last(i) - at + 1);
                if (map.region(i) instanceof RamRegion) {
                    dirtyLog.mark(map.ramAddress(i) + (at - map.base(i)), chunk);
                }
            }
            done += chunk;
        }
    }

    /**
     * Pins a small range of guest RAM for a device's hot structures (ring indices, descriptor
     * tables), QEMU's {@code address_space_cache_init}: see {@link RamView}.
     *
     * @param address  unsigned guest physical address of the range
     * @param length   its length, at least 1
     * @param order    the byte order of its multi-byte values (little-endian for virtio 1.x)
     * @param writable whether the device stores into it; a read-only view may cover ROM
     * @return the view
     * @throws DmaAccessException       if the range is not entirely RAM (or ROM, read-only),
     *                                  contiguous in the backing: a guest put its structure in
     *                                  MMIO, unassigned space or across the end of RAM, which a
     *                                  device reports as an error
     * @throws IllegalArgumentException if length is not positive
     * @throws NullPointerException     if order is null
     * @throws IllegalStateException    if the address space is closed
     */
    public RamView ramView(long address, long length, java.nio.ByteOrder order, boolean writable) {
        Objects.requireNonNull(order, "order");
        if (length <= 0) {
            throw new IllegalArgumentException("view length must be at least 1, was " + length);
        }
        AddressMap map = snapshot();
        int i = map.find(address);
        DmaDirection need = writable ? DmaDirection.FROM_DEVICE : DmaDirection.TO_DEVICE;
        long last = address + length - 1;
        if (i < 0 || !map.isDirect(i, need) || Long.compareUnsigned(last, address) < 0
                || Long.compareUnsigned(map.directRunLast(i, need), last) < 0) {
            throw new DmaAccessException(String.format("guest 0x%x (+0x%x) is not %s", address, length,
                    writable ? "RAM" : "RAM or ROM"), address, length);
        }
        long offset = address - map.base(i);
        RamView view = new RamView(this, address, length, order, writable, map.slot(i), map.backingOffset(i) + offset,
                map.ramAddress(i) + offset, map.segment(i));
        synchronized (this) {
            views.add(view);
            if (current != map) {
                view.regionsChanged(); // a change installed since the lookup, before the view was listed
            }
        }
        return view;
    }

    /** @return this: the root is its own root */
    @Override
    public GuestMemory root() {
        return this;
    }

    /**
     * A device's view of this address space with nothing in between but its enable switch (a PCI
     * function's bus master): see {@link DeviceAddressSpace}.
     *
     * @param name the device's name, for messages
     * @return an enabled view of the whole address space
     * @throws NullPointerException if name is null
     */
    public DeviceAddressSpace deviceSpace(String name) {
        return new DeviceAddressSpace(this, Objects.requireNonNull(name, "name"), 0, DeviceAddressSpace.WHOLE, 0, null);
    }

    /**
     * A device's view through a window and, optionally, an IOMMU: device address {@code a} in
     * {@code [windowBase, windowBase + windowSize)} is I/O virtual address
     * {@code a - windowBase + windowTarget}, which {@code iommu} translates (or which is a guest
     * physical address when {@code iommu} is null). See {@link DeviceAddressSpace}.
     *
     * @param name         the device's name, for messages
     * @param windowBase   first visible device address
     * @param windowSize   bytes visible, at least 1 (-1 for all of the 64-bit space)
     * @param windowTarget where the window starts behind it
     * @param iommu        the IOMMU, or null
     * @return an enabled view
     * @throws NullPointerException     if name is null
     * @throws IllegalArgumentException if windowSize is 0
     */
    public DeviceAddressSpace deviceSpace(String name, long windowBase, long windowSize, long windowTarget,
                                          Iommu iommu) {
        if (windowSize == 0) {
            throw new IllegalArgumentException("an empty window");
        }
        return new DeviceAddressSpace(this, Objects.requireNonNull(name, "name"), windowBase, windowSize,
                windowTarget, iommu);
    }

    /** {@return the smaller of a length and an unsigned extent in which 0 stands for 2^64} */
    private static long unsignedMin(long length, long extent) {
        return extent != 0 && Long.compareUnsigned(extent, length) < 0 ? extent : length;
    }

    /** Copies between the backing and a buffer; 2, 4 and 8 bytes move as one access (never torn). */
    private static void copyRam(MemorySegment backingSegment, long backingOffset, MemorySegment buffer,
                                boolean toGuest) {
        int size = (int) Math.min(buffer.byteSize(), 9);
        switch (size) {
            case 2 -> {
                if (toGuest) {
                    backingSegment.set(SHORT_LE, backingOffset, buffer.get(SHORT_LE, 0));
                } else {
                    buffer.set(SHORT_LE, 0, backingSegment.get(SHORT_LE, backingOffset));
                }
            }
            case 4 -> {
                if (toGuest) {
                    backingSegment.set(INT_LE, backingOffset, buffer.get(INT_LE, 0));
                } else {
                    buffer.set(INT_LE, 0, backingSegment.get(INT_LE, backingOffset));
                }
            }
            case 8 -> {
                if (toGuest) {
                    backingSegment.set(LONG_LE, backingOffset, buffer.get(LONG_LE, 0));
                } else {
                    buffer.set(LONG_LE, 0, backingSegment.get(LONG_LE, backingOffset));
                }
            }
            default -> {
                if (toGuest) {
                    MemorySegment.copy(buffer, 0, backingSegment, backingOffset, buffer.byteSize());
                } else {
                    MemorySegment.copy(backingSegment, backingOffset, buffer, 0, buffer.byteSize());
                }
            }
        }
    }

    // ------------------------------------------------------------------ map path

    /**
     * Maps guest memory for DMA, QEMU's {@code cpu_physical_memory_map}.
     *
     * <p>If {@code address} is RAM (or ROM, for TO_DEVICE) the mapping is a slice of the backing:
     * zero copy, extending across adjacent regions that are contiguous in the backing, and stopping
     * where RAM ends. Otherwise the range up to the end of its region (or of the unassigned gap) is
     * bounced: TO_DEVICE bounce buffers are filled through the copy path now, FROM_DEVICE ones are
     * written back on {@link #unmap}. The mapping may be shorter than {@code length}; map the rest
     * with another call. A range that would run past 2<sup>64</sup> is cut at the top of the address
     * space (addresses never wrap).
     *
     * @param address   unsigned guest physical address
     * @param length    bytes wanted, at least 1
     * @param direction whether the device reads (TO_DEVICE) or writes (FROM_DEVICE) the memory
     * @return a {@link DmaMapping} of 1..length bytes; {@link BounceExhausted} if the range must
     *         be bounced and the pool is full; {@link MapFailed} if filling a TO_DEVICE bounce
     *         buffer failed in an MMIO handler (or was refused as re-entrant). With either of the
     *         last two nothing is mapped and nothing is held.
     * @throws IllegalArgumentException if length is not positive
     * @throws NullPointerException     if direction is null
     * @throws IllegalStateException    if the address space is closed
     */
    public MapResult map(long address, long length, DmaDirection direction) {
        if (length <= 0 || direction == null) {
            throw badMap(length, direction);
        }
        if (address != 0 && Long.compareUnsigned(length, -address) > 0) {
            length = -address;
        }
        AddressMap map = snapshot();
        int stripe = map.acquire(); // -1: a region change retired the snapshot between load and lease
        if (stripe < 0) {
            return mapAgain(address, length, direction);
        }
        AddressMap.Extent r = map.findExtent(address);
        if (r != null && debug == null) {
            // The zero-copy case, kept small so that it inlines into device code: the region's
            // extent, then field loads.
            if (r.direct(direction)) {
                long run = r.runLast(direction) - address + 1; // 0 only for a run to 2^64 from 0
                long mapped = run == 0 ? length : Math.min(length, run);
                long offset = address - r.base();
                // One slice of a pre-made read-only view, not slice-then-asReadOnly: a single small
                // allocation that C2 can scalar-replace once map and unmap inline into the device.
                MemorySegment slice = r.memory(direction).asSlice(r.backingOffset() + offset, mapped);
                return new DmaMapping(this, map, stripe, address, mapped, direction, slice, null,
                        r.ramAddress() + offset, null, false);
            }
        }
        return mapSlowly(map, stripe, map.find(address), address, length, direction);
    }

    /**
     * {@link #map} for a device space behind an IOMMU: a mapping holds the translation generation
     * {@code epoch} the space entered until it is unmapped; any other outcome, or a throw, lets it go.
     */
    MapResult mapHeld(long address, long length, DmaDirection direction, DeviceAddressSpace.Epoch epoch) {
        MapResult m;
        try {
            m = map(address, length, direction);
        } catch (Throwable t) { // closed memory, a handler the JVM could not survive: nothing is held
            DeviceAddressSpace.exit(epoch);
            throw t;
        }
        return DeviceAddressSpace.heldBy(m, epoch);
    }

    /** {@link #map} after its lease raced with a region change: lease the new snapshot, then as map. */
    private MapResult mapAgain(long address, long length, DmaDirection direction) {
        AddressMap map;
        int stripe;
        do {
            map = snapshot();
            stripe = map.acquire();
        } while (stripe < 0);
        return mapSlowly(map, stripe, map.find(address), address, length, direction);
    }

    private static RuntimeException badMap(long length, DmaDirection direction) {
        if (direction == null) {
            return new NullPointerException("direction");
        }
        return new IllegalArgumentException("map length must be at least 1 byte, was " + length);
    }

    /** Bounced mappings, and every mapping in debug mode. */
    private MapResult mapSlowly(AddressMap map, int stripe, int i, long address, long length, DmaDirection direction) {
        if (i >= 0 && debug == null && map.isDirect(i, direction)) {
            long run = map.directRunLast(i, direction) - address + 1;
            long mapped = run == 0 ? length : Math.min(length, run);
            long offset = address - map.base(i);
            return new DmaMapping(this, map, stripe, address, mapped, direction,
                    map.segment(i, direction).asSlice(map.backingOffset(i) + offset, mapped), null,
                    map.ramAddress(i) + offset, null, false);
        }
        if (i >= 0 && map.isDirect(i, direction)) {
            long run = map.directRunLast(i, direction) - address + 1;
            long mapped = run == 0 ? length : Math.min(length, run);
            long offset = address - map.base(i);
            return debugMapping(map, stripe, address, mapped, direction,
                    map.segment(i).asSlice(map.backingOffset(i) + offset, mapped), null, map.ramAddress(i) + offset,
                    false);
        }
        long extent = i >= 0 ? map.last(i) - address + 1 : map.unassignedExtent(address);
        return bounce(map, stripe, address, unsignedMin(length, extent), length, direction, false);
    }

    /**
     * Maps {@code length} bytes where nothing is: past the top of the address space (a
     * scatter-gather entry that runs over 2<sup>64</sup> continues there instead of wrapping to
     * address 0), or a disabled or windowed-off device space. They are bounced like unassigned
     * space: TO_DEVICE reads zeros, FROM_DEVICE writes are dropped on unmap.
     *
     * @param address the device address, for messages only
     */
    MapResult mapNowhere(long address, long length, DmaDirection direction) {
        AddressMap map;
        int stripe;
        do {
            map = snapshot();
            stripe = map.acquire();
        } while (stripe < 0);
        return bounce(map, stripe, address, length, length, direction, true);
    }

    /**
     * Reserves bounce space for {@code wanted} bytes (at most) under the held lease and builds the
     * mapping. Everything taken is given back if filling the buffer fails or throws.
     */
    private MapResult bounce(AddressMap map, int stripe, long address, long wanted, long requested,
                             DmaDirection direction, boolean nowhere) {
        long granted = bouncePool.reserve(wanted);
        if (granted == 0) {
            map.release(stripe);
            return new BounceExhausted(address, requested, bouncePool.bytesInFlight());
        }
        MemorySegment buffer = null;
        boolean built = false;
        try {
            buffer = bouncePool.takeBuffer(granted);
            MemorySegment slice = buffer.asSlice(0, granted);
            if (direction == DmaDirection.TO_DEVICE) {
                if (nowhere) {
                    slice.fill((byte) 0);
                } else if (access(map, address, slice, false).failed()) {
                    return new MapFailed(address, requested, AccessResult.DEVICE_ERROR);
                }
            }
            DmaMapping mapping;
            if (debug != null) {
                if (direction == DmaDirection.FROM_DEVICE) {
                    debug.poison(slice);
                }
                mapping = debugMapping(map, stripe, address, granted, direction, slice, buffer, -1, nowhere);
            } else {
                if (direction == DmaDirection.TO_DEVICE) {
                    slice = slice.asReadOnly();
                }
                mapping = new DmaMapping(this, map, stripe, address, granted, direction, slice, buffer, -1, null,
                        nowhere);
            }
            built = true;
            return mapping;
        } finally {
            if (!built) {
                // A failed fill, or a throw from a handler the JVM could not survive, or from the
                // pool itself: hand back what the attempt held so that nothing leaks.
                if (buffer != null) {
                    bouncePool.returnBuffer(buffer);
                }
                bouncePool.release(granted);
                map.release(stripe);
            }
        }
    }

    private DmaMapping debugMapping(AddressMap map, int stripe, long address, long length, DmaDirection direction,
                                    MemorySegment memory, MemorySegment bounceBuffer, long backingOffset,
                                    boolean nowhere) {
        java.lang.foreign.Arena scope = debug.newScope();
        MemorySegment view = debug.revocable(memory, scope, direction == DmaDirection.TO_DEVICE);
        DmaMapping mapping = new DmaMapping(this, map, stripe, address, length, direction, view, bounceBuffer,
                backingOffset, scope, nowhere);
        debug.track(mapping);
        return mapping;
    }

    /**
     * Gives a mapping back, QEMU's {@code cpu_physical_memory_unmap}. Only the first
     * {@code accessLength} bytes count as accessed: for a FROM_DEVICE bounce mapping exactly those
     * are written back to the guest (bytes past them are left untouched), for a FROM_DEVICE RAM
     * mapping exactly their pages are marked dirty. TO_DEVICE mappings need no write-back. Freed
     * bounce space wakes the registered map clients. The mapping is released whatever the
     * write-back's outcome: a failing MMIO handler cannot leak bounce space or leases.
     *
     * @param mapping      a live mapping from this address space
     * @param accessLength bytes the device actually read or wrote, from the start, 0..length
     * @return the write-back's outcome: {@link AccessResult#OK} for RAM and TO_DEVICE mappings;
     *         for a FROM_DEVICE bounce mapping, the result of writing the bytes back (UNASSIGNED for
     *         unassigned space and bytes past 2<sup>64</sup>, DEVICE_ERROR when an MMIO handler
     *         failed), which QEMU ignores and a careful device reports
     * @throws IllegalArgumentException if the mapping belongs to another address space or
     *                                  accessLength is outside 0..length (the mapping stays live)
     * @throws IllegalStateException    if the mapping was already unmapped; in debug mode also
     *                                  (after unmapping) if the poisoned bounce buffer shows that
     *                                  the device wrote past accessLength or claimed bytes it
     *                                  never wrote
     */
    public AccessResult unmap(DmaMapping mapping, long accessLength) {
        if (mapping.owner == this && accessLength >= 0 && accessLength <= mapping.length()
                && mapping.bounceBuffer == null && mapping.debugScope == null) {
            // The zero-copy case, kept small so that it inlines into device code (also for a
            // mapping made through an IOMMU: its epoch is one more counter to give back).
            if (!mapping.markUnmapped()) {
                throw new IllegalStateException("unmap of " + mapping + ": it was already unmapped");
            }
            if (mapping.direction() == DmaDirection.FROM_DEVICE) {
                dirtyLog.mark(mapping.backingOffset, accessLength);
            }
            mapping.snapshot.release(mapping.leaseStripe);
            DeviceAddressSpace.exit(mapping.iommuEpoch);
            return AccessResult.OK;
        }
        return unmapSlowly(mapping, accessLength);
    }

    private AccessResult unmapSlowly(DmaMapping mapping, long accessLength) {
        if (mapping.owner != this) {
            throw new IllegalArgumentException("unmap of " + mapping + ": it was mapped by another GuestMemory");
        }
        if (accessLength < 0 || accessLength > mapping.length()) {
            throw new IllegalArgumentException("unmap of " + mapping + ": access length " + accessLength
                    + " is outside 0.." + mapping.length());
        }
        if (!mapping.markUnmapped()) {
            throw new IllegalStateException("unmap of " + mapping + ": it was already unmapped");
        }
        String misuse = null;
        if (mapping.debugScope != null) {
            debug.untrack(mapping);
            mapping.debugScope.close();
            if (mapping.bounced() && mapping.direction() == DmaDirection.FROM_DEVICE) {
                misuse = debug.checkPoison(mapping, mapping.bounceBuffer, accessLength);
            }
        }
        AccessResult result = AccessResult.OK;
        try {
            boolean wrote = mapping.direction() == DmaDirection.FROM_DEVICE && accessLength > 0;
            if (mapping.bounced()) {
                try {
                    if (wrote && mapping.nowhere) {
                        result = AccessResult.UNASSIGNED;
                    } else if (wrote) {
                        result = access(mapping.snapshot, mapping.address(), mapping.bounceBuffer.asSlice(0, accessLength),
                                true);
                    }
                } finally {
                    bouncePool.returnBuffer(mapping.bounceBuffer);
                    bouncePool.release(mapping.length());
                }
            } else if (wrote) {
                dirtyLog.mark(mapping.backingOffset, accessLength);
            }
        } finally {
            mapping.snapshot.release(mapping.leaseStripe);
            DeviceAddressSpace.exit(mapping.iommuEpoch);
        }
        if (misuse != null) {
            throw new IllegalStateException(misuse);
        }
        return result;
    }

    /** {@return whether DMA debug mode is on for this address space} */
    public boolean isDebug() {
        return debug != null;
    }

    /** Classes whose frames a leaked mapping's origin skips: they are on every mapping's stack. */
    private static final java.util.Set<String> MAP_MACHINERY = java.util.Set.of(DmaDebug.class.getName(),
            GuestMemory.class.getName(), DeviceAddressSpace.class.getName());

    /**
     * Checks that every DMA mapping has been unmapped, for tests and device teardown.
     *
     * @throws IllegalStateException listing each live mapping; in debug mode with the stack that
     *                               created it (the first as the cause, the others suppressed)
     */
    public void checkNoOutstandingMappings() {
        long live = liveMappings();
        if (debug == null) {
            if (live != 0) {
                throw new IllegalStateException(live + " DMA mapping(s) still live (enable debug mode to see where"
                        + " they were created)");
            }
            return;
        }
        List<Throwable> origins = debug.outstanding();
        if (origins.isEmpty()) {
            return;
        }
        StringBuilder message = new StringBuilder(origins.size() + " DMA mapping(s) never unmapped:");
        for (Throwable origin : origins) {
            message.append("\n  ").append(origin.getMessage().substring("DMA mapping created here: ".length()));
            // From the first frame outside the map machinery: where the device mapped.
            StackTraceElement[] frames = origin.getStackTrace();
            int first = 0;
            while (first < frames.length - 1 && MAP_MACHINERY.contains(frames[first].getClassName())) {
                first++;
            }
            for (int f = first; f < Math.min(frames.length, first + 6); f++) {
                message.append("\n      at ").append(frames[f]);
            }
        }
        IllegalStateException failure = new IllegalStateException(message.toString(), origins.getFirst());
        origins.stream().skip(1).forEach(failure::addSuppressed);
        throw failure;
    }

    /**
     * Asks to be told when bounce space frees: QEMU's {@code cpu_register_map_client}. The callback
     * runs once, on {@code executor}, after the next release of bounce space (or at once if no
     * bounce space is in use at all). A registration racing with the last unmap is never lost. Call
     * it after {@link #map} returned {@link BounceExhausted}, and release your own partial mappings
     * first, or two devices can wait on each other.
     *
     * @param executor where the callback runs; if it rejects the task, the callback runs on the
     *                 releasing thread instead of being lost
     * @param callback what to run, typically "retry the map"
     * @return the registration, which can be cancelled
     * @throws NullPointerException  if an argument is null
     * @throws IllegalStateException if the address space is closed
     */
    public MapClient registerMapClient(Executor executor, Runnable callback) {
        snapshot();
        return bouncePool.registerClient(executor, callback);
    }

    /** {@return the bounce pool (capacity and bytes in flight)} */
    public BouncePool bouncePool() {
        return bouncePool;
    }

    /**
     * {@return the dirty log over the RAM address space: the default backing and every region's own
     * backing (see {@link #backingOffsetOf})}
     */
    public DirtyLog dirtyLog() {
        return dirtyLog;
    }

    // ------------------------------------------------------------------ provider side

    /**
     * {@return the default RAM backing (the arena that regions without a backing of their own live
     * in), for provider code (filling ROM, sharing RAM with another process)}
     *
     * @throws IllegalStateException if the address space has no default RAM backing
     */
    public RamBacking backing() {
        if (backing == null) {
            throw new IllegalStateException("this address space has no RAM backing");
        }
        return backing;
    }

    /**
     * {@return how many regions' own backings the address space holds: those some region uses, and
     * those whose last mapping is not yet unmapped (each is unmapped, and stops counting, then)}
     */
    public synchronized int ownBackings() {
        return attached.size();
    }

    /** {@return the regions of the current snapshot, sorted by base address} */
    public List<Region> regions() {
        return snapshot().regions();
    }

    /**
     * {@return the region containing it, or empty if the address is unassigned}
     *
     * @param address an unsigned guest physical address
     */
    public Optional<Region> regionAt(long address) {
        AddressMap map = snapshot();
        int i = map.find(address);
        return i < 0 ? Optional.empty() : Optional.of(map.region(i));
    }

    /**
     * {@return the RAM address of the byte there: its index in the {@link DirtyLog}, whichever
     * backing it lives in (for the default backing, its offset in that backing), or empty if the
     * address is not RAM or ROM}
     *
     * @param address an unsigned guest physical address
     */
    public OptionalLong backingOffsetOf(long address) {
        AddressMap map = snapshot();
        int i = map.find(address);
        if (i < 0 || map.backingOffset(i) < 0) {
            return OptionalLong.empty();
        }
        return OptionalLong.of(map.ramAddress(i) + (address - map.base(i)));
    }

    /**
     * Adds a region at run time. Readers see either the old or the new map, never a mix. A RAM or
     * ROM region with a backing of its own hands it to this address space (see {@link RamRegion}).
     *
     * @param region the region; its name must be unused
     * @throws IllegalArgumentException if it overlaps another region, its name is taken, a RAM or
     *                                  ROM region lies outside its backing, or its own backing is
     *                                  closed or used by another address space
     * @throws IllegalStateException    if the address space is closed
     */
    public void addRegion(Region region) {
        transaction().add(region).commit();
    }

    /**
     * Removes a region at run time. New accesses and maps no longer see it at once; mappings made
     * before stay valid (and FROM_DEVICE bounce write-back still reaches the removed device) until
     * they are unmapped.
     *
     * @param name the region's name
     * @return a future completed when no mapping made while the region was present is live any
     *         more, after which the provider may reuse its backing bytes or tear down its device;
     *         a backing of the region's own that no region uses any more is unmapped (closed) by
     *         then, and the future fails if unmapping it failed
     * @throws IllegalArgumentException if no region has that name
     * @throws IllegalStateException    if the address space is closed
     */
    public CompletableFuture<Void> removeRegion(String name) {
        return transaction().remove(name).commit();
    }

    /**
     * Starts a set of region changes that become visible together, in one snapshot swap (QEMU's
     * {@code memory_region_transaction_begin/commit}): a reader sees all of them or none, so a
     * region replaced in a transaction is never unassigned, not even for an instant.
     *
     * @return an empty transaction; nothing changes until {@link RegionTransaction#commit()}
     */
    public RegionTransaction transaction() {
        return new RegionTransaction(this);
    }

    /**
     * Applies a transaction: removals first, then additions, validated as a whole and installed
     * in one snapshot swap.
     */
    synchronized CompletableFuture<Void> commit(List<String> removals, List<Region> additions) {
        AddressMap map = snapshot();
        List<Region> next = new ArrayList<>(map.regions());
        List<Region> removed = new ArrayList<>();
        for (String name : removals) {
            Region found = null;
            for (Region r : next) {
                if (r.name().equals(name)) {
                    found = r;
                    break;
                }
            }
            if (found == null) {
                throw new IllegalArgumentException("no region named '" + name + "'");
            }
            next.remove(found);
            removed.add(found);
        }
        for (Region region : additions) {
            for (Region r : next) {
                if (r.name().equals(region.name())) {
                    throw new IllegalArgumentException("a region named '" + region.name() + "' already exists");
                }
            }
            next.add(region);
        }
        AddressMap nextMap;
        java.util.Map<RamBacking, Attached> joining = join(additions);
        try {
            nextMap = new AddressMap(next, slots(joining), false); // throws on overlap, before any swap
        } catch (RuntimeException e) {
            unjoin(joining);
            throw e;
        }
        admit(joining, additions);
        install(nextMap);
        List<CompletableFuture<Void>> waits = new ArrayList<>();
        for (AddressMap old : undrained) {
            for (Region r : removed) {
                if (old.contains(r)) {
                    waits.add(old.drained);
                    break;
                }
            }
        }
        // Own backings no region uses any more: unmapped once every snapshot that reaches them has drained.
        java.util.Set<RamBacking> orphans = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Region r : removed) {
            RamBacking own = ownBacking(r);
            if (own != null && !nextMap.uses(own) && orphans.add(own)) {
                OwnBacking held = attached.get(own);
                long generation = ++held.generation;
                CompletableFuture<?>[] reaching = undrained.stream().filter(m -> m.uses(own)).map(m -> m.drained)
                        .toArray(CompletableFuture<?>[]::new);
                waits.add(CompletableFuture.allOf(reaching).thenRun(() -> releaseBacking(own, generation)));
            }
        }
        return CompletableFuture.allOf(waits.toArray(new CompletableFuture<?>[0]));
    }

    private static RamBacking ownBacking(Region region) {
        return switch (region) {
            case RamRegion ram -> ram.backing();
            case RomRegion rom -> rom.backing();
            case MmioRegion mmio -> null;
        };
    }

    /**
     * Claims the own backings of {@code regions} that this address space does not hold yet and
     * gives each a free range of RAM addresses. Undone by {@link #unjoin} if the change is rejected,
     * made final by {@link #admit}.
     *
     * @throws IllegalArgumentException if a backing is closed, used by another address space, or
     *                                  the RAM address space is full
     */
    private java.util.Map<RamBacking, Attached> join(List<Region> regions) {
        java.util.Map<RamBacking, Attached> joining = new java.util.IdentityHashMap<>();
        try {
            for (Region region : regions) {
                RamBacking own = ownBacking(region);
                if (own == null || attached.containsKey(own) || joining.containsKey(own)) {
                    continue;
                }
                if (own.isClosed()) {
                    throw new IllegalArgumentException("region '" + region.name() + "': its backing is closed");
                }
                own.claim(this);
                try {
                    long ramBase = placeRam(own.size());
                    try {
                        joining.put(own, Attached.of(own, ramBase));
                    } catch (RuntimeException e) {
                        ramRanges.remove(ramBase); // closed by its owner a moment ago
                        throw e;
                    }
                } catch (RuntimeException e) {
                    own.unclaim(this);
                    throw e;
                }
            }
            return joining;
        } catch (RuntimeException e) {
            unjoin(joining);
            throw e;
        }
    }

    private void unjoin(java.util.Map<RamBacking, Attached> joining) {
        for (Attached slot : joining.values()) {
            ramRanges.remove(slot.ramBase());
            slot.backing().unclaim(this);
        }
    }

    /** Makes joined backings part of the address space; nothing here fails on bad input. */
    private void admit(java.util.Map<RamBacking, Attached> joining, List<Region> added) {
        for (Attached slot : joining.values()) {
            attached.put(slot.backing(), new OwnBacking(slot));
            long size = slot.segment().byteSize();
            dirtyLog.extend(slot.ramBase() + size);
            // New memory in the guest: every client has yet to see it, as QEMU marks a new RAM block.
            dirtyLog.mark(slot.ramBase(), size);
        }
        for (Region region : added) {
            RamBacking own = ownBacking(region);
            if (own != null) {
                attached.get(own).generation++; // in use again: an unmap scheduled before is void
            }
        }
    }

    /** Where regions' bytes live while a change is checked: held and joining backings, and the default one. */
    private java.util.function.Function<RamBacking, Attached> slots(java.util.Map<RamBacking, Attached> joining) {
        return own -> {
            if (own == null) {
                return arena;
            }
            OwnBacking held = attached.get(own);
            return held != null ? held.slot : joining.get(own);
        };
    }

    /** First fit for {@code size} bytes of RAM addresses above the default backing, page-aligned. */
    private long placeRam(long size) {
        long rounded = (size + DirtyLog.PAGE_SIZE - 1) & -DirtyLog.PAGE_SIZE;
        long candidate = (ramFloor + DirtyLog.PAGE_SIZE - 1) & -DirtyLog.PAGE_SIZE;
        for (java.util.Map.Entry<Long, Long> range : ramRanges.entrySet()) {
            if (range.getKey() - candidate >= rounded) {
                break;
            }
            candidate = (range.getKey() + range.getValue() + DirtyLog.PAGE_SIZE - 1) & -DirtyLog.PAGE_SIZE;
        }
        if (candidate > DirtyLog.MAX_RAM_BYTES - rounded) {
            throw new IllegalArgumentException(String.format("no room for a 0x%x-byte backing: the RAM address space"
                    + " (0x%x bytes) is full", size, DirtyLog.MAX_RAM_BYTES));
        }
        ramRanges.put(candidate, rounded);
        return candidate;
    }

    /**
     * Unmaps a region's own backing that no region uses any more, unless a later change put it
     * back in use (or {@link #close()} took care of it).
     */
    private void releaseBacking(RamBacking own, long generation) {
        synchronized (this) {
            OwnBacking held = attached.get(own);
            if (held == null || held.generation != generation) {
                return;
            }
            attached.remove(own);
            ramRanges.remove(held.slot.ramBase());
        }
        own.close();
    }

    /**
     * Closes the address space: new accesses, maps and registrations throw IllegalStateException.
     * Live mappings stay valid; the backing and bounce memory are freed once the last one is
     * unmapped (see {@link #released()}). Idempotent.
     */
    @Override
    public synchronized void close() {
        if (current.closed) {
            return;
        }
        if (debug != null) {
            try {
                checkNoOutstandingMappings();
            } catch (IllegalStateException leaks) {
                System.getLogger(GuestMemory.class.getName()).log(System.Logger.Level.WARNING,
                        "guest memory closed with live DMA mappings", leaks);
            }
        }
        install(AddressMap.CLOSED);
        CompletableFuture.allOf(undrained.stream().map(m -> m.drained).toArray(CompletableFuture<?>[]::new))
                .thenRun(this::freeResources);
    }

    /** {@return completed when a closed address space has freed its backing and bounce memory} */
    public CompletableFuture<Void> released() {
        return released;
    }

    /** {@return the number of DMA mappings currently live} */
    public long liveMappings() {
        long n = current.liveMappings();
        for (AddressMap old : undrained) {
            n += old.liveMappings();
        }
        return n;
    }

    private void freeResources() {
        try {
            bouncePool.close();
            if (backing != null) {
                backing.close();
            }
            List<RamBacking> own;
            synchronized (this) {
                own = new ArrayList<>(attached.keySet());
                attached.clear();
                ramRanges.clear();
            }
            for (RamBacking b : own) {
                b.close();
            }
        } finally {
            released.complete(null);
        }
    }

    private void install(AddressMap next) {
        AddressMap old = current;
        current = next;
        for (RamView view : views) {
            view.regionsChanged();
        }
        undrained.add(old);
        old.drained.whenComplete((ignored, error) -> undrained.remove(old));
        old.retire();
    }

    /** {@return the current region map, the closed one once closed (no check: for comparisons)} */
    AddressMap current() {
        return current;
    }

    AddressMap snapshot() {
        AddressMap map = current;
        if (map.closed) {
            throw new IllegalStateException("guest memory is closed");
        }
        return map;
    }

    /**
     * Builds a {@link GuestMemory}. RAM and ROM added without a backing offset are laid out one
     * after another in the backing; if no backing is given, an anonymous one of that total size is
     * allocated. Not thread-safe.
     */
    public static final class Builder {
        private final List<Region> regions = new ArrayList<>();
        private RamBacking backing;
        private long nextBackingOffset;
        private long bouncePoolBytes = BouncePool.DEFAULT_CAPACITY;
        private boolean debug = DmaDebug.FORCED;

        private Builder() {
        }

        /**
         * Uses {@code backing} for RAM and ROM; the built GuestMemory owns it and closes it.
         *
         * @param backing the host memory behind RAM and ROM
         * @return this builder
         * @throws NullPointerException if backing is null
         */
        public Builder backing(RamBacking backing) {
            this.backing = Objects.requireNonNull(backing, "backing");
            return this;
        }

        /**
         * Adds RAM at the next free backing offset.
         *
         * @param name  the region's name, unique in the address space
         * @param base  its first guest physical address
         * @param size  its size in bytes, positive (the backing is rounded up to whole pages)
         * @return this builder
         * @throws IllegalArgumentException if the region is invalid (see {@link RamRegion})
         */
        public Builder ram(String name, long base, long size) {
            ram(name, base, size, nextBackingOffset);
            return this;
        }

        /**
         * Adds RAM at an explicit backing offset (two regions may alias the same bytes).
         *
         * @param name  the region's name, unique in the address space
         * @param base  its first guest physical address
         * @param size  its size in bytes, positive (the backing is rounded up to whole pages)
         * @param backingOffset where in the backing its bytes start
         * @return this builder
         * @throws IllegalArgumentException if the region is invalid (see {@link RamRegion})
         */
        public Builder ram(String name, long base, long size, long backingOffset) {
            return region(new RamRegion(name, base, size, backingOffset));
        }

        /**
         * Adds RAM that lives in a backing of its own (a DIMM, memory shared with another process)
         * rather than in the default backing; the built address space owns that backing.
         *
         * @param name          the region's name, unique in the address space
         * @param base          its first guest physical address
         * @param size          its size in bytes, positive
         * @param backing       the region's own backing, writable
         * @param backingOffset where in that backing its bytes start
         * @return this builder
         * @throws IllegalArgumentException if the region is invalid (see {@link RamRegion})
         * @throws NullPointerException     if backing is null
         */
        public Builder ram(String name, long base, long size, RamBacking backing, long backingOffset) {
            return region(new RamRegion(name, base, size, backingOffset, Objects.requireNonNull(backing, "backing")));
        }

        /**
         * Adds ROM at the next free backing offset.
         *
         * @param name  the region's name, unique in the address space
         * @param base  its first guest physical address
         * @param size  its size in bytes, positive (the backing is rounded up to whole pages)
         * @return this builder
         * @throws IllegalArgumentException if the region is invalid (see {@link RomRegion})
         */
        public Builder rom(String name, long base, long size) {
            return region(new RomRegion(name, base, size, nextBackingOffset));
        }

        /**
         * Adds an MMIO region served by {@code handler}.
         *
         * @param name    the region's name, unique in the address space
         * @param base    its first guest physical address
         * @param size    its size in bytes, positive
         * @param handler the device that serves its accesses
         * @return this builder
         * @throws IllegalArgumentException if the region is invalid (see {@link MmioRegion})
         */
        public Builder mmio(String name, long base, long size, MmioHandler handler) {
            return region(new MmioRegion(name, base, size, handler));
        }

        /**
         * Adds any region.
         *
         * @param region the region
         * @return this builder
         * @throws NullPointerException if region is null
         */
        public Builder region(Region region) {
            regions.add(Objects.requireNonNull(region, "region"));
            long end = switch (region) {
                case RamRegion r -> r.backing() == null ? r.backingOffset() + r.size() : 0;
                case RomRegion r -> r.backing() == null ? r.backingOffset() + r.size() : 0;
                case MmioRegion r -> 0;
            };
            nextBackingOffset = Math.max(nextBackingOffset, end);
            return this;
        }

        /**
         * Sets the bound on bounce bytes in flight (default {@link BouncePool#DEFAULT_CAPACITY}).
         *
         * @param bytes the most bytes that may be bounced at once
         * @return this builder
         * @throws IllegalArgumentException if bytes is less than 1
         */
        public Builder bouncePoolBytes(long bytes) {
            if (bytes < 1) {
                throw new IllegalArgumentException("bounce pool must hold at least 1 byte, was " + bytes);
            }
            this.bouncePoolBytes = bytes;
            return this;
        }

        /**
         * Turns DMA debug mode on or off (default: off, unless {@code -Dguestdma.dma.debug=true}).
         * In debug mode a mapping's segment throws IllegalStateException once unmapped, live
         * mappings remember where they were created ({@link GuestMemory#checkNoOutstandingMappings},
         * and a warning at close), and FROM_DEVICE bounce buffers are poisoned so unmap catches
         * a device that wrote past its access length or claims bytes it never wrote. It costs a
         * shared arena per mapping; off, it costs nothing.
         *
         * @param enabled whether debug mode is on
         * @return this builder
         */
        public Builder debug(boolean enabled) {
            this.debug = enabled;
            return this;
        }

        /**
         * Builds the address space. Without an explicit {@link #backing}, RAM and ROM get an
         * anonymous backing just large enough, advised for transparent huge pages
         * ({@code MADV_HUGEPAGE}) as QEMU advises guest RAM; where the kernel offers none, small
         * pages are used and nothing else changes.
         *
         * @return the address space
         * @throws IllegalArgumentException if regions overlap, share a name, or do not fit their
         *                                  backing, or an own backing is closed or used elsewhere
         * @throws java.io.UncheckedIOException if the kernel refuses the anonymous backing
         */
        public GuestMemory build() {
            RamBacking chosen = backing;
            if (chosen == null && nextBackingOffset > 0) {
                long size = (nextBackingOffset + DirtyLog.PAGE_SIZE - 1) & -DirtyLog.PAGE_SIZE;
                chosen = RamBacking.anonymous(size);
                // As QEMU does for guest RAM: transparent huge pages where the kernel offers them
                // (fewer TLB misses when devices and the kernel walk guest buffers). Declined
                // advice changes nothing.
                try {
                    chosen.adviseHugePages();
                } catch (PosixException e) {
                    // Not fatal: the memory works the same with small pages.
                }
            }
            java.util.Set<String> names = new java.util.HashSet<>();
            for (Region r : regions) {
                if (!names.add(r.name())) {
                    throw new IllegalArgumentException("a region named '" + r.name() + "' already exists");
                }
            }
            try {
                return new GuestMemory(chosen, List.copyOf(regions), bouncePoolBytes, debug);
            } catch (RuntimeException e) {
                if (chosen != null && backing == null) {
                    chosen.close();
                }
                throw e;
            }
        }
    }
}
