package io.guestdma.migration;

import io.guestdma.memory.DirtyLog;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MapResult;
import io.guestdma.memory.internal.IovecWindow;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;

/**
 * The sending side of one live migration: RAM pre-copy driven by the {@link DirtyLog}, then the
 * switchover. Pass 1 sends every page of every RAM region; each later pass reads and clears the
 * migration's own dirty-log client and sends the pages written since, until the dirty RAM left
 * would go over the stream within the downtime limit at the bandwidth the last pass measured.
 * Then the machine is stopped and drained ({@link Switchover#stopAndDrain()}), the last dirty
 * pages and every device's section are sent, and the stream ends. Pages that are all zero go as a
 * flag; the others go from guest RAM to the socket or file by {@code writev} with no copy.
 *
 * <p>A migration whose dirty set does not shrink enough iterates on, as QEMU's does, until a raised
 * downtime limit or bandwidth ({@link #setParameters}) lets it switch over or it is cancelled; with
 * a bound in {@link MigrationParameters#maxPasses()} it fails after that many passes with "cannot
 * converge" (the dirty rate is above what the bandwidth carries within the downtime limit) and the
 * source keeps running. So does a cancelled or failed one: the machine is
 * resumed if it had been stopped, and the migration's dirty-log client is removed, which leaves
 * every other client's bits as they were (each client has its own bitmap).
 *
 * <p>One object runs one migration. {@link #run} runs on the caller's thread (the machine's
 * migration thread); {@link #cancel}, {@link #stats} and {@link #setParameters} may be called from
 * any thread while it runs. The RAM layout must not change during the migration: a region added
 * or removed in the meantime fails it at the switchover.
 */
public final class MigrationSource {
    private static final long PAGE_WIRE_BYTES = StreamFormat.RECORD + StreamFormat.PAGE_SIZE;
    private static final int BATCH_PAGES = Math.min(512, (int) (io.guestdma.memory.internal.Posix.IOV_MAX / 2));
    private static final long ACK_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(60);
    /** The bandwidth limit's window, QEMU's BUFFER_DELAY. */
    private static final long WINDOW_NANOS = TimeUnit.MILLISECONDS.toNanos(100);
    /** A record's 8 bytes; one constant, since every layout instance carries its own VarHandle. */
    private static final ValueLayout.OfLong RECORD_WORD = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final GuestMemory memory;
    private final List<DeviceState> devices;
    private final Switchover switchover;
    private final MigrationListener listener;
    /** Set by {@link #begin}: SETUP was entered. */
    private final AtomicBoolean started = new AtomicBoolean();
    /** Set by {@link #run}: the migration ran (or runs). */
    private final AtomicBoolean ran = new AtomicBoolean();
    private volatile MigrationParameters parameters;

    private volatile MigrationStatus status = MigrationStatus.NONE;
    /** Guarded by this: a cancel is honoured until the end record is on its way, never after. */
    private boolean cancelRequested;
    private boolean endWritten;
    private volatile OutgoingChannel channel;

    private volatile long transferred;
    private volatile long duplicatePages;
    private volatile long normalPages;
    private volatile long remainingPages;
    private volatile long totalBytes;
    private volatile long dirtyPagesRate;
    private volatile long dirtySyncCount;
    private volatile long expectedDowntimeMs;
    private volatile long downtimeMs = -1;
    private volatile long setupTimeMs;
    private volatile long startNanos;
    private volatile long endNanos;
    private volatile String error;

    /* Rate limiting, on the migration thread only. */
    private long windowStartNanos;
    private long windowStartBytes;
    private long windowLimit;

