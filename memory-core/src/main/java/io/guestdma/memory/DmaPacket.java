package io.guestdma.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
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
 * demand (then reused). Reusable across packets; not thread-safe.
 */
public final class DmaPacket {
    private final GuestMemory memory;
    private final boolean ownsFallback;
    private final IoVector iov = new IoVector();
    private MemorySegment fallback;
    private DmaMapping[] mappings = new DmaMapping[8];
    private int mappingCount;
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
    public DmaPacket(GuestMemory memory) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.ownsFallback = true;
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
    public DmaPacket(GuestMemory memory, MemorySegment fallback) {
        this.memory = Objects.requireNonNull(memory, "memory");
        if (fallback.isReadOnly()) {
            throw new IllegalArgumentException("fallback buffer must be writable");
        }
        this.fallback = fallback;
        this.ownsFallback = false;
    }

    /**
     * Maps the whole packet. For TO_DEVICE the returned vector holds the packet's bytes; for
     * FROM_DEVICE the device fills it and then calls {@link #complete}.
     *
     * @param sg        the packet's ranges, unchanged until {@link #complete}
     * @param direction TO_DEVICE (transmit) or FROM_DEVICE (receive)
     * @return the packet's memory: {@code sg.size()} bytes, direct or the fallback buffer
     * @throws IllegalStateException    if the previous packet was not completed
     * @throws IllegalArgumentException if the fallback is needed and a caller-supplied one is too small
     */
    public IoVector map(SgList sg, DmaDirection direction) {
        if (active) {
            throw new IllegalStateException("the previous packet is still mapped: complete it first");
        }
        this.sg = Objects.requireNonNull(sg, "sg");
        this.direction = Objects.requireNonNull(direction, "direction");
        usedFallback = false;
        iov.reset();
        if (!mapAll()) {
            release(0);
            iov.reset();
            MemorySegment buffer = fallbackOf(sg.size());
            if (direction == DmaDirection.TO_DEVICE) {
                long at = 0;
                for (int i = 0; i < sg.count(); i++) {
                    memory.read(sg.address(i), buffer.asSlice(at, sg.length(i)));
                    at += sg.length(i);
                }
            }
            if (buffer.byteSize() > 0) {
                iov.add(buffer);
            }
            usedFallback = true;
        }
        active = true;
        return iov;
    }

    /** @return whether the current packet went through the fallback buffer (copy path) */
    public boolean usedFallback() {
        return usedFallback;
    }

    /**
     * Finishes the packet: unmaps it, and for FROM_DEVICE makes the first {@code accessLength}
     * bytes visible to the guest (marked dirty, or copied out of the fallback buffer); bytes past
     * them are left as the guest had them.
     *
     * @param accessLength bytes the device accessed, 0..packet size
     * @throws IllegalStateException    if no packet is mapped
     * @throws IllegalArgumentException if accessLength is outside 0..packet size
     */
    public void complete(long accessLength) {
        if (!active) {
            throw new IllegalStateException("no packet is mapped");
        }
        if (accessLength < 0 || accessLength > sg.size()) {
            throw new IllegalArgumentException("access length " + accessLength + " is outside 0.." + sg.size());
        }
        active = false;
        if (usedFallback) {
            if (direction == DmaDirection.FROM_DEVICE) {
                long at = 0;
                for (int i = 0; i < sg.count() && at < accessLength; i++) {
                    long len = Math.min(sg.length(i), accessLength - at);
                    memory.write(sg.address(i), fallback.asSlice(at, len));
                    at += len;
                }
            }
        } else {
            release(accessLength);
        }
        iov.reset();
    }

    private boolean mapAll() {
        for (int i = 0; i < sg.count(); i++) {
            long done = 0;
            while (done < sg.length(i)) {
                if (!(memory.map(sg.address(i) + done, sg.length(i) - done, direction) instanceof DmaMapping m)) {
                    return false;
                }
                if (mappingCount == mappings.length) {
                    mappings = Arrays.copyOf(mappings, mappingCount * 2);
                }
                mappings[mappingCount++] = m;
                iov.add(m.segment());
                done += m.length();
            }
        }
        return true;
    }

    private void release(long accessLength) {
        long left = accessLength;
        for (int i = 0; i < mappingCount; i++) {
            long access = Math.min(left, mappings[i].length());
            left -= access;
            memory.unmap(mappings[i], access);
            mappings[i] = null;
        }
        mappingCount = 0;
    }

    private MemorySegment fallbackOf(long size) {
        if (fallback != null && fallback.byteSize() >= size) {
            return fallback.asSlice(0, size);
        }
        if (!ownsFallback) {
            throw new IllegalArgumentException("packet of " + size + " bytes needs the fallback buffer, which holds only "
                    + fallback.byteSize());
        }
        fallback = Arena.ofAuto().allocate(Math.max(size, 2048), 64);
        return fallback.asSlice(0, size);
    }
}
