package io.guestdma.block;

import io.guestdma.memory.IoVector;
import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

import static io.guestdma.block.NbdConnection.CMD_FLAG_FUA;
import static io.guestdma.block.NbdConnection.CMD_FLAG_NO_HOLE;
import static io.guestdma.block.NbdConnection.CMD_FLUSH;
import static io.guestdma.block.NbdConnection.CMD_READ;
import static io.guestdma.block.NbdConnection.CMD_TRIM;
import static io.guestdma.block.NbdConnection.CMD_WRITE;
import static io.guestdma.block.NbdConnection.CMD_WRITE_ZEROES;
import static io.guestdma.block.NbdConnection.FLAG_READ_ONLY;
import static io.guestdma.block.NbdConnection.FLAG_SEND_FLUSH;
import static io.guestdma.block.NbdConnection.FLAG_SEND_FUA;
import static io.guestdma.block.NbdConnection.FLAG_SEND_TRIM;
import static io.guestdma.block.NbdConnection.FLAG_SEND_WRITE_ZEROES;

/**
 * A disk image served by an NBD server (qemu-nbd, nbdkit, nbd-server...), over TCP or a
 * Unix-domain socket: QEMU's {@code -drive file=nbd://...}.
 *
 * <p><b>Protocol.</b> Fixed newstyle handshake; structured replies when the server offers them;
 * {@code NBD_OPT_GO} with the export name, asking for the server's block size constraints
 * ({@code NBD_INFO_BLOCK_SIZE}), which are then obeyed (requests must be multiples of the minimum
 * block size, and reads and writes are split at the maximum payload, at most 32 MiB). Servers
 * without {@code NBD_OPT_GO} are reached with {@code NBD_OPT_EXPORT_NAME}. TLS is not supported.
 *
 * <p><b>Pipelining, zero copy.</b> Requests from several threads are in flight at once on one
 * connection (up to 64) and matched to their replies by cookie, so concurrent callers share the
 * round trip instead of queueing behind it. The socket is used through its descriptor with FFM
 * downcalls: a write goes out as one {@code writev} of the request header and the
 * {@link IoVector}'s native iovec entries; read data comes in with {@code readv} straight into
 * them, in the caller's own thread. Guest memory is never staged, and nothing is allocated per
 * request on the success path. (Only {@link #read(long, ByteBuffer)} and
 * {@link #write(long, ByteBuffer)} with a heap buffer stage it through native memory.)
 *
 * <p><b>Asynchronous requests.</b> {@link #submitReadv}, {@link #submitWritev},
 * {@link #submitFlush} and {@link #submitDiscard} do not run the synchronous call as the
 * {@link BlockBackend} defaults do: the calling thread sends the request (the same single
 * {@code writev}, payload straight from the vector; it blocks only while the socket takes the
 * bytes, within the timeout) and returns, and no thread waits for the reply. One thread per
 * connection ({@code nbd-replies ...}, a daemon started by its first asynchronous request and
 * ended with the connection) reads the replies while any asynchronous request is pending, so one
 * thread can keep many requests in flight as {@code qemu-img bench -d N} or a virtio queue does.
 * The reply's data is scattered into the vector by whichever thread reads it (that thread or a
 * synchronous caller); the request's slot is freed, the reader lets go of the connection's reader
 * role, and then it calls the request's {@link BlockCompletion} (see there for what it may do).
 * Nothing is allocated per request on this path: the completion is the caller's, slots and
 * buffers are the connection's. Synchronous and asynchronous requests share the connection and
 * its 64 request slots; failures, timeouts and reconnection behave alike, a lost connection
 * failing every pending request with {@code EIO}. A request that cannot be sent at once as one
 * NBD command (no usable connection: it must reconnect first; all slots in flight; a read or
 * write larger than the server's maximum payload; a discard it must split or send as data) runs
 * as the default does, the synchronous call in the calling thread, then the completion.
 * {@link #close()} waits for pending asynchronous requests like for running synchronous ones:
 * when it returns, their completions have run.
 *
 * <p>{@link #readvAsync}, {@link #writevAsync}, {@link #flushAsync} and {@link #discardAsync} are
 * the same path with a future (one object per request) as the completion, which hands the future
 * to {@code executor} to complete it: dependent actions registered without an executor of their
 * own run there. With a direct executor ({@code Runnable::run}) they run on the thread that read
 * the reply, under {@link BlockCompletion}'s rules. A request that cannot be sent at once runs as
 * the synchronous call on {@code executor}. Cancelling the future never withdraws a request that
 * was sent; the future stays cancelled.
 *
 * <p><b>Errors.</b> An error the server reports becomes a {@link PosixException} with the errno
 * the server sent ({@code EIO}, {@code ENOSPC}, {@code EPERM}, {@code EINVAL}...) and the
 * server's message, if any. A lost connection, a protocol violation or a reply that does not
 * come within the timeout fails every request in flight with {@code EIO}; none hangs. The next
 * request reconnects (or {@link #reconnect()} does it at once), so a device whose error policy
 * stops the machine can resume once the server is back: requests that failed are retried by the
 * device, nothing is retried behind its back. A reconnection that finds the export with another
 * size or newly read-only fails rather than let the guest write to a different disk.
 *
 * <p><b>Semantics.</b> {@link #discard} must leave zeroes (the {@link BlockBackend} contract),
 * which NBD's TRIM does not promise: it is sent as {@code NBD_CMD_WRITE_ZEROES} allowing the
 * server to punch holes (or as written zeroes when the server lacks that command). {@link #trim}
 * is the plain hint. {@link #flush} is {@code NBD_CMD_FLUSH} (nothing when the server has no
 * write cache to flush). {@link BlockOptions#lock()} does not apply: the server owns the image
 * and locks it itself (qemu-nbd does).
 *
 * <p>Thread-safe.
 */