    /**
     * Prepares a migration.
     *
     * @param memory     the machine's guest memory; its RAM regions are migrated
     * @param devices    the machine's device sections in the machine's order, saved after the stop
     * @param switchover how to stop, drain and (after a failure) resume the machine
     * @param parameters the initial limits
     * @param listener   hears status changes and passes
     * @throws NullPointerException if an argument is null
     */
    public MigrationSource(GuestMemory memory, List<DeviceState> devices, Switchover switchover,
                           MigrationParameters parameters, MigrationListener listener) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.devices = List.copyOf(devices);
        this.switchover = Objects.requireNonNull(switchover, "switchover");
        this.parameters = Objects.requireNonNull(parameters, "parameters");
        this.listener = Objects.requireNonNull(listener, "listener");
    }

    /**
     * Changes the limits; the running migration applies them from its next batch of pages.
     *
     * @param parameters the new limits
     * @throws NullPointerException if null
     */
    public void setParameters(MigrationParameters parameters) {
        this.parameters = Objects.requireNonNull(parameters, "parameters");
    }

    /** {@return the limits in force} */
    public MigrationParameters parameters() {
        return parameters;
    }

    /** {@return the migration's status} */
    public MigrationStatus status() {
        return status;
    }

    /** {@return the progress figures now} */
    public MigrationStats stats() {
        MigrationStatus s = status;
        long end = s.isFinal() ? endNanos : System.nanoTime();
        long total = s == MigrationStatus.NONE ? 0 : TimeUnit.NANOSECONDS.toMillis(end - startNanos);
        return new MigrationStats(s, transferred, remainingPages * StreamFormat.PAGE_SIZE, totalBytes,
                duplicatePages, normalPages, dirtyPagesRate, dirtySyncCount, expectedDowntimeMs, downtimeMs,
                total, setupTimeMs, error);
    }

    /**
     * Asks the migration to stop. It stops at its next batch of pages (a write blocked on a socket
     * is woken), the machine is resumed if it was stopped for the switchover, and the status
     * becomes {@link MigrationStatus#CANCELLED}. Once the stream's end is being sent the migration
     * is past cancelling and completes or fails on its own.
     *
     * @return whether the request was taken (false when no migration is running or it is too late)
     */
    public boolean cancel() {
        OutgoingChannel ch;
        synchronized (this) {
            if (endWritten || cancelRequested || !(status == MigrationStatus.SETUP || status == MigrationStatus.ACTIVE)) {
                return false;
            }
            cancelRequested = true;
            ch = channel;
        }
        setStatus(MigrationStatus.CANCELLING);
        if (ch != null) {
            ch.abort();
        }
        return true;
    }

    private void setStatus(MigrationStatus next) {
        status = next;
        if (next.isFinal()) {
            endNanos = System.nanoTime();
        }
        listener.statusChanged(next);
    }

    private static final class Cancelled extends Exception {
        private static final long serialVersionUID = 1L;

        Cancelled() {
            super("cancelled", null, false, false);
        }
    }

    private synchronized void checkCancel() throws Cancelled {
        if (cancelRequested) {
            throw new Cancelled();
        }
    }

    /**
     * Enters {@link MigrationStatus#SETUP} now, on the calling thread, and starts the migration's
     * clock; {@link #run} then goes on from there. QEMU's {@code migrate} command does this before
     * it returns, so a {@code query-migrate} right after it already reports {@code setup}; a caller
     * that hands {@link #run} to another thread calls this first to keep that true. Calling it is
     * optional: {@link #run} enters SETUP itself when it was not called.
     *
     * @throws IllegalStateException if this object already began or ran a migration
     */
    public void begin() {
        if (started.getAndSet(true)) {
            throw new IllegalStateException("this migration already ran; create another MigrationSource");
        }
        startNanos = System.nanoTime();
        setStatus(MigrationStatus.SETUP);
    }

    /**
     * Runs the migration to its end on the calling thread (after {@link #begin}, if it was called).
     *
     * @param uri where the destination listens, or the snapshot file to write
     * @return the final figures: status {@link MigrationStatus#COMPLETED} (the machine stays
     *     stopped: the destination has it), {@link MigrationStatus#FAILED} with the reason in
     *     {@link MigrationStats#error()}, or {@link MigrationStatus#CANCELLED}; in the last two the
     *     machine runs
     * @throws IllegalStateException if this object already ran a migration
     */
    public MigrationStats run(MigrationUri uri) {
        Objects.requireNonNull(uri, "uri");
        if (ran.getAndSet(true)) {
            throw new IllegalStateException("this migration already ran; create another MigrationSource");
        }
        if (!started.get()) {
            begin();
        }
        DirtyLog.Client client = null;
        boolean stopped = false;
        MigrationStatus outcome;
        try (Arena arena = Arena.ofConfined()) {
            // Registered before pass 1 reads anything, so every write from here on is seen.
            client = memory.dirtyLog().register("migration");
            List<RamBlock> blocks = RamBlock.of(memory);
            long pages = 0;
            for (RamBlock b : blocks) {
                pages += b.pages();
            }
            totalBytes = pages * StreamFormat.PAGE_SIZE;
            remainingPages = pages;
            OutgoingChannel ch = OutgoingChannel.open(uri);
            synchronized (this) {
                channel = ch;
            }
            try (ch) {
                checkCancel();
                Batch batch = new Batch(arena, ch);
                ByteBuffer header = StreamFormat.header(blocks);
                batch.writeBytes(header.array(), header.remaining());
                setupTimeMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
                setStatus(MigrationStatus.ACTIVE);
                resetWindow();

                long passStart = System.nanoTime();
                long passBytes = transferred;
                BitSet[] dirty = null;
                int pass = 1;
                startPass(batch, pass);
                for (int i = 0; i < blocks.size(); i++) {
                    sendBlock(batch, blocks, i, null);
                }
                while (true) {
                    long now = System.nanoTime();
                    long elapsed = Math.max(1, now - passStart);
                    double bandwidth = Math.max(1.0, (transferred - passBytes) * 1e9 / elapsed);
                    dirty = sync(client, blocks, dirty);
                    long count = remainingPages;
                    dirtyPagesRate = (long) (count * 1e9 / elapsed);
                    expectedDowntimeMs = (long) (count * PAGE_WIRE_BYTES * 1000 / bandwidth);
                    if (expectedDowntimeMs <= parameters.downtimeLimitMs()) {
                        break;
                    }
                    if (pass > parameters.maxPasses()) {
                        throw new IOException(String.format("migration cannot converge: after %d passes %d pages "
                                + "are dirty (%d pages/s dirtied) and would take %d ms at %.0f bytes/s, over "
                                + "the downtime limit of %d ms", pass, count, dirtyPagesRate, expectedDowntimeMs,
                                bandwidth, parameters.downtimeLimitMs()));
                    }
                    pass++;
                    passStart = System.nanoTime();
                    passBytes = transferred;
                    startPass(batch, pass);
                    sendDirty(batch, blocks, dirty);
                }

                checkCancel();
                long stopNanos = System.nanoTime();
                stopped = true;
                switchover.stopAndDrain();
                long live = memory.liveMappings();
                if (live != 0) {
                    throw new IOException(live + " DMA mappings are still live after the devices were drained");
                }
                if (!RamBlock.of(memory).equals(blocks)) {
                    throw new IOException("the RAM layout changed during the migration");
                }
                dirty = sync(client, blocks, dirty);
                startPass(batch, pass + 1);
                sendDirty(batch, blocks, dirty);
                for (DeviceState device : devices) {
                    checkCancel();
                    writeSection(batch, arena, device);
                }
                synchronized (this) {
                    if (cancelRequested) {
                        throw new Cancelled();
                    }
                    endWritten = true;
                }
                batch.record(StreamFormat.END, 0, 0, 0);
                batch.flush();
                if (ch.acknowledges()) {
                    ch.awaitAck(ACK_TIMEOUT_NANOS);
                }
                downtimeMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - stopNanos);
                remainingPages = 0;
            }
            outcome = MigrationStatus.COMPLETED;
        } catch (Cancelled e) {
            outcome = MigrationStatus.CANCELLED;
        } catch (Exception | OutOfMemoryError e) {
            synchronized (this) {
                outcome = cancelRequested ? MigrationStatus.CANCELLED : MigrationStatus.FAILED;
            }
            if (outcome == MigrationStatus.FAILED) {
                error = e.getMessage() == null ? e.toString() : e.getMessage();
            }
        } finally {
            if (client != null) {
                client.unregister();
            }
        }
        if (stopped && outcome != MigrationStatus.COMPLETED) {
            try {
                switchover.resume();
            } catch (Exception e) {
                outcome = MigrationStatus.FAILED;
                error = (error == null ? "" : error + "; ") + "resuming the machine failed: " + e;
            }
        }
        setStatus(outcome);
        return stats();
    }

    private void startPass(Batch batch, int pass) throws IOException, Cancelled {
        dirtySyncCount = pass;
        listener.passStarted(pass);
        batch.record(StreamFormat.PASS, 0, 0, pass);
    }

    /** Reads and clears the client's bits of every block, adding them to what is still to send. */
    private BitSet[] sync(DirtyLog.Client client, List<RamBlock> blocks, BitSet[] pending) {
        BitSet[] result = pending == null ? new BitSet[blocks.size()] : pending;
        long count = 0;
        for (int i = 0; i < blocks.size(); i++) {
            RamBlock b = blocks.get(i);
            BitSet taken = client.getAndClear(b.ramAddress(), b.size());
            if (result[i] == null) {
                result[i] = taken;
            } else {
                result[i].or(taken);
            }
            count += result[i].cardinality();
        }
        remainingPages = count;
        return result;
    }

    private void sendDirty(Batch batch, List<RamBlock> blocks, BitSet[] dirty) throws IOException, Cancelled {
        for (int i = 0; i < blocks.size(); i++) {
            if (!dirty[i].isEmpty()) {
                sendBlock(batch, blocks, i, dirty[i]);
                dirty[i].clear();
            }
        }
    }

    /**
     * Sends a block's pages: all of them, or those set in {@code only}. The block is mapped for the
     * duration, which keeps a region's own backing mapped while its raw addresses are in iovecs.
     */
    private void sendBlock(Batch batch, List<RamBlock> blocks, int index, BitSet only) throws IOException, Cancelled {
        RamBlock block = blocks.get(index);
        MapResult result = memory.map(block.guestBase(), block.size(), DmaDirection.TO_DEVICE);
        if (!(result instanceof DmaMapping mapping)) {
            throw new IOException("RAM region " + block.name() + " cannot be read for migration: " + result);
        }
        try {
            if (mapping.length() != block.size() || mapping.bounced()) {
                throw new IOException("RAM region " + block.name() + " is no longer the RAM it was");
            }
            MemorySegment bytes = mapping.segment();
            if (only == null) {
                for (long page = 0; page < block.pages(); page++) {
                    batch.page(index, page, bytes);
                }
            } else {
                for (int page = only.nextSetBit(0); page >= 0; page = only.nextSetBit(page + 1)) {
                    batch.page(index, page, bytes);
                }
            }
            batch.flush();
        } finally {
            memory.unmap(mapping, 0);
        }
    }

    private void writeSection(Batch batch, Arena arena, DeviceState device) throws IOException, Cancelled {
        StateWriter writer = new StateWriter();
        device.save(writer);
        byte[] payload = writer.toByteArray();
        byte[] id = device.sectionId().getBytes(StandardCharsets.UTF_8);
        if (id.length == 0 || id.length > StreamFormat.MAX_NAME) {
            throw new IOException("device section id '" + device.sectionId() + "' must be 1.."
                    + StreamFormat.MAX_NAME + " bytes of UTF-8");
        }
        if (payload.length > StreamFormat.MAX_SECTION) {
            throw new IOException("device section " + device.sectionId() + " is " + payload.length
                    + " bytes; the stream carries at most " + StreamFormat.MAX_SECTION);
        }
        ByteBuffer body = ByteBuffer.allocate(id.length + 8 + payload.length).order(ByteOrder.LITTLE_ENDIAN);
        body.put(id).putInt(device.version());
        int crcEnd = body.position();
        body.putInt(0).put(payload);
        byte[] all = body.array();
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(all, 0, crcEnd);
        crc.update(all, crcEnd + 4, payload.length);
        body.putInt(crcEnd, (int) crc.getValue());
        batch.record(StreamFormat.DEVICE, id.length, 0, payload.length);
        batch.writeBytes(all, all.length);
    }

    private void resetWindow() {
        windowStartNanos = System.nanoTime();
        windowStartBytes = transferred;
        windowLimit = parameters.maxBandwidth();
    }

    /**
     * Sleeps as long as the bytes sent since the window opened are ahead of the bandwidth limit.
     * Windows last {@link #WINDOW_NANOS}, as QEMU's rate limit does: time the stream sat idle
     * (zero pages go as flags, a pass waits for the dirty log) is not saved up for a burst, which
     * would also make the next pass's measured bandwidth, and so the expected downtime, a fiction.
     */
    private void throttle() throws Cancelled {
        long limit = parameters.maxBandwidth();
        if (limit != windowLimit || System.nanoTime() - windowStartNanos >= WINDOW_NANOS) {
            resetWindow();
        }
        if (limit == 0) {
            return;
        }
        long due = windowStartNanos + (long) ((transferred - windowStartBytes) * 1e9 / limit);
        for (long wait = due - System.nanoTime(); wait > 0; wait = due - System.nanoTime()) {
            checkCancel();
            LockSupport.parkNanos(Math.min(wait, TimeUnit.MILLISECONDS.toNanos(20)));
        }
    }

    /** How many pages one writev may carry under the current limit (about 1/20 s worth). */
    private int batchPages() {
        long limit = parameters.maxBandwidth();
        if (limit == 0) {
            return BATCH_PAGES;
        }
        return (int) Math.max(1, Math.min(BATCH_PAGES, limit / 20 / PAGE_WIRE_BYTES));
    }

    /**
     * The records of one writev: page headers in a native array of their own, page bytes straight
     * from guest RAM. Adjacent pieces (runs of zero-page headers) share one iovec entry.
     */
    private final class Batch {
        private final OutgoingChannel out;
        private final MemorySegment iovecs;
        private final MemorySegment headers;
        private final long headerBase;
        private int entries;
        private int records;
        private int pagesInBatch;
        private int maxRecords;
        private MemorySegment scratch;

        Batch(Arena arena, OutgoingChannel out) {
            this.out = out;
            this.iovecs = arena.allocate((BATCH_PAGES * 2L + 2) * IovecWindow.ENTRY, 8);
            this.headers = arena.allocate((BATCH_PAGES + 1L) * StreamFormat.RECORD, 8);
            this.headerBase = headers.address();
            this.scratch = arena.allocate(4096, 8);
            this.maxRecords = batchPages();
        }

        void page(int block, long page, MemorySegment bytes) throws IOException, Cancelled {
            long offset = page * StreamFormat.PAGE_SIZE;
            boolean zero = MemorySegment.mismatch(bytes, offset, offset + StreamFormat.PAGE_SIZE,
                    ZeroPage.SEGMENT, 0, StreamFormat.PAGE_SIZE) < 0;
            addRecord(StreamFormat.PAGE, zero ? StreamFormat.FLAG_ZERO : 0, block, page);
            if (zero) {
                duplicatePages++;
            } else {
                add(bytes.address() + offset, StreamFormat.PAGE_SIZE);
                normalPages++;
            }
            pagesInBatch++;
            if (records >= maxRecords) {
                flush();
            }
        }

        void record(int type, int flags, int block, long value) throws IOException, Cancelled {
            addRecord(type, flags, block, value);
            if (records >= maxRecords) {
                flush();
            }
        }

        private void addRecord(int type, int flags, int block, long value) {
            long at = (long) records * StreamFormat.RECORD;
            headers.set(RECORD_WORD, at,
                    type | (long) flags << 8 | (long) block << 16 | value << 32);
            add(headerBase + at, StreamFormat.RECORD);
            records++;
        }

        private void add(long address, long length) {
            if (entries > 0) {
                long last = (entries - 1L) * IovecWindow.ENTRY;
                long lastAddress = iovecs.get(ValueLayout.JAVA_LONG, last);
                long lastLength = iovecs.get(ValueLayout.JAVA_LONG, last + 8);
                if (lastAddress + lastLength == address) {
                    iovecs.set(ValueLayout.JAVA_LONG, last + 8, lastLength + length);
                    return;
                }
            }
            long slot = entries * IovecWindow.ENTRY;
            iovecs.set(ValueLayout.JAVA_LONG, slot, address);
            iovecs.set(ValueLayout.JAVA_LONG, slot + 8, length);
            entries++;
        }

        void flush() throws IOException, Cancelled {
            if (entries > 0) {
                transferred += out.writeAll(iovecs, entries);
            }
            remainingPages = Math.max(0, remainingPages - pagesInBatch);
            entries = 0;
            records = 0;
            pagesInBatch = 0;
            maxRecords = batchPages();
            throttle();
            checkCancel();
        }

        /** Sends heap bytes (the header, a device section) after what is batched. */
        void writeBytes(byte[] bytes, int length) throws IOException, Cancelled {
            flush();
            if (scratch.byteSize() < length) {
                scratch = Arena.ofAuto().allocate(length, 8);
            }
            MemorySegment.copy(bytes, 0, scratch, ValueLayout.JAVA_BYTE, 0, length);
            transferred += out.writeAll(scratch.asSlice(0, length));
        }
    }
}
