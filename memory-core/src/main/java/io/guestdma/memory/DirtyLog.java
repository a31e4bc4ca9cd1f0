package io.guestdma.memory;

import java.util.BitSet;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Which 4 KiB pages of guest RAM were written, per independent client (migration, display, the
 * code cache...). Pages are pages of the {@link RamBacking} (QEMU's {@code ram_addr_t} space), so
 * a page stays the same page when regions are remapped; {@link GuestMemory#backingOffsetOf} turns a
 * guest address into a backing offset.
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

    private final long pages;
    private final CopyOnWriteArrayList<Client> clients = new CopyOnWriteArrayList<>();
    private volatile Client[] active = new Client[0];

    DirtyLog(long backingBytes) {
        this.pages = (backingBytes + PAGE_SIZE - 1) >>> PAGE_SHIFT;
        if (pages > (long) Integer.MAX_VALUE * 64) {
            throw new IllegalArgumentException("backing too large for the dirty log: " + backingBytes);
        }
    }

    /** {@return how many pages the log covers (the backing size rounded up to pages)} */
    public long pages() {
        return pages;
    }

    /**
     * Adds an independent client. Its bitmap starts clean: only writes from now on are reported.
     *
     * @param name what the client is for (shown in {@link Client#toString()})
     * @return the new client
     * @throws NullPointerException if name is null
     */
    public Client register(String name) {
        Client client = new Client(Objects.requireNonNull(name, "name"));
        synchronized (clients) {
            clients.add(client);
            active = clients.toArray(new Client[0]);
        }
        return client;
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
        private final long[] bits = new long[(int) ((pages + 63) >>> 6)];
        private volatile boolean registered = true;

        private Client(String name) {
            this.name = name;
        }

        private void set(long firstPage, long lastPage) {
            for (long page = firstPage; page <= lastPage; page++) {
                int word = (int) (page >>> 6);
                long bit = 1L << page;
                // A plain read first keeps already-dirty pages (the common case) free of atomics.
                if ((bits[word] & bit) == 0) {
                    WORD.getAndBitwiseOr(bits, word, bit);
                }
            }
        }

        /**
         * Reports and clears the dirty pages of a backing range.
         *
         * @param backingOffset start of the range in the backing; pages are counted from the page
         *                      containing it
         * @param length        bytes in the range, at least 0
         * @return bit {@code i} set when page {@code floor(backingOffset/4096) + i} was dirty
         * @throws IndexOutOfBoundsException if the range is not within the backing
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
                int word = (int) (page >>> 6);
                int lowBit = (int) (page & 63);
                int highBit = (int) Math.min(63, lowBit + (last - page));
                long mask = (highBit == 63 ? -1L : (1L << (highBit + 1)) - 1) & (-1L << lowBit);
                long taken = (long) WORD.getAndBitwiseAnd(bits, word, ~mask) & mask;
                while (taken != 0) {
                    int b = Long.numberOfTrailingZeros(taken);
                    result.set((int) ((((long) word << 6) + b) - first));
                    taken &= taken - 1;
                }
                page = ((long) word << 6) + highBit + 1;
            }
            return result;
        }

        /**
         * {@return whether its page is dirty for this client (does not clear)}
         *
         * @param backingOffset a byte offset in the backing
         * @throws IndexOutOfBoundsException if the offset is not within the backing
         */
        public boolean isDirty(long backingOffset) {
            checkRange(backingOffset, 1);
            long page = backingOffset >>> PAGE_SHIFT;
            return ((long) WORD.getVolatile(bits, (int) (page >>> 6)) & (1L << page)) != 0;
        }

        /** {@return the number of dirty pages for this client (does not clear)} */
        public long dirtyPages() {
            long n = 0;
            for (int i = 0; i < bits.length; i++) {
                n += Long.bitCount((long) WORD.getVolatile(bits, i));
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
                        "range [0x%x, +0x%x) is outside the %d-byte RAM backing", offset, length, bytes));
            }
        }

        @Override
        public String toString() {
            return "DirtyLog.Client[" + name + "]";
        }
    }
}
