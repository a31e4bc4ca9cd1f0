package io.guestdma.block;

import io.guestdma.memory.AccessResult;
import io.guestdma.memory.AddressSpace;
import io.guestdma.memory.DmaAccessException;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.SgList;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * The copy data path as {@link DmaBlockIo.Chunks}: guest memory goes through a heap buffer instead
 * of being mapped, the way emulators without zero-copy DMA work (and the way a device model's
 * {@code COPY} mode measures what mapping saves). A chunk is copied out of guest memory into the
 * buffer when it is "mapped" (TO_DEVICE) and back into guest memory, only its access length, when
 * it is "unmapped" (FROM_DEVICE). The device's {@link DmaBlockIo.ChunkIo} then moves
 * {@link #buffer(int)} to or from its backend with one plain call.
 *
 * <p>Guest memory is reached through the device's {@link AddressSpace} copy path, so MMIO and
 * unassigned space behave as for any device access; a handler that fails while a TO_DEVICE chunk
 * is gathered fails the chunk with {@link DmaAccessException}, one that fails while read data is
 * scattered back is reported by {@link #unmapChunk} as {@link AccessResult#DEVICE_ERROR}. Ranges
 * past 2<sup>64</sup> are the caller's to refuse (a scatter-gather list's entries do not wrap).
 *
 * <p>Reusable across transfers; not thread-safe (one transfer at a time, as DmaBlockIo runs it).
 */
public final class CopyChunks implements DmaBlockIo.Chunks {
    private final AddressSpace memory;
    private final byte[] buffer;
    private final IoVector iov = new IoVector(1);
    private SgList sg;
    private DmaDirection direction;
    private int index;
    private long entryOffset;
    private long chunkBytes;

    /**
     * A copy path with its own heap buffer.
     *
     * @param memory     the device's view of guest memory
     * @param chunkBytes the buffer's size: the largest chunk, at least 1
     * @throws IllegalArgumentException if chunkBytes is not positive
     * @throws NullPointerException     if memory is null
     */
    public CopyChunks(AddressSpace memory, int chunkBytes) {
        this.memory = Objects.requireNonNull(memory, "memory");
        if (chunkBytes < 1) {
            throw new IllegalArgumentException("chunkBytes must be positive, was " + chunkBytes);
        }
        this.buffer = new byte[chunkBytes];
    }

    /**
     * Begins a transfer over a list.
     *
     * @param list      the guest's ranges, unchanged until the transfer ends
     * @param dir       TO_DEVICE (the guest's bytes go to the backend) or FROM_DEVICE
     * @throws NullPointerException if list or dir is null
     */
    public void start(SgList list, DmaDirection dir) {
        sg = Objects.requireNonNull(list, "list");
        direction = Objects.requireNonNull(dir, "dir");
        index = 0;
        entryOffset = 0;
        chunkBytes = 0;
        iov.reset();
    }

    /**
     * The current chunk's first {@code length} bytes as a heap buffer, for a backend's plain
     * {@code read}/{@code write}.
     *
     * @param length bytes, up to the chunk's size
     * @return a buffer over them (position 0, limit {@code length})
     * @throws IndexOutOfBoundsException if length is negative or past the buffer
     */
    public ByteBuffer buffer(int length) {
        return ByteBuffer.wrap(buffer, 0, length);
    }

    @Override
    public long mapNext(long maxBytes) {
        long remaining = 0;
        for (int i = index; i < sg.count() && remaining < buffer.length; i++) {
            remaining += sg.length(i) - (i == index ? entryOffset : 0);
        }
        long chunk = Math.min(Math.min(remaining, buffer.length), maxBytes);
        if (chunk <= 0) {
            return 0;
        }
        if (direction == DmaDirection.TO_DEVICE && copyPieces((int) chunk, false).failed()) {
            throw new DmaAccessException("a range of the chunk is a device whose handler failed",
                    sg.address(index) + entryOffset, chunk);
        }
        chunkBytes = chunk;
        iov.reset();
        iov.add(MemorySegment.ofArray(buffer).asSlice(0, chunk));
        return chunk;
    }

    @Override
    public boolean done() {
        return index >= sg.count();
    }

    @Override
    public IoVector iov() {
        return iov;
    }

    @Override
    public AccessResult unmapChunk(long accessLength) {
        AccessResult result = AccessResult.OK;
        if (direction == DmaDirection.FROM_DEVICE && accessLength > 0) {
            result = copyPieces((int) accessLength, true);
        }
        advance(chunkBytes);
        chunkBytes = 0;
        iov.reset();
        return result;
    }

    @Override
    public void abandonChunk() {
        chunkBytes = 0; // nothing is held; the cursor has not moved
        iov.reset();
    }

    /** Copies {@code chunk} bytes from the cursor on between guest memory and the buffer. */
    private AccessResult copyPieces(int chunk, boolean toGuest) {
        AccessResult result = AccessResult.OK;
        int i = index;
        long into = entryOffset;
        int done = 0;
        while (done < chunk) {
            int piece = (int) Math.min(sg.length(i) - into, chunk - done);
            long address = sg.address(i) + into;
            result = result.and(toGuest ? memory.write(address, buffer, done, piece)
                    : memory.read(address, buffer, done, piece));
            done += piece;
            into += piece;
            if (into == sg.length(i)) {
                i++;
                into = 0;
            }
        }
        return result;
    }

    private void advance(long chunk) {
        long left = chunk;
        while (left > 0) {
            long step = Math.min(sg.length(index) - entryOffset, left);
            entryOffset += step;
            left -= step;
            if (entryOffset == sg.length(index)) {
                index++;
                entryOffset = 0;
            }
        }
    }
}
