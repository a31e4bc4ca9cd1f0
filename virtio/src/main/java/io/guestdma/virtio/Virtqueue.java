package io.guestdma.virtio;

import io.guestdma.memory.AccessResult;
import io.guestdma.memory.AddressSpace;
import io.guestdma.memory.DmaAccessException;
import io.guestdma.memory.RamView;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * The device side of one split virtqueue (virtio 1.x, section 2.6): the descriptor table, the
 * available ring the driver fills and the used ring the device fills, all in guest memory.
 *
 * <p>The three areas are pinned as {@link RamView}s when the queue is enabled, so that the index
 * loads and stores in the hot path are single ordered accesses with no region lookup: the avail
 * index is loaded with acquire ordering (the ring entries and descriptors the driver wrote before
 * it are then visible), the used index is stored with release ordering (the driver then sees the
 * used entries written before it). Indirect descriptor tables are read through the copy path of
 * the device's {@link AddressSpace}.
 *
 * <p>Every guest-controlled value is checked, as QEMU's {@code virtqueue_split_pop} does: an avail
 * index more than the queue size ahead, a head or {@code next} index outside the table, a chain
 * longer than the table (a loop), zero-length buffers, a readable buffer after a writable one, an
 * indirect table whose length is not a multiple of 16 or that is not in memory, more than
 * {@value #MAX_SIZE} buffers in one chain, a chain's buffers adding up to 4 GiB or more, and ring
 * areas that are not RAM, not aligned as the specification demands, or a size that is not a power
 * of two. Any of these makes the queue <em>broken</em>: the call reports
 * {@link Pop#BROKEN} (or false) with {@link #error()} saying why, and the device sets
 * DEVICE_NEEDS_RESET; nothing throws, nothing loops for longer than {@value #MAX_SIZE} steps.
 *
 * <p>Not thread-safe: one thread at a time (the queue's I/O thread, under the device's queue
 * lock) uses a queue.
 */
public final class Virtqueue {
    /** The largest queue size (QEMU's {@code VIRTQUEUE_MAX_SIZE}), and the most buffers in one chain. */
    public static final int MAX_SIZE = 1024;
    /** Descriptor flag: the chain continues at {@code next}. */
    public static final int DESC_F_NEXT = 1;
    /** Descriptor flag: the device writes this buffer. */
    public static final int DESC_F_WRITE = 2;
    /** Descriptor flag: the buffer is a table of descriptors. */
    public static final int DESC_F_INDIRECT = 4;
    /** Avail ring flag: the driver asks for no interrupts (without EVENT_IDX). */
    public static final int AVAIL_F_NO_INTERRUPT = 1;
    /** Used ring flag: the device asks for no notifications (without EVENT_IDX). */
    public static final int USED_F_NO_NOTIFY = 1;

    private static final long FOUR_GIB = 1L << 32;
    private static final ValueLayout.OfLong LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** What {@link #pop} found. */
    public enum Pop {
        /** No request available. */
        EMPTY,
        /** A request is in the chain. */
        CHAIN,
        /** The ring is broken (see {@link #error()}); the device must set DEVICE_NEEDS_RESET. */
        BROKEN
    }

    /**
     * A device's per-request step for {@link #drain}. Devices implement it on an object they
     * keep (not a lambda made per drain), so that draining allocates nothing.
     */
    interface ChainProcessor {
        /** {@return whether the drain must end before taking another chain (device stopped, reset, gone)} */
        boolean stopBeforeNext();

        /**
         * Handles the chain just taken into the drain's {@link DescriptorChain}, outside the
         * queue's lock.
         *
         * @param chain the request
         * @return false to end the drain (the device broke, holds the request, or was reset);
         *         notifications are then left as the processor set them
         */
        boolean process(DescriptorChain chain);

        /**
         * The ring turned out to be broken; the drain ends after this returns.
         *
         * @param why the queue's {@link Virtqueue#error()}
         */
        void ringBroken(String why);
    }

    private final AddressSpace memory;
    private final int defaultSize;
    private final MemorySegment indirectEntry = MemorySegment.ofArray(new long[2]);

    private int size;
    private boolean enabled;
    private boolean eventIdx;
    private RamView desc;
    private RamView avail;
    private RamView used;
    private int lastAvail;
    private int shadowAvail;
    private int usedIdx;
    private int inUse;
    private int signalledUsed;
    private boolean signalledUsedValid;
    private String error;

    /**
     * Creates a queue, disabled, with its default size.
     *
     * @param memory      the device's view of guest memory (its bus master)
     * @param defaultSize the size the queue has after reset, a power of two from 1 to {@value #MAX_SIZE}
     * @throws IllegalArgumentException if defaultSize is invalid
     * @throws NullPointerException     if memory is null
     */
    public Virtqueue(AddressSpace memory, int defaultSize) {
        this.memory = Objects.requireNonNull(memory, "memory");
        if (defaultSize < 1 || defaultSize > MAX_SIZE || Integer.bitCount(defaultSize) != 1) {
            throw new IllegalArgumentException("queue size must be a power of two from 1 to " + MAX_SIZE
                    + ", was " + defaultSize);
        }
        this.defaultSize = defaultSize;
        this.size = defaultSize;
    }

    /** {@return the queue size the driver sees: the default until it writes another} */
    public int size() {
        return size;
    }

    /**
     * Sets the queue size as the driver's register write does; as in QEMU, 0 and sizes above
     * {@value #MAX_SIZE} are ignored, other values are kept and checked when the queue is enabled.
     *
     * @param value the value the driver wrote
     */
    public void setSize(int value) {
        if (value > 0 && value <= MAX_SIZE) {
            size = value;
        }
    }

    /** {@return whether the queue is enabled (its rings are pinned)} */
    public boolean isEnabled() {
        return enabled;
    }

    /** {@return why the queue broke, or null if it has not} */
    public String error() {
        return error;
    }

    /**
     * Enables the queue at the addresses the driver configured: the three areas are checked and
     * pinned. The indices start at 0.
     *
     * @param descAddress  the descriptor table (16-byte aligned, 16 &times; size bytes)
     * @param availAddress the available ring (2-byte aligned, 6 + 2 &times; size bytes)
     * @param usedAddress  the used ring (4-byte aligned, 6 + 8 &times; size bytes)
     * @return true if the queue is enabled; false if the configuration is invalid (see
     *         {@link #error()}), and the queue stays disabled
     */
    public boolean enable(long descAddress, long availAddress, long usedAddress) {
        enabled = false;
        if (Integer.bitCount(size) != 1) {
            return fail("queue size " + size + " is not a power of two");
        }
        if ((descAddress & 15) != 0 || (availAddress & 1) != 0 || (usedAddress & 3) != 0) {
            return fail(String.format("ring areas misaligned: desc 0x%x, avail 0x%x, used 0x%x", descAddress,
                    availAddress, usedAddress));
        }
        try {
            desc = memory.ramView(descAddress, 16L * size, ByteOrder.LITTLE_ENDIAN, false);
            avail = memory.ramView(availAddress, 6L + 2L * size, ByteOrder.LITTLE_ENDIAN, false);
            used = memory.ramView(usedAddress, 6L + 8L * size, ByteOrder.LITTLE_ENDIAN, true);
        } catch (DmaAccessException | IllegalStateException e) {
            disable();
            return fail("ring not in guest RAM: " + e.getMessage());
        }
        clearProgress();
        enabled = true;
        return true;
    }

    /**
     * Continues a ring that was in use before this queue was enabled (a vhost-user front end's
     * SET_VRING_BASE, or the same queue re-pinned after guest memory changed): the next request is
     * taken at avail index {@code nextAvail}, and the used index is the one the used ring holds, as
     * libvhost-user takes it. Nothing is taken or in flight afterwards.
     *
     * @param nextAvail the avail index of the next request, 0 to 65535
     * @return true if the queue continues there; false if it is not enabled, or its used ring is no
     *         longer reachable (then {@link #error()} says so)
     * @throws IllegalArgumentException if nextAvail is not a 16-bit index
     */
    public boolean resumeAt(int nextAvail) {
        if (nextAvail < 0 || nextAvail > 0xffff) {
            throw new IllegalArgumentException("avail index must be 0 to 65535, was " + nextAvail);
        }
        if (!enabled) {
            return false;
        }
        try {
            usedIdx = Short.toUnsignedInt(used.getShortAcquire(2));
        } catch (DmaAccessException | IllegalStateException e) {
            return fail("used ring no longer reachable: " + e.getMessage());
        }
        lastAvail = nextAvail;
        shadowAvail = nextAvail;
        inUse = 0;
        signalledUsedValid = false;
        return true;
    }

    /**
     * Sets whether VIRTIO_RING_F_EVENT_IDX applies (the driver accepted it): interrupts then follow
     * used_event and the device publishes avail_event.
     *
     * @param on whether the feature was negotiated
     */
    public void useEventIdx(boolean on) {
        eventIdx = on;
    }

    /** Stops using the rings (their views are dropped); size and features stay. */
    public void disable() {
        enabled = false;
        desc = null;
        avail = null;
        used = null;
    }

    /** Back to the power-on state: disabled, default size, no error. */
    public void reset() {
        disable();
        eventIdx = false;
        size = defaultSize;
        clearProgress();
    }

    /** Indices at 0, nothing taken, nothing signalled, no error: a ring's start. */
    private void clearProgress() {
        lastAvail = 0;
        shadowAvail = 0;
        usedIdx = 0;
        inUse = 0;
        signalledUsed = 0;
        signalledUsedValid = false;
        error = null;
    }

    private boolean fail(String why) {
        error = why;
        return false;
    }

    private Pop broken(String why) {
        error = why;
        return Pop.BROKEN;
    }

    /**
     * Takes the next available request, QEMU's {@code virtqueue_pop}.
     *
     * @param chain filled with the request when the result is {@link Pop#CHAIN}
     * @return what was found; {@link Pop#EMPTY} when the queue is disabled or broken already
     * @throws NullPointerException if chain is null
     */
    public Pop pop(DescriptorChain chain) {
        Objects.requireNonNull(chain, "chain");
        if (!enabled || error != null) {
            return Pop.EMPTY;
        }
        try {
            return popChecked(chain);
        } catch (DmaAccessException | IllegalStateException | IndexOutOfBoundsException e) {
            // The ring's RAM went away under the view (a region change), or memory closed.
            return broken("ring memory no longer reachable: " + e.getMessage());
        }
    }

    private Pop popChecked(DescriptorChain chain) {
        if (lastAvail == shadowAvail && !refreshAvail()) {
            return error != null ? Pop.BROKEN : Pop.EMPTY;
        }
        if (inUse >= size) {
            return broken("more requests taken than the queue size " + size);
        }
        int head = Short.toUnsignedInt(avail.getShort(4 + 2L * (lastAvail % size)));
        lastAvail = (lastAvail + 1) & 0xffff;
        if (head >= size) {
            return broken("avail ring offers descriptor " + head + " of a table of " + size);
        }
        if (eventIdx) {
            used.setShort(4 + 8L * size, (short) lastAvail);
        }
        Pop walked = walk(head, chain);
        if (walked == Pop.CHAIN) {
            inUse++;
        }
        return walked;
    }

    /** Reads the chain at {@code head} into {@code chain}, checking it as virtqueue_pop does. */
    private Pop walk(int head, DescriptorChain chain) {
        chain.start(head);
        long address = desc.getLong(16L * head);
        long length = Integer.toUnsignedLong(desc.getInt(16L * head + 8));
        int flags = Short.toUnsignedInt(desc.getShort(16L * head + 12));
        int next = Short.toUnsignedInt(desc.getShort(16L * head + 14));
        boolean indirect = (flags & DESC_F_INDIRECT) != 0;
        long table = 0;
        int max = size;
        if (indirect) {
            if (length == 0 || length % 16 != 0) {
                return broken("indirect table of " + length + " bytes (not a positive multiple of 16)");
            }
            table = address;
            max = (int) Math.min(length / 16, Integer.MAX_VALUE);
            if (!readIndirect(table, 0)) {
                return broken(String.format("indirect table at 0x%x is not in memory", table));
            }
            address = indirectEntry.get(LONG_LE, 0);
            length = Integer.toUnsignedLong(indirectEntry.get(INT_LE, 8));
            flags = Short.toUnsignedInt(indirectEntry.get(SHORT_LE, 12));
            next = Short.toUnsignedInt(indirectEntry.get(SHORT_LE, 14));
        }
        long readableBytes = 0;
        long writableBytes = 0;
        int visited = 0;
        while (true) {
            if (++visited > max || visited > MAX_SIZE) {
                return broken("looped descriptor chain (more than " + Math.min(max, MAX_SIZE) + " descriptors)");
            }
            if (length == 0) {
                return broken("zero-sized buffer in descriptor chain");
            }
            if (address != 0 && Long.compareUnsigned(length - 1, -address - 1) > 0) {
                return broken(String.format("buffer 0x%x+0x%x wraps past the top of memory", address, length));
            }
            if ((flags & DESC_F_WRITE) != 0) {
                writableBytes += length;
                if (writableBytes >= FOUR_GIB) {
                    return broken("writable buffers add up to 4 GiB or more");
                }
                chain.writable().add(address, length);
            } else {
                if (chain.writable().count() > 0) {
                    return broken("readable buffer after a writable one");
                }
                readableBytes += length;
                if (readableBytes >= FOUR_GIB) {
                    return broken("readable buffers add up to 4 GiB or more");
                }
                chain.readable().add(address, length);
            }
            if ((flags & DESC_F_NEXT) == 0) {
                break;
            }
            if (next >= max) {
                return broken("descriptor next index " + next + " outside a table of " + max);
            }
            if (indirect) {
                if (!readIndirect(table, next)) {
                    return broken(String.format("indirect table at 0x%x is not in memory", table));
                }
                address = indirectEntry.get(LONG_LE, 0);
                length = Integer.toUnsignedLong(indirectEntry.get(INT_LE, 8));
                flags = Short.toUnsignedInt(indirectEntry.get(SHORT_LE, 12));
                next = Short.toUnsignedInt(indirectEntry.get(SHORT_LE, 14));
            } else {
                address = desc.getLong(16L * next);
                length = Integer.toUnsignedLong(desc.getInt(16L * next + 8));
                flags = Short.toUnsignedInt(desc.getShort(16L * next + 12));
                next = Short.toUnsignedInt(desc.getShort(16L * next + 14));
            }
        }
        return Pop.CHAIN;
    }

    // ------------------------------------------------------------------ migration

    /**
     * Reads again the chain of a request taken before a migration, from the (migrated) descriptor
     * table, as QEMU's virtio_blk_load_device re-maps its in-flight elements. Nothing is taken:
     * the request already counts in {@link #inUse()}.
     *
     * @param head the chain's head index, below {@link #size()}
     * @param chain filled with the request
     * @return null if the chain was read; otherwise why not (the queue is left unbroken)
     */
    String reread(int head, DescriptorChain chain) {
        if (!enabled) {
            return "the queue is not enabled";
        }
        if (head < 0 || head >= size) {
            return "head " + head + " is outside a table of " + size;
        }
        String before = error;
        try {
            if (walk(head, chain) == Pop.CHAIN) {
                return null;
            }
            String why = error;
            error = before;
            return why;
        } catch (DmaAccessException | IllegalStateException | IndexOutOfBoundsException e) {
            error = before;
            return "ring memory not reachable: " + e.getMessage();
        }
    }

    /** Writes the ring progress (QEMU's last_avail_idx, used_idx, inuse, signalled_used). */
    void save(StateWriter out) {
        out.u16(size).bool(enabled).bool(eventIdx).u16(lastAvail).u16(usedIdx).u16(inUse);
        out.u16(signalledUsed).bool(signalledUsedValid).bool(error != null);
    }

    /**
     * Reads what {@link #save} wrote, after the transport re-enabled the queue at its addresses.
     * The indices must describe at most a queue's worth of requests in flight, and the used index
     * must be the one the (migrated) used ring holds, as QEMU checks on load.
     */
    void load(StateReader in, String where, long descAddress, long availAddress,
              long usedAddress) throws MigrationFormatException {
        reset();
        int savedSize = in.u16(where + ".size");
        if (savedSize < 1 || savedSize > MAX_SIZE) {
            throw in.failure(where + ".size", savedSize + " is outside 1.." + MAX_SIZE);
        }
        size = savedSize;
        boolean on = in.bool(where + ".enabled");
        eventIdx = in.bool(where + ".eventIdx");
        int last = in.u16(where + ".lastAvail");
        int usedIndex = in.u16(where + ".usedIdx");
        int taken = in.u16(where + ".inUse");
        int signalled = in.u16(where + ".signalledUsed");
        boolean signalledValid = in.bool(where + ".signalledUsedValid");
        boolean wasBroken = in.bool(where + ".broken");
        if (!on) {
            return;
        }
        if (!enable(descAddress, availAddress, usedAddress)) {
            throw in.failure(where + ".enabled", error);
        }
        if (taken > size || ((last - usedIndex) & 0xffff) > size) {
            throw in.failure(where + ".inUse", String.format("%d taken, last avail %d and used %d: more than the "
                    + "queue size %d in flight", taken, last, usedIndex, size));
        }
        int ringUsed;
        try {
            ringUsed = Short.toUnsignedInt(used.getShortAcquire(2));
        } catch (DmaAccessException | IllegalStateException e) {
            throw in.failure(where + ".usedIdx", "used ring not reachable: " + e.getMessage());
        }
        if (ringUsed != usedIndex) {
            throw in.failure(where + ".usedIdx", usedIndex + " but the used ring in guest memory says " + ringUsed);
        }
        lastAvail = last;
        shadowAvail = last;
        usedIdx = usedIndex;
        inUse = taken;
        signalledUsed = signalled;
        signalledUsedValid = signalledValid;
        if (wasBroken) {
            error = "broken before migration";
        }
    }

    /** Loads the avail index; false if nothing is new or the index is bad (then {@code error} is set). */
    private boolean refreshAvail() {
        int index = Short.toUnsignedInt(avail.getShortAcquire(2));
        int heads = (index - lastAvail) & 0xffff;
        if (heads > size) {
            error = "avail index moved from " + lastAvail + " to " + index + ", more than the queue size " + size;
            return false;
        }
        shadowAvail = index;
        return heads != 0;
    }

    private boolean readIndirect(long table, int index) {
        long at = table + 16L * index;
        if (Long.compareUnsigned(at, table) < 0 || Long.compareUnsigned(at + 15, at) < 0) {
            return false;
        }
        return memory.read(at, indirectEntry) == AccessResult.OK;
    }

    /**
     * Gives a request back without using it (QEMU's {@code virtqueue_detach_element}): it no longer
     * counts as taken. For a request the device dropped because the ring broke.
     */
    public void detach() {
        if (inUse > 0) {
            inUse--;
        }
    }

    /**
     * Gives back the last {@code count} requests taken, as if they had not been (QEMU's
     * {@code virtqueue_unpop}): the next {@link #pop} takes them again. For a device that took
     * buffers and found it cannot use them yet (a received frame that needs more of them).
     *
     * @param count requests to give back, 0 to {@link #inUse()}
     * @throws IllegalArgumentException if count is outside 0..{@link #inUse()}
     */
    public void unpop(int count) {
        if (count < 0 || count > inUse) {
            throw new IllegalArgumentException("cannot give back " + count + " requests, " + inUse + " taken");
        }
        lastAvail = (lastAvail - count) & 0xffff;
        inUse -= count;
    }

    /**
     * Puts a completed request in the used ring and publishes it (QEMU's {@code virtqueue_push}):
     * the entry is stored first, then the used index with release ordering.
     *
     * @param head   the chain's head index
     * @param length bytes the device wrote into the chain's writable buffers
     * @return true if it was published; false if the queue is disabled, broken, or its used ring
     *         is no longer RAM (then {@link #error()} says so)
     */
    public boolean push(int head, long length) {
        if (!enabled || error != null) {
            return false;
        }
        try {
            long entry = 4 + 8L * (usedIdx % size);
            used.setInt(entry, head);
            used.setInt(entry + 4, (int) length);
            usedIdx = (usedIdx + 1) & 0xffff;
            used.setShortRelease(2, (short) usedIdx);
            if (inUse > 0) {
                inUse--;
            }
            return true;
        } catch (DmaAccessException | IllegalStateException | UnsupportedOperationException e) {
            error = "used ring no longer reachable: " + e.getMessage();
            return false;
        }
    }

    /**
     * Whether the driver wants an interrupt for what was pushed since the last one (QEMU's
     * {@code virtio_should_notify}, split ring): with EVENT_IDX, when the used index passed the
     * driver's used_event; without, unless the driver set VRING_AVAIL_F_NO_INTERRUPT.
     *
     * @return whether to interrupt
     */
    public boolean shouldNotify() {
        if (!enabled) {
            return false;
        }
        try {
            // The used index stored by push must be visible before used_event or the avail flags
            // are read (QEMU's smp_mb in virtio_should_notify): release and acquire do not order a
            // store before a later load, even on x86, and a driver in another thread or process
            // that asks for an interrupt after we read its old request, then sees the old used
            // index, waits for an interrupt that never comes.
            VarHandle.fullFence();
            if (!eventIdx) {
                return (avail.getShortAcquire(0) & AVAIL_F_NO_INTERRUPT) == 0;
            }
            boolean valid = signalledUsedValid;
            int old = signalledUsed;
            signalledUsedValid = true;
            signalledUsed = usedIdx;
            int event = Short.toUnsignedInt(avail.getShortAcquire(4 + 2L * size));
            return !valid || ((usedIdx - event - 1) & 0xffff) < ((usedIdx - old) & 0xffff);
        } catch (DmaAccessException | IllegalStateException e) {
            error = "avail ring no longer reachable: " + e.getMessage();
            return false;
        }
    }

    /**
     * Tells the driver whether to notify (QEMU's {@code virtio_queue_set_notification}): with
     * EVENT_IDX, enabling publishes the current avail index as avail_event; without, the used
     * ring's NO_NOTIFY flag is cleared or set.
     *
     * @param on whether notifications are wanted
     */
    public void setNotification(boolean on) {
        if (!enabled) {
            return; // a broken queue still answers this, as QEMU's does
        }
        try {
            if (eventIdx) {
                if (on) {
                    used.setShortRelease(4 + 8L * size, avail.getShortAcquire(2));
                }
            } else {
                int flags = Short.toUnsignedInt(used.getShort(0));
                used.setShortRelease(0, (short) (on ? flags & ~USED_F_NO_NOTIFY : flags | USED_F_NO_NOTIFY));
            }
            if (on) {
                // The store above must be visible before the caller reads the avail index again
                // (QEMU's smp_mb in virtio_queue_set_notification): otherwise a driver may make a
                // request available, read the old avail_event or flag, skip its kick, while we read
                // the old avail index and wait for that kick: a lost wake-up, the queue stalled.
                VarHandle.fullFence();
            }
        } catch (DmaAccessException | IllegalStateException | UnsupportedOperationException e) {
            error = "used ring no longer reachable: " + e.getMessage();
        }
    }

    /**
     * Serves the queue until it is empty (QEMU's notify loop, as in {@code virtio_blk_handle_vq}):
     * notifications off, take chains (under this queue's lock) and hand each to {@code processor}
     * (outside it), then notifications on and one more look, so that a request made available
     * meanwhile is not left without a notification. Ends early when the processor says so or the
     * ring is broken.
     *
     * @param chain     where chains are taken into
     * @param processor the device's step
     */
    void drain(DescriptorChain chain, ChainProcessor processor) {
        // The steps are QEMU's, in its order; what changes is how often the lock is taken: turning
        // notifications off goes with taking the next chain, and finding the ring empty goes with
        // turning them on and looking again, so that a request costs two acquisitions besides
        // its push rather than four. (processor.stopBeforeNext() stays outside the lock: a device
        // may take its own locks there.)
        boolean notifying = true;
        while (true) {
            if (processor.stopBeforeNext()) {
                if (notifying) {
                    synchronized (this) {
                        setNotification(false);
                    }
                }
                return;
            }
            Pop pop;
            String why;
            synchronized (this) {
                if (notifying) {
                    setNotification(false);
                    notifying = false;
                }
                pop = pop(chain);
                why = error;
                if (pop == Pop.EMPTY && why == null) {
                    setNotification(true);
                    if (isEmpty()) {
                        return;
                    }
                    notifying = true; // more came meanwhile: off again, then take it
                    continue;
                }
            }
            if (pop != Pop.CHAIN) {
                processor.ringBroken(why);
                return;
            }
            if (!processor.process(chain)) {
                return;
            }
        }
    }

    /** {@return whether the driver has made nothing new available (reads the avail index again)} */
    public boolean isEmpty() {
        if (!enabled || error != null) {
            return true;
        }
        if (lastAvail != shadowAvail) {
            return false;
        }
        try {
            return !refreshAvail();
        } catch (DmaAccessException | IllegalStateException e) {
            error = "avail ring no longer reachable: " + e.getMessage();
            return true;
        }
    }

    /** {@return requests taken and not yet pushed} */
    public int inUse() {
        return inUse;
    }

    /** {@return the device's used index (the next entry it fills)} */
    public int usedIndex() {
        return usedIdx;
    }

    /** {@return the avail index the device takes its next request from} */
    public int lastAvailIndex() {
        return lastAvail;
    }
}
