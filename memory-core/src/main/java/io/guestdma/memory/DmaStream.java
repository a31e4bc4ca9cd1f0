package io.guestdma.memory;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * Streaming DMA over a scatter-gather list, QEMU's {@code dma_blk_cb} loop: map as much of the
 * list as possible into an {@link IoVector}, hand that to the I/O layer, unmap, repeat. A disk
 * transfer need not be mapped all at once; it proceeds in chunks.
 *
 * <pre>{@code
 * stream.start(sg, DmaDirection.FROM_DEVICE, 512);
 * while (!stream.done()) {
 *     long n = stream.mapNext(Long.MAX_VALUE);
 *     if (n == 0) { memory.registerMapClient(executor, this::continueLater); return; }
 *     backend.readv(offset, stream.iov());
 *     stream.unmapChunk(n);
 *     offset += n;
 * }
 * }</pre>
 *
 * <p>Chunks are trimmed to the alignment (512 for disks) unless they reach the end of the list
 * or the requested maximum. The <em>remainder</em> past the last aligned byte is what is dropped
 * (QEMU discarded the aligned part instead for years, gitlab #259): whole mappings in the trimmed
 * tail are unmapped at once with access length 0, so their bounce space frees, and the cursor
 * steps back so the next chunk starts exactly there.
 *
 * <p>RAM pieces of a chunk are mapped without creating {@link DmaMapping} objects: the chunk
 * holds one lease on the address-space snapshot (so a region removed meanwhile stays valid until
 * {@link #unmapChunk}, exactly as for mappings), and the slices handed to the I/O vector are kept
 * per chunk slot and reused when a later chunk covers the same guest pages, as a device that DMAs
 * to the same buffers does. A steady-state disk transfer into RAM therefore allocates nothing.
 * Non-RAM pieces (bounced) and every piece in DMA debug mode go through {@link GuestMemory#map}.
 * {@link GuestMemory#liveMappings()} counts a chunk's RAM pieces as one mapping.
 *
 * <p>Reusable across transfers. Not thread-safe: one device drives it, although chunk I/O may
 * run on another thread between {@link #mapNext} and {@link #unmapChunk}.
 */
public final class DmaStream {
    private final GuestMemory memory;
    /** The device's view the lists are in, or null when they are root addresses. */
    private final DeviceAddressSpace device;
    private final DeviceAddressSpace.Route route = new DeviceAddressSpace.Route();
    /** The IOMMU translation generation the current chunk holds, or null. */
    private DeviceAddressSpace.Epoch chunkEpoch;
    private final IoVector iov = new IoVector();
    private final boolean windows;
    /** Per piece of the current chunk: its mapping, or null for a RAM piece mapped without one. */
    private DmaMapping[] mappings = new DmaMapping[16];
    private long[] used = new long[16];
    /** Per RAM piece: its RAM address (for the dirty log). */
    private long[] ramOffset = new long[16];
    private int mappingCount;
    /** The snapshot lease that keeps the current chunk's RAM pieces valid; null without one. */
    private AddressMap lease;
    private int leaseStripe;

    /** Per chunk slot: the last RAM slice handed out, reused when the same pages come again. */
    private MemorySegment[] sliceCache = new MemorySegment[16];
    private long[] sliceAt = new long[16];
    /** Per chunk slot: the memory the cached slice was cut from (a backing, read-only or not). */
    private MemorySegment[] sliceFrom = new MemorySegment[16];

    private SgList sg;
    private DmaDirection direction;
    private long alignment;
    private int index;
    private long indexOffset;
    private long position;
    private long chunkBytes;
    private int chunkStartIndex;
    private long chunkStartOffset;

    /**
     * Creates a stream with no transfer in progress; {@link #start} begins one.
     *
     * @param space the address space the lists point into: the root, or a device's view (its
     *              enable switch, window and IOMMU apply to every piece; RAM behind it is still
     *              mapped without copies)
     * @throws NullPointerException if space is null
     */
    public DmaStream(AddressSpace space) {
        this(space, false);
    }

    /**
     * @param windows whether RAM pieces go into the vector as windows of their backing
     *                ({@link IoVector#addWindow}) rather than as slices: for {@link DmaPacket},
     *                whose buffers change packet after packet (a ring's worth of receive buffers,
     *                frames of every length), so that no slice is ever cut for the copies a NIC
     *                makes; the slice cache serves devices that come back to the same buffers and
     *                hand the pieces to I/O layers that ask for segments
     */
    DmaStream(AddressSpace space, boolean windows) {
        Objects.requireNonNull(space, "space");
        this.memory = space.root();
        this.device = space instanceof DeviceAddressSpace d ? d : null;
        this.windows = windows;
    }

    /**
     * Begins a transfer over {@code sg}. The list must not change until the transfer ends.
     *
     * @param sg        the ranges, in transfer order
     * @param direction TO_DEVICE (device reads guest memory) or FROM_DEVICE
     * @param alignment chunk alignment in bytes: 1 for none, 512 for disks; a power of two no
     *                  larger than the bounce pool, so a chunk can always be formed
     * @throws IllegalArgumentException if alignment is not a power of two or exceeds the bounce pool
     * @throws IllegalStateException    if a chunk of the previous transfer is still mapped
     */
    public void start(SgList sg, DmaDirection direction, int alignment) {
        if (alignment < 1 || Integer.bitCount(alignment) != 1) {
            throw new IllegalArgumentException("alignment must be a power of two, was " + alignment);
        }
        if (alignment > memory.bouncePool().capacity()) {
            throw new IllegalArgumentException("alignment " + alignment + " exceeds the bounce pool ("
                    + memory.bouncePool().capacity() + " bytes): a chunk through MMIO could never form");
        }
        requireNoChunk();
        this.sg = Objects.requireNonNull(sg, "sg");
        this.direction = Objects.requireNonNull(direction, "direction");
        this.alignment = alignment;
        index = 0;
        indexOffset = 0;
        position = 0;
    }

    /**
     * Maps the next chunk: as much of the list from the current position as will map, at most
     * {@code maxBytes}, trimmed to the alignment unless it ends at the list's end or at
     * {@code maxBytes}.
     *
     * @param maxBytes upper bound for the chunk, at least 1
     * <p>Bytes of an entry that runs past 2<sup>64</sup> are bounced as unassigned space (reads see
     * zeros, writes are dropped); addresses never wrap to 0.
     *
     * @return the chunk's bytes, now in {@link #iov()}; 0 if nothing could be mapped, either because
     *         the list is {@link #done()} or, when it is not, because the bounce pool is exhausted
     *         (register a map client and call again)
     * @throws DmaAccessException       if a piece of the chunk is a device whose handler failed
     *                                  while its bounce buffer was filled: the pieces already mapped
     *                                  are released, nothing stays mapped, and the position stays at
     *                                  the chunk's start
     * @throws IllegalStateException    if no transfer was started or the previous chunk is still mapped
     * @throws IllegalArgumentException if maxBytes is less than 1
     */
    public long mapNext(long maxBytes) {
        if (sg == null) {
            throw new IllegalStateException("no transfer started");
        }
        if (maxBytes < 1) {
            throw new IllegalArgumentException("maxBytes must be at least 1, was " + maxBytes);
        }
        requireNoChunk();
        chunkStartIndex = index;
        chunkStartOffset = indexOffset;
        long total = 0;
        boolean complete = false;
        try {
            total = mapChunk(maxBytes);
            complete = true;
        } finally {
            if (!complete) {
                abandonChunk(); // a failed piece, or a fatal error below: hold nothing
            }
        }
        long excess = total % alignment;
        if (excess != 0 && index < sg.count() && total < maxBytes) {
            trimTail(excess);
            total -= excess;
        }
        chunkBytes = total;
        if (mappingCount == 0) {
            releaseHolds();
        }
        return total;
    }

    /** Maps pieces from the cursor on until the list, the pool or {@code maxBytes} runs out. */
    private long mapChunk(long maxBytes) {
        AddressMap map = leaseForRam();
        long total = 0;
        while (index < sg.count() && total < maxBytes) {
            long base = sg.address(index);
            long address = base + indexOffset;
            boolean beyondTop = indexOffset != 0 && Long.compareUnsigned(address, base) < 0;
            long want = Math.min(sg.length(index) - indexOffset, maxBytes - total);
            if (!beyondTop && address != 0 && Long.compareUnsigned(want, -address) > 0) {
                want = -address; // addresses never wrap past 2^64, as in GuestMemory.map
            }
            boolean nowhere = beyondTop;
            if (device != null && !beyondTop) {
                if (chunkEpoch == null) {
                    chunkEpoch = device.enter(); // before routing, held until the chunk is unmapped
                }
                device.route(address, want, direction, route);
                if (route.kind == DeviceAddressSpace.ROUTE_FAULT) {
                    throw new DmaAccessException(String.format("DMA %s 0x%x (+0x%x): device %s's IOMMU does not permit"
                            + " it", direction, address, route.length, device.name()), address, route.length);
                }
                nowhere = route.kind == DeviceAddressSpace.ROUTE_NOWHERE;
                want = route.length;
                if (!nowhere) {
                    address = route.rootAddress;
                }
            }
            long mapped;
            int region = map == null || nowhere ? -1 : map.find(address);
            if (region >= 0 && map.isDirect(region, direction)) {
                long run = map.directRunLast(region, direction) - address + 1; // 0 only for a run to 2^64 from 0
                mapped = run == 0 ? want : Math.min(want, run);
                long offset = address - map.base(region);
                pushRam(map.segment(region, direction), map.backingOffset(region) + offset,
                        map.ramAddress(region) + offset, mapped);
            } else {
                MapResult result = nowhere ? memory.mapNowhere(address, want, direction)
                        : memory.map(address, want, direction);
                if (result instanceof DmaMapping m) {
                    push(m);
                    iov.add(m.segment());
                    mapped = m.length();
                } else if (result instanceof MapFailed f) {
                    throw new DmaAccessException(String.format("DMA %s 0x%x (+0x%x) failed: the device's handler "
                            + "failed while the bounce buffer was filled", direction, f.address(), f.requested()),
                            f.address(), f.requested());
                } else {
                    break;
                }
            }
            total += mapped;
            indexOffset += mapped;
            if (indexOffset == sg.length(index)) {
                index++;
                indexOffset = 0;
            }
        }
        return total;
    }

    /** Takes the chunk's snapshot lease, unless RAM must go through real mappings (debug mode). */
    private AddressMap leaseForRam() {
        if (memory.isDebug()) {
            return null;
        }
        AddressMap map;
        int stripe;
        do {
            map = memory.snapshot();
            stripe = map.acquire(); // -1: a region change retired the snapshot between load and lease
        } while (stripe < 0);
        lease = map;
        leaseStripe = stripe;
        return map;
    }

    /** Gives back what a chunk holds besides its mappings: the snapshot lease and the IOMMU generation. */
    private void releaseHolds() {
        releaseLease();
        DeviceAddressSpace.Epoch held = chunkEpoch;
        chunkEpoch = null;
        DeviceAddressSpace.exit(held);
    }

    private void releaseLease() {
        if (lease != null) {
            AddressMap held = lease;
            lease = null;
            held.release(leaseStripe);
        }
    }

    /**
     * Adds a RAM piece: {@code length} bytes of {@code from} (a backing's memory, read-only for
     * TO_DEVICE) at {@code offset}, whose dirty-log index is {@code ramAddress}.
     */
    private void pushRam(MemorySegment from, long offset, long ramAddress, long length) {
        int slot = mappingCount;
        grow(slot);
        mappings[slot] = null;
        used[slot] = length;
        ramOffset[slot] = ramAddress;
        if (windows) {
            mappingCount++;
            iov.addWindow(from, offset, length);
            return;
        }
        MemorySegment slice = sliceCache[slot];
        if (slice == null || sliceFrom[slot] != from || sliceAt[slot] != offset || slice.byteSize() != length) {
            slice = from.asSlice(offset, length);
            sliceCache[slot] = slice;
            sliceAt[slot] = offset;
            sliceFrom[slot] = from;
        }
        mappingCount++;
        iov.add(slice);
    }

    private void grow(int slot) {
        if (slot == mappings.length) {
            int capacity = slot * 2;
            mappings = Arrays.copyOf(mappings, capacity);
            used = Arrays.copyOf(used, capacity);
            ramOffset = Arrays.copyOf(ramOffset, capacity);
            sliceCache = Arrays.copyOf(sliceCache, capacity);
            sliceAt = Arrays.copyOf(sliceAt, capacity);
            sliceFrom = Arrays.copyOf(sliceFrom, capacity);
        }
    }

    /** {@return the current chunk's memory, valid between {@link #mapNext} and {@link #unmapChunk}} */
    public IoVector iov() {
        return iov;
    }

    /**
     * Unmaps the current chunk and moves past it. The first {@code accessLength} bytes of the chunk
     * count as accessed (written back or marked dirty); the rest are unmapped with access 0.
     *
     * Every piece is released whatever happens to the others.
     *
     * @param accessLength 0..chunk bytes
     * @return the worst write-back outcome of the chunk's bounce pieces ({@link AccessResult#OK}
     *         when it had none): {@link AccessResult#DEVICE_ERROR} means an MMIO handler failed to
     *         take bytes the device wrote, which a device reports as a DMA error
     * @throws IllegalArgumentException if accessLength is outside 0..chunk bytes
     * @throws IllegalStateException    if no chunk is mapped
     */
    public AccessResult unmapChunk(long accessLength) {
        if (mappingCount == 0) {
            throw new IllegalStateException("no chunk is mapped");
        }
        if (accessLength < 0 || accessLength > chunkBytes) {
            throw new IllegalArgumentException("access length " + accessLength + " is outside 0.." + chunkBytes);
        }
        AccessResult result = releaseAll(accessLength);
        position += chunkBytes;
        chunkBytes = 0;
        return result;
    }

    /**
     * Unmaps the current chunk with access length 0 and steps back to its start, so the next
     * {@link #mapNext} maps the same bytes again (for a request that will be retried). Does nothing
     * if no chunk is mapped.
     */
    public void abandonChunk() {
        if (mappingCount == 0) {
            releaseHolds();
            return;
        }
        releaseAll(0);
        index = chunkStartIndex;
        indexOffset = chunkStartOffset;
        chunkBytes = 0;
    }

    /** {@return whether the whole list has been mapped (the last chunk may still be mapped)} */
    public boolean done() {
        return sg != null && index >= sg.count();
    }

    /** {@return bytes of the list completed with {@link #unmapChunk} since {@link #start}} */
    public long position() {
        return position;
    }

    /** {@return bytes in the mapped chunk (0 if none)} */
    public long chunkBytes() {
        return chunkBytes;
    }

    private void trimTail(long excess) {
        long left = excess;
        while (left > 0) {
            int last = mappingCount - 1;
            long len = used[last];
            if (len <= left) {
                // A whole mapping in the tail: give it back now so its bounce space frees.
                if (mappings[last] != null) {
                    memory.unmap(mappings[last], 0);
                }
                mappings[last] = null;
                mappingCount--;
                left -= len;
                stepBack(len);
            } else {
                used[last] = len - left;
                stepBack(left);
                left = 0;
            }
        }
        iov.discardBack(excess);
    }

    private void stepBack(long bytes) {
        long left = bytes;
        while (left > 0) {
            if (indexOffset == 0) {
                index--;
                indexOffset = sg.length(index);
            }
            long step = Math.min(left, indexOffset);
            indexOffset -= step;
            left -= step;
        }
    }

    private void push(DmaMapping m) {
        grow(mappingCount);
        mappings[mappingCount] = m;
        used[mappingCount] = m.length();
        mappingCount++;
    }

    private AccessResult releaseAll(long accessLength) {
        long left = accessLength;
        AccessResult result = AccessResult.OK;
        Throwable failure = null;
        for (int i = 0; i < mappingCount; i++) {
            long access = Math.min(left, used[i]);
            left -= access;
            try {
                if (mappings[i] != null) {
                    result = result.and(memory.unmap(mappings[i], access));
                } else if (direction == DmaDirection.FROM_DEVICE && access > 0) {
                    memory.dirtyLog().mark(ramOffset[i], access);
                }
            } catch (Throwable e) {
                // Keep unmapping the rest: one failing piece (a debug-mode misuse report, a fatal
                // error) must not leak the others.
                if (failure == null) {
                    failure = e;
                }
            }
            mappings[i] = null;
        }
        mappingCount = 0;
        releaseHolds();
        iov.reset();
        rethrow(failure);
        return result;
    }

    /**
     * Rethrows what a release loop caught from one piece, after it released all the others; the
     * pieces' unmap throws only unchecked exceptions and errors.
     */
    static void rethrow(Throwable failure) {
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        if (failure instanceof Error e) {
            throw e;
        }
    }

    private void requireNoChunk() {
        if (mappingCount != 0) {
            throw new IllegalStateException("the previous chunk is still mapped: unmapChunk or abandonChunk first");
        }
    }
}