public final class NbdBackend implements BlockBackend {
    /** How long a reply (or the connection and handshake) may take unless told otherwise. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(60);

    /** The largest WRITE_ZEROES or TRIM request: the length field is 32 bits. */
    private static final long MAX_ZERO_REQUEST = 1L << 30;
    private static final MemorySegment ZEROES = Arena.global().allocate(1 << 20, 4096).asReadOnly();
    private static final Thread ANY_OTHER_THREAD = Thread.ofPlatform().unstarted(() -> { });

    private final NbdAddress address;
    private final ImageExtent extent;
    private final long timeoutNanos;
    private final ReentrantLock connectLock = new ReentrantLock();
    private volatile NbdConnection connection;
    private final RequestGate gate;
    private final AtomicLong connections = new AtomicLong(1);

    private NbdBackend(NbdAddress address, ImageExtent extent, long timeoutNanos, NbdConnection first) {
        this.address = address;
        this.extent = extent;
        this.timeoutNanos = timeoutNanos;
        this.connection = first;
        this.gate = new RequestGate("NBD image " + address);
    }

    /**
     * Connects to an export with the {@link #DEFAULT_TIMEOUT}.
     *
     * @param address the server and export
     * @param options {@code readOnly} opens read-only; {@code direct} is refused; {@code lock} is
     *                ignored (the server locks the image)
     * @return the backend, connected
     * @throws IllegalArgumentException if {@code options.direct()} is set
     * @throws IOException              if the server cannot be reached or refuses the export (the
     *                                  message says which and why), or if the export is read-only
     *                                  and {@code options.readOnly()} is not set
     * @throws NullPointerException     if an argument is null
     */
    public static NbdBackend open(NbdAddress address, BlockOptions options) throws IOException {
        return open(address, options, DEFAULT_TIMEOUT);
    }

