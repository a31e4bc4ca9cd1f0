package io.guestdma.memory;

import java.util.BitSet;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Which 4 KiB pages of guest RAM were written, per independent client (migration, display, the
 * code cache...). Pages are pages of the address space's RAM address space (QEMU's
 * {@code ram_addr_t} space), not guest physical pages, so a page stays the same page when regions
 * are remapped: the default {@link RamBacking} sits at RAM address 0, and each region with a
 * backing of its own gets a range of its own above it for as long as the backing is in use.
 * {@link GuestMemory#backingOffsetOf} turns a guest address into its RAM address, whichever backing
 * it lives in, and every client call below takes RAM addresses, so a region's dirty bits are read
 * and cleared the same way wherever its bytes live. A backing that joins the address space counts
 * as written in full (its contents are new to every client, as QEMU marks a new RAM block), and
 * the log grows to cover it.
 *
 * <p>Set by copy-path writes to RAM and by {@link GuestMemory#unmap} of FROM_DEVICE RAM mappings,
 * for exactly the {@code accessLen} bytes the device said it wrote. With no clients registered,
 * marking costs one volatile read.
 *
 * <p>Thread-safe: marking and {@link Client#getAndClear} may race; a write that races with a
 * get-and-clear is reported either by that call or by the next one, never lost.
 */
public final class DirtyLog {
    /** Size of a tracked page in bytes. */
    public static final int PAGE_SIZE = 4096;
    private static final int PAGE_SHIFT = 12;
    private static final VarHandle WORD = MethodHandles.arrayElementVarHandle(long[].class);
    /*
     * A client's bitmap is cut into chunks of 2^16 pages (256 MiB of RAM, 8 KiB of bits), so that it
     * can grow when a backing joins without copying bits that other threads are setting: growth
     * publishes a longer array of chunks that shares the old ones.
     */
    private static final int CHUNK_SHIFT = 16;
    private static final int CHUNK_WORDS = 1 << (CHUNK_SHIFT - 6);
    /** The largest RAM address space the log covers: 64 TiB. */
    static final long MAX_RAM_BYTES = 1L << 46;

    private volatile long pages;
    private final CopyOnWriteArrayList<Client> clients = new CopyOnWriteArrayList<>();
    private volatile Client[] active = new Client[0];

    DirtyLog(long ramBytes) {
        this.pages = pagesOf(ramBytes);
    }

    private static long pagesOf(long ramBytes) {
        if (ramBytes < 0 || ramBytes > MAX_RAM_BYTES) {
            throw new IllegalArgumentException("RAM address space too large for the dirty log: " + ramBytes);
        }
        return (ramBytes + PAGE_SIZE - 1) >>> PAGE_SHIFT;
    }

    /** {@return how many pages the log covers (the RAM address space in use, rounded up to pages)} */
    public long pages() {
        return pages;
    }

    /** Grows the log (every client's bitmap) to cover RAM addresses below {@code ramBytes}. */
    void extend(long ramBytes) {
        long wanted = pagesOf(ramBytes);
        synchronized (clients) {
            if (wanted <= pages) {
                return;
            }
            for (Client client : clients) {
                client.grow(wanted);
            }
            pages = wanted;
        }
    }

    /**
     * Adds an independent client. Its bitmap starts clean: only writes from now on are reported.
     *
     * @param name what the client is for (shown in {@link Client#toString()})
     * @return the new client
     * @throws NullPointerException if name is null
     */
    public Client register(String name) {
        Objects.requireNonNull(name, "name");
        synchronized (clients) {
            Client client = new Client(name, pages);
            clients.add(client);
            active = clients.toArray(new Client[0]);
            return client;
        }
    }

    void mark(long backingOffset, long length) {
        Client[] targets = active;
        if (targets.length == 0 || length <= 0) {
            return;
        }
        long first = backingOffset >>> PAGE_SHIFT;
        long last = (backingOffset + length - 1) >>> PAGE_SHIFT;
        for (Client client : targets) {
            client.set(first, last);
        }
    }

    /** One consumer's view of the log. Obtained from {@link DirtyLog#register}. */
    public final class Client {
        private final String name;
        private volatile long[][] chunks = new long[0][];
        private volatile boolean registered = true;

        private Client(String name, long pages) {
            this.name = name;
            grow(pages);
        }

        /** Adds chunks up to {@code pages}; the existing ones (being marked meanwhile) are shared. */
        private void grow(long pages) {
            long[][] old = chunks;
            int wanted = (int) ((pages + (1L << CHUNK_SHIFT) - 1) >>> CHUNK_SHIFT);
            if (wanted > old.length) {
                long[][] next = java.util.Arrays.copyOf(old, wanted);
                for (int c = old.length; c < wanted; c++) {
                    next[c] = new long[CHUNK_WORDS];
                }
                chunks = next;
            }
        }

        private void set(long firstPage, long lastPage) {
            long[][] all = chunks;
            for (long page = firstPage; page <= lastPage; page++) {
                long[] bits = all[(int) (page >>> CHUNK_SHIFT)];
                int word = (int) (page >>> 6) & (CHUNK_WORDS - 1);
                long bit = 1L << page;
                // A plain read first keeps already-dirty pages (the common case) free of atomics.
                if ((bits[word] & bit) == 0) {
                    WORD.getAndBitwiseOr(bits, word, bit);
                }
            }
        }

        private long[] words(long page) {
            return chunks[(int) (page >>> CHUNK_SHIFT)];
        }

        /**
         * Reports and clears the dirty pages of a range of RAM addresses.
         *
         * @param backingOffset start of the range, a RAM address ({@link GuestMemory#backingOffsetOf});
         *                      pages are counted from the page containing it
         * @param length        bytes in the range, at least 0
         * @return bit {@code i} set when page {@code floor(backingOffset/4096) + i} was dirty
         * @throws IndexOutOfBoundsException if the range is not within the RAM address space
         * @throws IllegalStateException     if the client was unregistered
         */
        public BitSet getAndClear(long backingOffset, long length) {
            checkRange(backingOffset, length);
            BitSet result = new BitSet();
            if (length == 0) {
                return result;
            }
            long first = backingOffset >>> PAGE_SHIFT;
            long last = (backingOffset + length - 1) >>> PAGE_SHIFT;
            for (long page = first; page <= last; ) {
                long word = page >>> 6;
                int lowBit = (int) (page & 63);
                int highBit = (int) Math.min(63, lowBit + (last - page));
                long mask = (highBit == 63 ? -1L : (1L << (highBit + 1)) - 1) & (-1L << lowBit);
                long taken = (long) WORD.getAndBitwiseAnd(words(page), (int) word & (CHUNK_WORDS - 1), ~mask) & mask;
                while (taken != 0) {
                    int b = Long.numberOfTrailingZeros(taken);
                    result.set((int) (((word << 6) + b) - first));
                    taken &= taken - 1;
                }
                page = (word << 6) + highBit + 1;
            }
            return result;
        }

        /**
         * {@return whether its page is dirty for this client (does not clear)}
         *
         * @param backingOffset a RAM address
         * @throws IndexOutOfBoundsException if the address is not within the RAM address space
         */
        public boolean isDirty(long backingOffset) {
            checkRange(backingOffset, 1);
            long page = backingOffset >>> PAGE_SHIFT;
            return ((long) WORD.getVolatile(words(page), (int) (page >>> 6) & (CHUNK_WORDS - 1)) & (1L << page)) != 0;
        }

        /** {@return the number of dirty pages for this client (does not clear)} */
        public long dirtyPages() {
            long n = 0;
            for (long[] bits : chunks) {
                for (int i = 0; i < bits.length; i++) {
                    n += Long.bitCount((long) WORD.getVolatile(bits, i));
                }
            }
            return n;
        }

        /** Stops tracking for this client; later calls on it throw IllegalStateException. */
        public void unregister() {
            synchronized (clients) {
                registered = false;
                clients.remove(this);
                active = clients.toArray(new Client[0]);
            }
        }

        private void checkRange(long offset, long length) {
            if (!registered) {
                throw new IllegalStateException("dirty log client '" + name + "' was unregistered");
            }
            long bytes = pages << PAGE_SHIFT;
            if (offset < 0 || length < 0 || offset > bytes || length > bytes - offset) {
                throw new IndexOutOfBoundsException(String.format(
                        "range [0x%x, +0x%x) is outside the %d-byte RAM address space", offset, length, bytes));
            }
        }

        @Override
        public String toString() {
            return "DirtyLog.Client[" + name + "]";
        }
    }
}
