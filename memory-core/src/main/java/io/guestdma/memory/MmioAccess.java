package io.guestdma.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Splits an access to an MMIO region into what its handler accepts: naturally aligned pieces no
 * wider than {@link MmioHandler#maxAccessSize()}, and pieces narrower than
 * {@link MmioHandler#minAccessSize()} widened to an aligned minimum-size access (read-modify-write
 * for stores), as QEMU's {@code access_with_adjusted_size} does.
 */
final class MmioAccess {
    private MmioAccess() {
    }

    /** Loads {@code size} (1..8) bytes at region offset {@code offset}, any alignment, little-endian. */
    static long load(MmioHandler handler, long offset, int size) {
        long value = 0;
        int done = 0;
        while (done < size) {
            int piece = pieceSize(handler, offset + done, size - done);
            value |= loadPiece(handler, offset + done, piece) << (8 * done);
            done += piece;
        }
        return value;
    }

    /** Stores the low {@code 8*size} bits of {@code value} at region offset {@code offset}. */
    static void store(MmioHandler handler, long offset, int size, long value) {
        int done = 0;
        while (done < size) {
            int piece = pieceSize(handler, offset + done, size - done);
            storePiece(handler, offset + done, piece, value >>> (8 * done));
            done += piece;
        }
    }

    /** Reads {@code buffer.byteSize()} bytes starting at region offset {@code offset} into buffer. */
    static void read(MmioHandler handler, long offset, MemorySegment buffer) {
        long length = buffer.byteSize();
        for (long done = 0; done < length; ) {
            int size = (int) Math.min(8, length - done);
            long value = load(handler, offset + done, size);
            for (int b = 0; b < size; b++) {
                buffer.set(ValueLayout.JAVA_BYTE, done + b, (byte) (value >>> (8 * b)));
            }
            done += size;
        }
    }

    /** Writes the bytes of buffer to the region starting at offset {@code offset}. */
    static void write(MmioHandler handler, long offset, MemorySegment buffer) {
        long length = buffer.byteSize();
        for (long done = 0; done < length; ) {
            int size = (int) Math.min(8, length - done);
            long value = 0;
            for (int b = 0; b < size; b++) {
                value |= (buffer.get(ValueLayout.JAVA_BYTE, done + b) & 0xffL) << (8 * b);
            }
            store(handler, offset + done, size, value);
            done += size;
        }
    }

    private static int pieceSize(MmioHandler handler, long offset, int remaining) {
        int size = Math.min(handler.maxAccessSize(), Integer.highestOneBit(remaining));
        while ((offset & (size - 1)) != 0) {
            size >>>= 1;
        }
        return size;
    }

    private static long loadPiece(MmioHandler handler, long offset, int size) {
        int min = handler.minAccessSize();
        if (size >= min) {
            return handler.read(offset, size) & mask(size);
        }
        long aligned = offset & -min;
        int shift = (int) (offset - aligned) * 8;
        return (handler.read(aligned, min) >>> shift) & mask(size);
    }

    private static void storePiece(MmioHandler handler, long offset, int size, long value) {
        int min = handler.minAccessSize();
        if (size >= min) {
            handler.write(offset, size, value & mask(size));
            return;
        }
        long aligned = offset & -min;
        int shift = (int) (offset - aligned) * 8;
        long old = handler.read(aligned, min);
        long merged = (old & ~(mask(size) << shift)) | ((value & mask(size)) << shift);
        handler.write(aligned, min, merged & mask(min));
    }

    private static long mask(int size) {
        return size == 8 ? -1L : (1L << (8 * size)) - 1;
    }
}