    /**
     * Connects to an export.
     *
     * @param address the server and export
     * @param options {@code readOnly} opens read-only; {@code direct} is refused; {@code lock} is
     *                ignored (the server locks the image)
     * @param timeout how long connecting plus the handshake, and later each reply, may take before
     *                the connection is declared dead
     * @return the backend, connected
     * @throws IllegalArgumentException if {@code options.direct()} is set or the timeout is not positive
     * @throws IOException              if the server cannot be reached or refuses the export (the
     *                                  message says which and why), or if the export is read-only
     *                                  and {@code options.readOnly()} is not set
     * @throws NullPointerException     if an argument is null
     */
    public static NbdBackend open(NbdAddress address, BlockOptions options, Duration timeout) throws IOException {
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(timeout, "timeout");
        if (options.direct()) {
            throw new IllegalArgumentException("O_DIRECT does not apply to an NBD export (" + address
                    + "); the server decides how it caches (qemu-nbd --cache=none)");
        }
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("the timeout must be positive, was " + timeout);
        }
        long nanos = timeout.toNanos();
        NbdConnection c = NbdConnection.open(address, nanos);
        if (c.has(FLAG_READ_ONLY) && !options.readOnly()) {
            c.disconnect();
            throw new IOException("export '" + address.export() + "' at " + address
                    + " is read-only (NBD_FLAG_READ_ONLY); open it read-only");
        }
        return new NbdBackend(address, new ImageExtent(address.toString(), c.size(), options.readOnly()), nanos, c);
    }

    /** {@return the server and export this backend talks to} */
    public NbdAddress address() {
        return address;
    }

    @Override
    public long size() {
        return extent.size();
    }

    @Override
    public boolean isReadOnly() {
        return extent.readOnly();
    }

    /**
     * {@return whether the current connection is up and taking requests (false after a failure
     * until the next request or {@link #reconnect()} connects again)}
     */
    public boolean isConnected() {
        NbdConnection c = connection;
        return c != null && c.usable();
    }

    /** {@return how many connections this backend has opened, the first one included} */
    public long connectionCount() {
        return connections.get();
    }

    /**
     * {@return the minimum block size the server asked for (requests must be multiples of it; 1 if
     * it asked for none)}
     *
     * @throws IOException if there is no connection and none can be made
     */
    public int minimumBlockSize() throws IOException {
        return connection().minBlock();
    }

    /**
     * {@return whether the server sends structured replies (negotiated in the handshake)}
     *
     * @throws IOException if there is no connection and none can be made
     */
    public boolean structuredReplies() throws IOException {
        return connection().structuredReplies();
    }

    @Override
    public void readv(long offset, IoVector iov) throws IOException {
        long total = iov.size();
        extent.checkRead(offset, total);
        requireUsable(iov, true);
        if (total == 0) {
            return;
        }
        enter();
        try {
            transfer(CMD_READ, 0, offset, total, iov);
        } finally {
            exit();
        }
    }

    /**
     * The socket calls take the segments' raw addresses, which bypass the checks FFM would make:
     * so they are made here, before anything is sent.
     */
    private static void requireUsable(IoVector iov, boolean intoIt) {
        for (int i = 0; i < iov.count(); i++) {
            if (intoIt && iov.isReadOnly(i)) {
                throw new IllegalArgumentException("cannot read into segment " + i + " of the I/O vector: it is read-only");
            }
            if (!iov.isNative(i)) {
                throw new IllegalArgumentException("segment " + i + " of the I/O vector is a heap segment; "
                        + "socket I/O needs native memory");
            }
            if (!iov.isAlive(i)) {
                throw new IllegalStateException("segment " + i + " of the I/O vector was already released");
            }
        }
    }

    @Override
    public void writev(long offset, IoVector iov) throws IOException {
        writev(offset, iov, false);
    }

    /**
     * Sends the read at once from this thread and completes the future from the thread that reads
     * the reply (see the class comment); otherwise as {@link BlockBackend#readvAsync}. The
     * vector's memory must be accessible from any thread (guest memory, a shared or automatic
     * arena, not a confined one), since the reply's data is moved by the thread that reads it.
     *
     * @return a future completed, on {@code executor}, when every byte is in, or exceptionally
     *     with the {@link IOException} (a {@link PosixException} with the server's errno, or
     *     {@code EIO} for a lost connection) or the {@link IllegalArgumentException} (read-only,
     *     heap or confined memory) the synchronous call would throw
     * @throws NullPointerException if {@code iov} or {@code executor} is null
     */
    @Override
    public CompletableFuture<Void> readvAsync(long offset, IoVector iov, Executor executor) {
        return future(CMD_READ, offset, iov.size(), iov, executor);
    }

    /**
     * Sends the write at once from this thread, straight from the vector, and completes the
     * future from the thread that reads the reply (see the class comment); otherwise as
     * {@link BlockBackend#writevAsync}. The vector's memory must be accessible from any thread.
     *
     * @return a future completed, on {@code executor}, when the server acknowledged every byte, or
     *     exceptionally as for {@link #readvAsync}
     * @throws NullPointerException if {@code iov} or {@code executor} is null
     */
    @Override
    public CompletableFuture<Void> writevAsync(long offset, IoVector iov, Executor executor) {
        return future(CMD_WRITE, offset, iov.size(), iov, executor);
    }

    /**
     * Sends {@code NBD_CMD_FLUSH} at once (see the class comment); completes at once, without a
     * request, on a read-only image or a server without a write cache.
     *
     * @return a future completed, on {@code executor}, when every write that completed before the
     *     call is on stable storage, or exceptionally as for {@link #readvAsync}
     * @throws NullPointerException if {@code executor} is null
     */
    @Override
    public CompletableFuture<Void> flushAsync(Executor executor) {
        return future(CMD_FLUSH, 0, 0, null, executor);
    }

    /**
     * Sends the discard at once as one {@code NBD_CMD_WRITE_ZEROES} when the server has the
     * command and the range fits one request (see the class comment); otherwise runs
     * {@link #discard} on {@code executor}.
     *
     * @return a future completed, on {@code executor}, when the range reads as zeroes, or
     *     exceptionally as for {@link #readvAsync}
     * @throws NullPointerException if {@code executor} is null
     */
    @Override
    public CompletableFuture<Void> discardAsync(long offset, long length, Executor executor) {
        return future(CMD_WRITE_ZEROES, offset, length, null, executor);
    }

    /**
     * Sends the read at once from this thread and calls the completion from the thread that reads
     * the reply, allocating nothing (see the class comment); a read that cannot go as one NBD
     * command now runs as the synchronous call in this thread, then the completion, as the
     * {@link BlockBackend} default does. The vector's memory must be accessible from any thread
     * (guest memory, a shared or automatic arena, not a confined one), since the reply's data is
     * moved by the thread that reads it.
     *
     * @param completion called once: {@link BlockCompletion#failed} with a {@link PosixException}
     *                   carrying the server's errno, or {@code EIO} for a lost connection or a reply
     *                   that did not come within the timeout, or the {@link IOException} of a range
     *                   outside the image or a closed backend (then in this thread, before this
     *                   returns)
     * @throws NullPointerException     if {@code iov} or {@code completion} is null
     * @throws IllegalArgumentException if a segment is read-only, heap memory or memory of a
     *                                  confined arena (nothing is sent; the completion is not called)
     * @throws IllegalStateException    if a segment's memory was released
     */
    @Override
    public void submitReadv(long offset, IoVector iov, BlockCompletion completion) {
        Objects.requireNonNull(completion, "completion");
        if (!start(CMD_READ, offset, iov.size(), iov, completion)) {
            BlockBackend.super.submitReadv(offset, iov, completion);
        }
    }

    /**
     * Sends the write at once from this thread, straight from the vector, and calls the completion
     * from the thread that reads the reply; otherwise as {@link #submitReadv}.
     *
     * @param completion called once, as for {@link #submitReadv} ({@link ReadOnlyImageException}
     *                   on a read-only image)
     * @throws NullPointerException     if {@code iov} or {@code completion} is null
     * @throws IllegalArgumentException if a segment is heap memory or memory of a confined arena
     * @throws IllegalStateException    if a segment's memory was released
     */
    @Override
    public void submitWritev(long offset, IoVector iov, BlockCompletion completion) {
        Objects.requireNonNull(completion, "completion");
        if (!start(CMD_WRITE, offset, iov.size(), iov, completion)) {
            BlockBackend.super.submitWritev(offset, iov, completion);
        }
    }

    /**
     * Sends {@code NBD_CMD_FLUSH} at once; calls the completion at once, in this thread, on a
     * read-only image or a server without a write cache. Otherwise as {@link #submitReadv}.
     *
     * @param completion called once every write that completed before this call is on stable
     *                   storage, or with the failure, as for {@link #submitReadv}
     * @throws NullPointerException if {@code completion} is null
     */
    @Override
    public void submitFlush(BlockCompletion completion) {
        Objects.requireNonNull(completion, "completion");
        if (!start(CMD_FLUSH, 0, 0, null, completion)) {
            BlockBackend.super.submitFlush(completion);
        }
    }

    /**
     * Sends the discard at once as one {@code NBD_CMD_WRITE_ZEROES} when the server has the
     * command and the range fits one request; otherwise runs {@link #discard} in this thread, then
     * the completion. Otherwise as {@link #submitReadv}.
     *
     * @param completion called once the range reads as zeroes, or with the failure, as for
     *                   {@link #submitReadv} ({@link ReadOnlyImageException} on a read-only image)
     * @throws NullPointerException if {@code completion} is null
     */
    @Override
    public void submitDiscard(long offset, long length, BlockCompletion completion) {
        Objects.requireNonNull(completion, "completion");
        if (!start(CMD_WRITE_ZEROES, offset, length, null, completion)) {
            BlockBackend.super.submitDiscard(offset, length, completion);
        }
    }

    /**
     * The asynchronous path of every command, for both forms: checks as the synchronous call does
     * (an {@link IOException} goes to the completion, in this thread; an invalid vector is thrown)
     * and sends one request if it can.
     *
     * @return false if the request cannot go as one NBD command now (the caller runs the
     *     synchronous call; the completion was not called), true if the completion was or will be
     *     called
     */
    private boolean start(int command, long offset, long length, IoVector iov, BlockCompletion completion) {
        try {
            switch (command) {
                case CMD_READ -> {
                    extent.checkRead(offset, length);
                    requireUsable(iov, true);
                    requireShared(iov);
                }
                case CMD_WRITE -> {
                    extent.checkWrite("write", offset, length);
                    requireUsable(iov, false);
                    requireShared(iov);
                }
                case CMD_WRITE_ZEROES -> extent.checkWrite("discard", offset, length);
                default -> {
                    if (extent.readOnly()) {
                        BlockRequest.report(completion, null);
                        return true;
                    }
                }
            }
            if (length == 0 && command != CMD_FLUSH) {
                BlockRequest.report(completion, null);
                return true;
            }
            enter();
        } catch (IOException e) {
            BlockRequest.report(completion, e);
            return true;
        }
        boolean sent = false;
        IOException misaligned = null;
        try {
            NbdConnection c = connection;
            if (c != null && c.usable() && sendsAsOne(c, command, length)) {
                if (command != CMD_FLUSH) {
                    checkAligned(c, command, offset, length);
                }
                sent = c.submit(command, 0, offset, length, iov, 0, completion, gate);
            }
        } catch (IOException e) {
            misaligned = e;
        } finally {
            if (!sent) {
                exit();
            }
        }
        if (misaligned != null) {
            BlockRequest.report(completion, misaligned);
            return true;
        }
        return sent;
    }

    /** Whether the command goes out as one NBD request as it is on this connection. */
    private static boolean sendsAsOne(NbdConnection c, int command, long length) {
        return switch (command) {
            case CMD_READ, CMD_WRITE -> length <= c.maxPayload();
            case CMD_FLUSH -> c.has(FLAG_SEND_FLUSH);
            case CMD_WRITE_ZEROES -> c.has(FLAG_SEND_WRITE_ZEROES) && length <= MAX_ZERO_REQUEST - MAX_ZERO_REQUEST % c.minBlock();
            default -> false;
        };
    }

    /**
     * The future form over the completion form: the same path, with a future as the completion,
     * and the synchronous call on the executor where the request cannot go as one command now.
     */
    private CompletableFuture<Void> future(int command, long offset, long length, IoVector iov, Executor executor) {
        Objects.requireNonNull(executor, "executor");
        FutureCompletion future = new FutureCompletion(executor);
        try {
            if (start(command, offset, length, iov, future)) {
                return future;
            }
        } catch (RuntimeException e) {
            return CompletableFuture.failedFuture(e);
        }
        return onExecutor(command, offset, length, iov, executor);
    }

    /**
     * An asynchronous request's future, its completion, and the task that completes the future on
     * the request's executor: one object per request, which is all the future form allocates on
     * success.
     */
    private static final class FutureCompletion extends CompletableFuture<Void> implements BlockCompletion, Runnable {
        private final Executor executor;
        /** Set, with {@link #failure}, before the task is handed to the executor. */
        private volatile boolean settled;
        private IOException failure;

        FutureCompletion(Executor executor) {
            this.executor = executor;
        }

        @Override
        public void completed() {
            settle(null);
        }

        @Override
        public void failed(IOException e) {
            settle(e);
        }

        private void settle(IOException outcome) {
            failure = outcome;
            settled = true;
            try {
                executor.execute(this);
            } catch (RuntimeException e) {
                // A refusing (shut down) executor must not leave the future pending for ever.
                run();
            }
        }

        /** Completes the future with the outcome; does nothing before it is known (or if cancelled). */
        @Override
        public void run() {
            if (!settled) {
                return;
            }
            if (failure == null) {
                complete(null);
            } else {
                completeExceptionally(failure);
            }
        }
    }

    /** What the asynchronous path cannot send at once: the synchronous call, on the executor. */
    private CompletableFuture<Void> onExecutor(int command, long offset, long length, IoVector iov, Executor executor) {
        return BlockRequest.submit(executor, switch (command) {
            case CMD_READ -> () -> readv(offset, iov);
            case CMD_WRITE -> () -> writev(offset, iov);
            case CMD_FLUSH -> this::flush;
            default -> () -> discard(offset, length);
        });
    }

    /**
     * The reply to an asynchronous request is moved by whichever thread reads it, so the memory
     * must be accessible from any thread; a thread that is never started stands for "another one".
     */
    private static void requireShared(IoVector iov) {
        for (int i = 0; i < iov.count(); i++) {
            if (!iov.isAccessibleBy(i, ANY_OTHER_THREAD)) {
                throw new IllegalArgumentException("segment " + i + " of the I/O vector belongs to a confined arena; "
                        + "an asynchronous request needs memory that any thread may access");
            }
        }
    }

    /**
     * {@link #writev(long, IoVector)}, optionally with Force Unit Access: when it returns, the
     * bytes are on the server's stable storage ({@code NBD_CMD_FLAG_FUA}; a write followed by a
     * flush where the server does not offer FUA).
     *
     * @param offset the image offset
     * @param iov    the bytes to write
     * @param fua    whether the write must be durable when this returns
     * @throws ReadOnlyImageException if the image is read-only
     * @throws IOException            if the range is outside the image or the write fails
     */
    public void writev(long offset, IoVector iov, boolean fua) throws IOException {
        long total = iov.size();
        extent.checkWrite("write", offset, total);
        requireUsable(iov, false);
        if (total == 0) {
            return;
        }
        enter();
        try {
            write(offset, total, iov, fua);
        } finally {
            exit();
        }
    }

    private void write(long offset, long total, IoVector iov, boolean fua) throws IOException {
        NbdConnection c = connection();
        boolean serverFua = fua && c.has(FLAG_SEND_FUA);
        transfer(CMD_WRITE, serverFua ? CMD_FLAG_FUA : 0, offset, total, iov);
        if (fua && !serverFua && c.has(FLAG_SEND_FLUSH)) {
            connection().request(CMD_FLUSH, 0, 0, 0, null, 0);
        }
    }

    /**
     * A buffer as a one-segment vector: a direct buffer as it is, a heap buffer through a
     * native copy in {@code arena} (socket calls need native memory).
     */
    private static IoVector vectorOf(ByteBuffer buffer, Arena arena, boolean copyIn) {
        MemorySegment s = MemorySegment.ofBuffer(buffer);
        if (!s.isNative()) {
            MemorySegment staged = arena.allocate(Math.max(1, s.byteSize())).asSlice(0, s.byteSize());
            if (copyIn) {
                staged.copyFrom(s);
            }
            s = staged;
        }
        return new IoVector(1).add(s);
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        int length = dst.remaining();
        extent.checkRead(offset, length);
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("cannot read into a read-only buffer");
        }
        if (length == 0) {
            return;
        }
        enter();
        try (Arena arena = Arena.ofConfined()) {
            IoVector iov = vectorOf(dst, arena, false);
            transfer(CMD_READ, 0, offset, length, iov);
            if (!dst.isDirect()) {
                MemorySegment.ofBuffer(dst).copyFrom(iov.segment(0));
            }
            dst.position(dst.limit());
        } finally {
            exit();
        }
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        int length = src.remaining();
        extent.checkWrite("write", offset, length);
        if (length == 0) {
            return;
        }
        enter();
        try (Arena arena = Arena.ofConfined()) {
            write(offset, length, vectorOf(src, arena, true), false);
            src.position(src.limit());
        } finally {
            exit();
        }
    }

    /** Splits a read or write at the server's maximum payload; the pieces go out one after another. */
    private void transfer(int command, int flags, long offset, long total, IoVector iov) throws IOException {
        NbdConnection c = connection();
        checkAligned(c, command, offset, total);
        long piece = c.maxPayload();
        for (long done = 0; done < total; done += piece) {
            long n = Math.min(piece, total - done);
            c.request(command, flags, offset + done, n, iov, done);
        }
    }

    private void checkAligned(NbdConnection c, int command, long offset, long length) throws PosixException {
        int min = c.minBlock();
        if (min > 1 && ((offset | length) & (min - 1)) != 0) {
            throw new PosixException("nbd " + (command == CMD_READ ? "read" : "write") + "(offset " + offset + ", "
                    + length + " bytes): " + address + " takes only multiples of " + min + " bytes", Errno.EINVAL);
        }
    }

    /**
     * Sends {@code NBD_CMD_FLUSH}: when it returns, every write that completed before is on the
     * server's stable storage. Does nothing on a read-only image or a server without a write
     * cache (one that does not offer flush).
     */
    @Override
    public void flush() throws IOException {
        if (extent.readOnly()) {
            return;
        }
        enter();
        try {
            NbdConnection c = connection();
            if (c.has(FLAG_SEND_FLUSH)) {
                c.request(CMD_FLUSH, 0, 0, 0, null, 0);
            }
        } finally {
            exit();
        }
    }

    /**
     * Zeroes the range, letting the server deallocate it ({@code NBD_CMD_WRITE_ZEROES} without
     * {@code NO_HOLE}): afterwards it reads as zeroes, as the {@link BlockBackend} contract asks.
     */
    @Override
    public void discard(long offset, long length) throws IOException {
        zero("discard", offset, length, true);
    }

    /**
     * Writes zeroes over a range without sending them ({@code NBD_CMD_WRITE_ZEROES}; written
     * zeroes where the server lacks the command).
     *
     * @param offset        the image offset
     * @param length        bytes in the range
     * @param mayDeallocate whether the server may punch a hole instead of writing zeroes
     * @throws ReadOnlyImageException if the image is read-only
     * @throws IOException            if the range is outside the image or the operation fails
     */
    public void writeZeroes(long offset, long length, boolean mayDeallocate) throws IOException {
        zero("write-zeroes", offset, length, mayDeallocate);
    }

    private void zero(String what, long offset, long length, boolean mayDeallocate) throws IOException {
        extent.checkWrite(what, offset, length);
        if (length == 0) {
            return;
        }
        enter();
        try {
            NbdConnection c = connection();
            checkAligned(c, CMD_WRITE_ZEROES, offset, length);
            if (c.has(FLAG_SEND_WRITE_ZEROES)) {
                ranged(c, CMD_WRITE_ZEROES, mayDeallocate ? 0 : CMD_FLAG_NO_HOLE, offset, length);
            } else {
                long piece = Math.min(ZEROES.byteSize(), c.maxPayload());
                IoVector zeroes = new IoVector(1);
                for (long done = 0; done < length; done += piece) {
                    long n = Math.min(piece, length - done);
                    zeroes.reset();
                    zeroes.add(ZEROES.asSlice(0, n));
                    c.request(CMD_WRITE, 0, offset + done, n, zeroes, 0);
                }
            }
        } finally {
            exit();
        }
    }

    /**
     * Tells the server a range is no longer needed ({@code NBD_CMD_TRIM}). Unlike
     * {@link #discard}, the range's contents are undefined afterwards. Does nothing if the server
     * does not take trims.
     *
     * @param offset the image offset
     * @param length bytes in the range
     * @throws ReadOnlyImageException if the image is read-only
     * @throws IOException            if the range is outside the image or the server fails the trim
     */
    public void trim(long offset, long length) throws IOException {
        extent.checkWrite("trim", offset, length);
        if (length == 0) {
            return;
        }
        enter();
        try {
            NbdConnection c = connection();
            checkAligned(c, CMD_TRIM, offset, length);
            if (c.has(FLAG_SEND_TRIM)) {
                ranged(c, CMD_TRIM, 0, offset, length);
            }
        } finally {
            exit();
        }
    }

    private static void ranged(NbdConnection c, int command, int flags, long offset, long length) throws IOException {
        long piece = MAX_ZERO_REQUEST - MAX_ZERO_REQUEST % c.minBlock();
        for (long done = 0; done < length; done += piece) {
            c.request(command, flags, offset + done, Math.min(piece, length - done), null, 0);
        }
    }

    // ------------------------------------------------------------------ connection

    /**
     * Drops the current connection (requests in flight on it fail with EIO) and connects again.
     *
     * @throws IOException if the backend is closed, the server cannot be reached, or the export
     *                     now has another size or became read-only
     */
    public void reconnect() throws IOException {
        connectLock.lock();
        try {
            NbdConnection old = connection;
            if (old != null) {
                old.fail(new IOException("connection to " + address + " replaced by reconnect()"));
            }
            connection = null;
        } finally {
            connectLock.unlock();
        }
        connection();
    }

    private NbdConnection connection() throws IOException {
        NbdConnection c = connection;
        if (c != null && c.usable()) {
            return c;
        }
        connectLock.lock();
        try {
            c = connection;
            if (c != null && c.usable()) {
                return c;
            }
            if (gate.isClosed()) {
                throw new IOException("NBD image " + address + " is closed");
            }
            if (c != null) {
                c.disconnect();
                connection = null;
            }
            NbdConnection fresh;
            try {
                fresh = NbdConnection.open(address, timeoutNanos);
            } catch (IOException e) {
                PosixException down = new PosixException("nbd reconnect(" + address + "): " + e.getMessage(), Errno.EIO);
                down.initCause(e);
                throw down;
            }
            String changed = fresh.size() != extent.size()
                    ? "its size changed from " + extent.size() + " to " + fresh.size() + " bytes"
                    : fresh.has(FLAG_READ_ONLY) && !extent.readOnly() ? "it became read-only" : null;
            if (changed != null) {
                fresh.disconnect();
                throw new PosixException("nbd reconnect(" + address + "): the export is not the disk it was: " + changed,
                        Errno.EIO);
            }
            connections.incrementAndGet();
            connection = fresh;
            return fresh;
        } finally {
            connectLock.unlock();
        }
    }

    private void enter() throws IOException {
        gate.enter();
    }

    private void exit() {
        gate.exit();
    }

    /**
     * Refuses new requests, waits for running ones and for pending asynchronous ones (each is
     * bounded by the timeout; when this returns, their futures have been handed to their
     * executors, unless the wait as a whole ran out), then ends the session with
     * {@code NBD_CMD_DISC} and closes the socket, which ends the connection's reply thread.
     * Idempotent. Does not flush.
     */
    @Override
    public void close() {
        if (!gate.close(timeoutNanos + TimeUnit.SECONDS.toNanos(1))) {
            return;
        }
        connectLock.lock();
        try {
            NbdConnection c = connection;
            connection = null;
            if (c != null) {
                c.disconnect();
            }
        } finally {
            connectLock.unlock();
        }
    }

    /** {@return the export's URI and size} */
    @Override
    public String toString() {
        return "NbdBackend[" + address + ", " + extent.size() + " bytes" + (extent.readOnly() ? ", read-only" : "") + "]";
    }
}
