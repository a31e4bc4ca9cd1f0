package io.guestdma.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * All-or-nothing DMA of a whole scatter-gather list, for devices whose transfers are messages
 * (network packets) that cannot be split into chunks like a disk transfer.
 *
 * <p>{@link #map} tries to map every range. If all of it maps, the device gets the mapped memory
 * (zero copy where it is RAM). If any part cannot be mapped because the bounce pool is full,
 * everything already mapped is released at once and the packet goes through a contiguous fallback
 * buffer with the copy path instead. A device therefore never holds part of the bounce pool while
 * waiting for more of it, which is the deadlock from the 2009 review: one bounce page, a packet
 * spanning RAM and two MMIO pages, and a device that would wait forever for the second page while
 * holding the first. Message boundaries are preserved: the packet is delivered whole, once.
 *
 * <p>The fallback buffer is either supplied by the caller or owned by this object and grown on
 * demand (then reused) up to a bound, {@value #DEFAULT_MAX_FALLBACK_BYTES} bytes unless set
 * otherwise: the packet's size comes from guest descriptors, so the host memory it may cost is
 * capped. A packet that does not map whole and is larger than the bound fails with
 * {@link DmaAccessException}; packets that map whole (RAM, or bounce space to spare) have no size
 * limit, since they cost no host memory. Ranges that run past 2<sup>64</sup> continue as unassigned
 * space (reads zero, writes dropped), never at guest address 0.
 *
 * <p>The packet is mapped as one chunk of a {@link DmaStream} whose RAM pieces are windows of the
 * RAM's backing in the returned vector: no {@link DmaMapping} object and no slice is made for
 * them, so a packet into or out of RAM allocates nothing, whichever buffers it uses (asking the
 * vector for a {@link IoVector#segment} cuts a slice).
 *
 * <p>Reusable across packets; not thread-safe.
 */
public final class DmaPacket {
    /**
     * The default bound on an owned fallback buffer: a 64 KiB TSO/GSO packet with its headers
     * and room to spare, far below what a guest could otherwise make the host allocate.
     */
    public static final long DEFAULT_MAX_FALLBACK_BYTES = 256 * 1024;

    private final AddressSpace memory;
    private final long maxFallbackBytes;
    private final DmaStream stream;
    /** The fallback buffer as a vector (or an empty one for an empty packet). */
    private final IoVector iov = new IoVector();
    private MemorySegment fallback;
    private SgList sg;
    private DmaDirection direction;
    private boolean usedFallback;
    private boolean active;

    /**
     * A packet mapper with its own fallback buffer, allocated when first needed.
     *
     * @param memory the address space packets are mapped from
     * @throws NullPointerException if memory is null
     */
    public DmaPacket(AddressSpace memory) {
        this(memory, DEFAULT_MAX_FALLBACK_BYTES);
    }

    /**
     * A packet mapper with its own fallback buffer, allocated when first needed and never larger
     * than {@code maxFallbackBytes}.
     *
     * @param memory           the address space packets are mapped from
     * @param maxFallbackBytes the largest packet that may go through the fallback buffer, at least 1
     * @throws NullPointerException     if memory is null
     * @throws IllegalArgumentException if maxFallbackBytes is less than 1
     */
    public DmaPacket(AddressSpace memory, long maxFallbackBytes) {
        this.memory = Objects.requireNonNull(memory, "memory");
        if (maxFallbackBytes < 1) {
            throw new IllegalArgumentException("maxFallbackBytes must be at least 1, was " + maxFallbackBytes);
        }
        this.maxFallbackBytes = maxFallbackBytes;
        this.stream = new DmaStream(memory, true);
    }

    /**
     * A packet mapper using a caller-supplied fallback buffer; packets larger than it cannot fall
     * back.
     *
     * @param memory   the address space packets are mapped from
     * @param fallback a writable segment
     * @throws NullPointerException     if an argument is null
     * @throws IllegalArgumentException if fallback is read-only
     */
    public DmaPacket(AddressSpace memory, MemorySegment fallback) {
        this.memory = Objects.requireNonNull(memory, "memory");
        if (fallback.isReadOnly()) {
            throw new IllegalArgumentException("fallback buffer must be writable");
        }
        this.fallback = fallback;
        this.maxFallbackBytes = fallback.byteSize();
        this.stream = new DmaStream(memory, true);
    }

    /** {@return the largest packet that may go through the fallback buffer} */
    public long maxFallbackBytes() {
        return maxFallbackBytes;
    }

    /**
     * Maps the whole packet. For TO_DEVICE the returned vector holds the packet's bytes; for
     * FROM_DEVICE the device fills it and then calls {@link #complete}.
     *
     * @param sg        the packet's ranges, unchanged until {@link #complete}
     * @param direction TO_DEVICE (transmit) or FROM_DEVICE (receive)
     * @return the packet's memory: {@code sg.size()} bytes, direct or the fallback buffer
     * @throws IllegalStateException if the previous packet was not completed
     * @throws DmaAccessException    if the packet does not map whole and is larger than
     *                               {@link #maxFallbackBytes()}, or (TO_DEVICE) an MMIO handler in
     *                               its ranges failed; nothing is mapped then and no packet is
     *                               active
     */
    public IoVector map(SgList sg, DmaDirection direction) {
        if (active) {
            throw new IllegalStateException("the previous packet is still mapped: complete it first");
        }
        this.sg = Objects.requireNonNull(sg, "sg");
        this.direction = Objects.requireNonNull(direction, "direction");
        usedFallback = false;
        iov.reset();
        if (sg.size() == 0) {
            active = true;
            return iov;
        }
        stream.start(sg, direction, 1);
        // A failed handler throws with nothing mapped; a full pool maps less than all of it.
        if (stream.mapNext(sg.size()) == sg.size()) {
            active = true;
            return stream.iov();
        }
        stream.abandonChunk(); // hold nothing of the pool while the packet goes the copy path
        if (sg.size() > maxFallbackBytes) {
            throw new DmaAccessException(String.format("packet of %d bytes at 0x%x does not map whole and exceeds"
                    + " the %d-byte fallback bound", sg.size(), sg.address(0), maxFallbackBytes),
                    sg.address(0), sg.size());
        }
        MemorySegment buffer = fallbackOf(sg.size());
        if (direction == DmaDirection.TO_DEVICE) {
            long at = 0;
            for (int i = 0; i < sg.count(); i++) {
                if (readEntry(i, buffer.asSlice(at, sg.length(i))).failed()) {
                    iov.reset();
                    throw new DmaAccessException(String.format("packet range 0x%x (+0x%x): the device's handler"
                            + " failed", sg.address(i), sg.length(i)), sg.address(i), sg.length(i));
                }
                at += sg.length(i);
            }
        }
        if (buffer.byteSize() > 0) {
            iov.add(buffer);
        }
        usedFallback = true;
        active = true;
        return iov;
    }

    /** {@return whether the current packet went through the fallback buffer (copy path)} */
    public boolean usedFallback() {
        return usedFallback;
    }

    /**
     * Finishes the packet: unmaps it, and for FROM_DEVICE makes the first {@code accessLength}
     * bytes visible to the guest (marked dirty, or copied out of the fallback buffer); bytes past
     * them are left as the guest had them.
     *
     * @param accessLength bytes the device accessed, 0..packet size
     * @return the worst outcome of making the bytes visible: {@link AccessResult#DEVICE_ERROR} if an
     *         MMIO handler failed to take them (the packet is finished either way)
     * @throws IllegalStateException    if no packet is mapped
     * @throws IllegalArgumentException if accessLength is outside 0..packet size
     */
    public AccessResult complete(long accessLength) {
        if (!active) {
            throw new IllegalStateException("no packet is mapped");
        }
        if (accessLength < 0 || accessLength > sg.size()) {
            throw new IllegalArgumentException("access length " + accessLength + " is outside 0.." + sg.size());
        }
        active = false;
        AccessResult result = AccessResult.OK;
        try {
            if (usedFallback) {
                if (direction == DmaDirection.FROM_DEVICE) {
                    long at = 0;
                    for (int i = 0; i < sg.count() && at < accessLength; i++) {
                        long len = Math.min(sg.length(i), accessLength - at);
                        result = result.and(writeEntry(i, fallback.asSlice(at, len)));
                        at += len;
                    }
                }
            } else if (sg.size() > 0) {
                result = stream.unmapChunk(accessLength);
            }
        } finally {
            iov.reset();
        }
        return result;
    }

    /** Copies entry {@code i} into {@code into}; its bytes past 2^64 read as zero, as in unassigned space. */
    private AccessResult readEntry(int i, MemorySegment into) {
        long inRange = bytesBelowTop(i);
        AccessResult result = memory.read(sg.address(i), into.asSlice(0, inRange));
        if (inRange < into.byteSize()) {
            into.asSlice(inRange).fill((byte) 0);
            result = result.and(AccessResult.UNASSIGNED);
        }
        return result;
    }

    /** Copies {@code from} into entry {@code i}; bytes that would land past 2^64 are dropped. */
    private AccessResult writeEntry(int i, MemorySegment from) {
        long inRange = Math.min(bytesBelowTop(i), from.byteSize());
        AccessResult result = memory.write(sg.address(i), from.asSlice(0, inRange));
        return inRange < from.byteSize() ? result.and(AccessResult.UNASSIGNED) : result;
    }

    /** How many bytes of entry {@code i} lie below 2^64. */
    private long bytesBelowTop(int i) {
        long address = sg.address(i);
        long length = sg.length(i);
        return address != 0 && Long.compareUnsigned(length, -address) > 0 ? -address : length;
    }

    private MemorySegment fallbackOf(long size) {
        if (fallback != null && fallback.byteSize() >= size) {
            return fallback.asSlice(0, size);
        }
        // Grown to the packet, never past the bound (checked by the caller).
        fallback = Arena.ofAuto().allocate(Math.min(Math.max(size, 2048), maxFallbackBytes), 64);
        return fallback.asSlice(0, size);
    }
}
