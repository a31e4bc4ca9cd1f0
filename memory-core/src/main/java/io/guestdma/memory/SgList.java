package io.guestdma.memory;

import java.util.Arrays;

/**
 * A scatter-gather list of guest physical ranges, QEMU's {@code QEMUSGList}: what a device
 * collects from its descriptors (PRD entries, virtqueue descriptors) before mapping them with
 * {@link DmaStream} or {@link DmaPacket}. Reusable: {@link #reset()} keeps the capacity. Not
 * thread-safe.
 */
public final class SgList {
    private long[] addresses;
    private long[] lengths;
    private int count;
    private long size;

    /** Creates an empty list. */
    public SgList() {
        this(8);
    }

    /**
     * Creates an empty list with room for {@code capacity} entries before it grows.
     *
     * @param capacity entries to allocate room for
     * @throws IllegalArgumentException if capacity is negative
     */
    public SgList(int capacity) {
        if (capacity < 0) {
            throw new IllegalArgumentException("negative capacity " + capacity);
        }
        addresses = new long[Math.max(capacity, 1)];
        lengths = new long[Math.max(capacity, 1)];
    }

    /**
     * Appends the bytes {@code [from, from + length)} of another list, as the ranges that hold
     * them (a device taking a request's payload after its header, say). Bytes past the end of
     * {@code source} are not there to append: the part is cut short.
     *
     * @param source the list to take from (not changed; it must not be this list)
     * @param from   the first byte, counted over the whole of {@code source}, at least 0
     * @param length bytes, at least 0
     * @return this list
     * @throws IllegalArgumentException if from or length is negative, source is this list, or the
     *                                  total would exceed {@link Long#MAX_VALUE}
     */
    public SgList addPart(SgList source, long from, long length) {
        if (from < 0 || length < 0) {
            throw new IllegalArgumentException("negative part [" + from + ", +" + length + ")");
        }
        if (source == this) {
            throw new IllegalArgumentException("a list cannot take a part of itself");
        }
        long skip = from;
        long left = length;
        for (int i = 0; i < source.count && left > 0; i++) {
            long len = source.lengths[i];
            if (skip >= len) {
                skip -= len;
                continue;
            }
            long take = Math.min(len - skip, left);
            add(source.addresses[i] + skip, take);
            left -= take;
            skip = 0;
        }
        return this;
    }

    /**
     * Appends a range. Ranges may be anywhere (RAM, MMIO, unassigned, near 2<sup>64</sup>): mapping
     * decides what they are. A zero-length range is ignored.
     *
     * @param address unsigned guest physical address
     * @param length  bytes, at least 0
     * @return this list
     * @throws IllegalArgumentException if length is negative or the list's total would exceed
     *                                  {@link Long#MAX_VALUE}
     */
    public SgList add(long address, long length) {
        if (length < 0) {
            throw new IllegalArgumentException("negative scatter-gather length " + length);
        }
        if (length == 0) {
            return this;
        }
        if (length > Long.MAX_VALUE - size) {
            throw new IllegalArgumentException("scatter-gather list would exceed 2^63-1 bytes");
        }
        if (count == addresses.length) {
            addresses = Arrays.copyOf(addresses, count * 2);
            lengths = Arrays.copyOf(lengths, count * 2);
        }
        addresses[count] = address;
        lengths[count] = length;
        count++;
        size += length;
        return this;
    }

    /** {@return the number of ranges} */
    public int count() {
        return count;
    }

    /** {@return the total bytes of all ranges} */
    public long size() {
        return size;
    }

    /**
     * {@return the address of range {@code index}}
     *
     * @param index which range, from 0
     * @throws IndexOutOfBoundsException if index is not in 0..count-1
     */
    public long address(int index) {
        return addresses[java.util.Objects.checkIndex(index, count)];
    }

    /**
     * {@return the length of range {@code index}}
     *
     * @param index which range, from 0
     * @throws IndexOutOfBoundsException if index is not in 0..count-1
     */
    public long length(int index) {
        return lengths[java.util.Objects.checkIndex(index, count)];
    }

    /** Empties the list, keeping its capacity. */
    public void reset() {
        count = 0;
        size = 0;
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder("SgList[");
        for (int i = 0; i < count; i++) {
            s.append(i == 0 ? "" : ", ").append(String.format("0x%x+0x%x", addresses[i], lengths[i]));
        }
        return s.append(']').toString();
    }
}
