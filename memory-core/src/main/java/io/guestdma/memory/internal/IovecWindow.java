package io.guestdma.memory.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Byte ranges of native {@code struct iovec} arrays: a request's share of a caller's vector is
 * copied (entries, not bytes) into a scratch array, which the socket calls then consume as they
 * make progress. The caller's array is never modified, so it stays valid for its next use.
 */
public final class IovecWindow {
    /** {@code sizeof(struct iovec)}. */
    public static final long ENTRY = 16;

    private IovecWindow() {
    }

    /**
     * Makes sure a scratch array holds enough entries.
     *
     * @param current the array in use
     * @param entries how many entries are needed
     * @return {@code current} if it holds {@code entries} entries, else a larger array (freed by
     *         the garbage collector with its owner)
     */
    public static MemorySegment ensure(MemorySegment current, int entries) {
        if (current.byteSize() >= entries * ENTRY) {
            return current;
        }
        long capacity = Math.max(entries, 2 * current.byteSize() / ENTRY);
        return Arena.ofAuto().allocate(capacity * ENTRY, 8);
    }

    /**
     * Copies the entries of {@code src} (its first {@code count}) that cover bytes
     * {@code [from, from + bytes)} into {@code dst} from entry {@code at}, trimming the first and
     * the last to the range.
     *
     * @param src   the caller's iovec array
     * @param count how many of its entries are in use
     * @param from  the first byte of the range, counted over the entries
     * @param bytes the range's length
     * @param dst   the scratch array
     * @param at    the first entry of {@code dst} to write
     * @return how many entries were written
     */
    public static int copy(MemorySegment src, int count, long from, long bytes, MemorySegment dst, int at) {
        long start = 0;
        int i = 0;
        while (i < count) {
            long length = src.get(ValueLayout.JAVA_LONG, i * ENTRY + 8);
            if (start + length > from) {
                break;
            }
            start += length;
            i++;
        }
        int written = 0;
        long end = from + bytes;
        while (start < end) {
            long base = src.get(ValueLayout.JAVA_LONG, i * ENTRY);
            long length = src.get(ValueLayout.JAVA_LONG, i * ENTRY + 8);
            long skip = Math.max(0, from - start);
            long take = Math.min(length, end - start) - skip;
            long slot = (long) (at + written) * ENTRY;
            dst.set(ValueLayout.JAVA_LONG, slot, base + skip);
            dst.set(ValueLayout.JAVA_LONG, slot + 8, take);
            written++;
            start += length;
            i++;
        }
        return written;
    }

    /**
     * Consumes {@code n} bytes from entries {@code [first, end)}: fully used entries are skipped,
     * a partly used one is trimmed in place.
     *
     * @param iov   the iovec array
     * @param first the first entry with bytes left
     * @param end   one past the last entry in use
     * @param n     bytes a call consumed
     * @return the first entry with bytes left ({@code end} when all are used)
     */
    public static int advance(MemorySegment iov, int first, int end, long n) {
        int i = first;
        long left = n;
        while (i < end) {
            long length = iov.get(ValueLayout.JAVA_LONG, i * ENTRY + 8);
            if (left < length) {
                if (left > 0) {
                    iov.set(ValueLayout.JAVA_LONG, i * ENTRY, iov.get(ValueLayout.JAVA_LONG, i * ENTRY) + left);
                    iov.set(ValueLayout.JAVA_LONG, i * ENTRY + 8, length - left);
                }
                return i;
            }
            left -= length;
            i++;
        }
        return i;
    }

    /**
     * Consumes {@code n} bytes from the first {@code count} entries, as {@link #advance} from entry
     * 0, and moves the entries with bytes left to the front of the array, so that the next
     * {@code writev} or {@code readv} takes the array itself: a slice of it would be an object per
     * short transfer, and a socket takes a large request in parts.
     *
     * @param iov   the iovec array
     * @param count entries in use
     * @param n     bytes a call consumed
     * @return how many entries are left, now at the front
     */
    public static int consume(MemorySegment iov, int count, long n) {
        int first = advance(iov, 0, count, n);
        if (first > 0 && first < count) {
            MemorySegment.copy(iov, first * ENTRY, iov, 0, (count - first) * ENTRY);
        }
        return count - first;
    }
}
