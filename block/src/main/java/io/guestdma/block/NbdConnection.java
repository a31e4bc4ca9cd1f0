package io.guestdma.block;

import io.guestdma.memory.IoVector;
import io.guestdma.memory.internal.IovecWindow;
import io.guestdma.memory.internal.SocketFd;
import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;

import java.io.EOFException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One NBD session: the fixed newstyle handshake, then the transmission phase with up to
 * {@link #SLOTS} requests in flight, matched to their replies by cookie.
 *
 * <p>Callers send their own requests (under a lock, one gathering write of header and payload
 * straight from their buffers) and then wait for their slot. There is no reader thread: one of
 * the waiting callers at a time holds the <em>reader role</em> (leader/follower, as QEMU's NBD
 * client lets the coroutine that waits read the socket). It takes reply headers off the socket
 * and completes whichever request they answer; when its own request is done it passes the role to
 * another waiting caller. At queue depth 1 the caller so reads its own reply, with no thread
 * hand-off on the way, which is what qemu-img does too. Read data for another caller's request
 * is moved by that caller itself: the reader hands it the socket (the request's state becomes
 * {@code TRANSFER}), the owner scatters the payload from the socket straight into its buffers and
 * hands the socket back. So guest memory of a synchronous request is only ever touched by the
 * thread that owns the request, which also keeps memory of a confined arena usable.
 *
 * <p><b>Asynchronous requests</b> ({@link #submit}) are sent by the submitting thread, which then
 * returns: nobody waits for them, and their outcome goes to the caller's {@link BlockCompletion}. The connection's <em>reply thread</em>, started on the first
 * asynchronous request and ended with the connection, takes the reader role whenever asynchronous
 * requests are pending and holds it until none is; it reads every reply meanwhile, synchronous
 * callers' included (their read data is still handed to them). Whoever holds the role when an
 * asynchronous reply arrives, the reply thread or a synchronous caller, completes it: it scatters
 * read data from the socket straight into the request's buffers itself (so their memory must be
 * accessible from any thread), gives the slot back, lets go of the reader role (passing it on as
 * usual) and only then calls the request's completion: it never runs while its thread holds the
 * role, so it may make requests of their own, and one that blocks cannot keep the watchdog from
 * taking a dead connection down.
 *
 * <p>Failure: the first error marks the connection failed and shuts the socket down; whoever holds
 * the reader role then (or takes it, if nobody does) fails every pending request and releases the
 * descriptor, and keeps the role for good, so nobody reads a released descriptor. A watchdog
 * fails the connection when a request waits for its reply, or a send makes no progress, past the
 * timeout; no caller waits forever. A connection that failed stays failed; {@link NbdBackend}
 * opens a new one.
 *
 * <p>The socket is driven through its descriptor ({@link SocketFd}): a write request is one
 * {@code writev} of the header and the caller's {@link IoVector} entries, read data one
 * {@code readv} into them. Nothing is allocated per request on the success path, synchronous or
 * asynchronous: slots, the header, the iovec scratch arrays are reused, cookies are slot indexes
 * with a per-slot sequence number, and an asynchronous request's outcome goes to a completion
 * the caller owns.
 */
final class NbdConnection {
    // Handshake (values from the NBD protocol specification, doc/proto.md of the nbd project).
    static final long NBDMAGIC = 0x4e42444d41474943L;
    static final long IHAVEOPT = 0x49484156454F5054L;
    static final long CLISERV_MAGIC = 0x00420281861253L;
    static final long OPTION_REPLY_MAGIC = 0x3e889045565a9L;
    static final int FLAG_FIXED_NEWSTYLE = 1;
    static final int FLAG_NO_ZEROES = 2;
    static final int CLIENT_FIXED_NEWSTYLE = 1;
    static final int CLIENT_NO_ZEROES = 2;
    static final int OPT_EXPORT_NAME = 1;
    static final int OPT_ABORT = 2;
    static final int OPT_GO = 7;
    static final int OPT_STRUCTURED_REPLY = 8;
    static final int REP_ACK = 1;
    static final int REP_INFO = 3;
    static final int REP_ERR_UNSUP = 0x80000001;
    static final int REP_ERR_POLICY = 0x80000002;
    static final int REP_ERR_INVALID = 0x80000003;
    static final int REP_ERR_PLATFORM = 0x80000004;
    static final int REP_ERR_TLS_REQD = 0x80000005;
    static final int REP_ERR_UNKNOWN = 0x80000006;
    static final int REP_ERR_SHUTDOWN = 0x80000007;
    static final int REP_ERR_BLOCK_SIZE_REQD = 0x80000008;
    static final int INFO_EXPORT = 0;
    static final int INFO_BLOCK_SIZE = 3;

    // Transmission.
    static final int FLAG_HAS_FLAGS = 1;
    static final int FLAG_READ_ONLY = 1 << 1;
    static final int FLAG_SEND_FLUSH = 1 << 2;
    static final int FLAG_SEND_FUA = 1 << 3;
    static final int FLAG_SEND_TRIM = 1 << 5;
    static final int FLAG_SEND_WRITE_ZEROES = 1 << 6;
    static final int REQUEST_MAGIC = 0x25609513;
    static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;
    static final int CMD_READ = 0;
    static final int CMD_WRITE = 1;
    static final int CMD_DISC = 2;
    static final int CMD_FLUSH = 3;
    static final int CMD_TRIM = 4;
    static final int CMD_WRITE_ZEROES = 6;
    static final int CMD_FLAG_FUA = 1;
    static final int CMD_FLAG_NO_HOLE = 1 << 1;
    static final int REPLY_FLAG_DONE = 1;
    static final int REPLY_TYPE_NONE = 0;
    static final int REPLY_TYPE_OFFSET_DATA = 1;
    static final int REPLY_TYPE_OFFSET_HOLE = 2;
    static final int REPLY_TYPE_ERROR_BIT = 1 << 15;

    /** Requests in flight at once on one connection. */
    static final int SLOTS = Long.SIZE;
    /**
     * The largest READ or WRITE payload we send, whatever the server allows: the size every
     * server must accept (2^25), so one request never monopolises the socket for long.
     */
    static final int MAX_PAYLOAD = 32 << 20;
    /** Option replies and error messages are short; anything longer is a broken server. */
    private static final int MAX_OPTION_DATA = 64 * 1024;
    private static final int REQUEST_BYTES = 28;
    private static final ValueLayout.OfShort BE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt BE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfLong BE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final int WAITING = 0;
    private static final int PENDING = 1;
    /** The caller owns the socket and is moving read data (or zeroes for a hole). */
    private static final int TRANSFER = 2;
    private static final int DONE = 3;
    /** The longest a waiting caller sleeps before looking at its request again. */
    private static final long PARK_BOUND_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
    /** {@link #readUntilDone} outcomes. */
    private static final int DONE_READING = 0;
    private static final int DISPATCHED = 1;
    private static final int DEAD = 2;

    private final String name;
    private final SocketFd socket;
    private final long size;
    private final int flags;
    private final boolean structured;
    private final int minBlock;
    private final int maxPayload;
    private final long timeoutNanos;

    private final Slot[] slots = new Slot[SLOTS];
    /** How long the reader spins for a reply before it sleeps; used by the reader role only. */
    private final AdaptivePoll poll = new AdaptivePoll(AdaptivePoll.MAX_NANOS);
    /**
     * Bit i set: slot i is free. One word for all {@link #SLOTS} slots, taken and given back with
     * compare-and-set: a lock here would be contended by every caller at queue depth 16 and
     * allocate a queue node each time one of them has to wait.
     */
    private final AtomicLong free = new AtomicLong(-1L);
    /** Callers waiting for a free slot (more than {@link #SLOTS} requests at once). */
    private final ConcurrentLinkedQueue<Thread> slotWaiters = new ConcurrentLinkedQueue<>();
    private final ReentrantLock sendLock = new ReentrantLock();
    private final MemorySegment sendHeader = Arena.ofAuto().allocate(REQUEST_BYTES, 8);
    /** The iovecs of one send: the header, then the payload's entries. Guarded by sendLock. */
    private MemorySegment gather = Arena.ofAuto().allocate(33 * IovecWindow.ENTRY, 8);
    /** Set by the reader, under sendLock, when it released the descriptor. */
    private boolean socketClosed;
    /** Set by whoever took the connection down, holding the reader role; guards against doing it twice. */
    private boolean takenDown;
    /**
     * An asynchronous request the last reply completed (its completion, gate and outcome; its
     * slot is free already), to be reported once the reader has let go of the role; touched by
     * the role's holder only. Fields, not an object, so that a reply allocates nothing.
     */
    private BlockCompletion dueCompletion;
    private RequestGate dueGate;
    private IOException dueFailure;
    /** Asynchronous requests between their registration and their completion. */
    private final AtomicInteger asyncPending = new AtomicInteger();
    /** The reply thread, started by the first asynchronous request. */
    private volatile Thread replyThread;
    /** The reader role: held by one waiting caller at a time, and for good once the connection is dead. */
    private final AtomicBoolean reading = new AtomicBoolean();
    /** The thread holding the reader role, for owners handing the socket back after a transfer. */
    private volatile Thread readerThread;
    /** Reply headers land here; only the holder of the reader role touches it. */
    private final MemorySegment replyHeader = Arena.ofAuto().allocate(32, 8);
    // Fixed views of the header, made once: a reply costs no allocation.
    private final MemorySegment replyCommon = replyHeader.asSlice(0, 16);
    private final MemorySegment replyChunkLength = replyHeader.asSlice(16, 4);
    private final MemorySegment replyDataOffset = replyHeader.asSlice(20, 8);
    private final MemorySegment replyHole = replyHeader.asSlice(20, 12);
    /** When the send in progress started (System.nanoTime), or 0: read by the watchdog. */
    private volatile long sendingSince;
    private final ScheduledFuture<?> watchdog;

    /** Set once, by the first failure; what every pending and later request reports. */
    private volatile IOException failure;
    /** Guarded by this: set when every pending request has been failed and the descriptor released. */
    private boolean dead;
    /** The server said ESHUTDOWN: finish, but send nothing new. */
    private volatile boolean shuttingDown;
    private volatile boolean disconnecting;

    /** One request's state, reused from request to request. */
    private static final class Slot {
        final int index;
        long sequence;
        long cookie;
        volatile int state;
        /** When the request was registered, or its last read data moved (System.nanoTime): the watchdog's clock. */
        volatile long since;
        Thread waiter;
        int command;
        long offset;
        long length;
        IoVector iov;
        long base;
        long covered;
        int errno;
        String message;
        IOException failure;
        long transferAt;
        long transferBytes;
        boolean transferHole;
        IOException transferFailure;
        /** The caller's share of its vector for one readv; used by the thread moving the data only. */
        MemorySegment window = MemorySegment.NULL;
        /** An asynchronous request's completion, or null for a caller that waits. */
        BlockCompletion completion;
        /** An asynchronous request's backend gate, left once its completion was called. */
        RequestGate gate;

        Slot(int index) {
            this.index = index;
        }

        void clear() {
            iov = null;
            waiter = null;
            message = null;
            failure = null;
            transferFailure = null;
            completion = null;
            gate = null;
            errno = 0;
            covered = 0;
            state = WAITING;
        }
    }

    private NbdConnection(String name, SocketFd socket, Negotiated n, long timeoutNanos) {
        this.name = name;
        this.socket = socket;
        this.size = n.size;
        this.flags = n.flags;
        this.structured = n.structured;
        this.minBlock = n.minBlock;
        this.maxPayload = n.maxPayload;
        this.timeoutNanos = timeoutNanos;
        for (int i = 0; i < SLOTS; i++) {
            slots[i] = new Slot(i);
        }
        long period = Math.max(timeoutNanos / 4, TimeUnit.MILLISECONDS.toNanos(10));
        watchdog = Timer.TIMER.scheduleAtFixedRate(this::checkProgress, period, period, TimeUnit.NANOSECONDS);
    }

    /**
     * Socket calls have no timeout of their own. A server that stops reading blocks the sender in
     * a socket write (and every other sender behind it, on the send lock); one that stops answering
     * blocks the reader in a socket read. Failing the connection shuts the socket down, which wakes
     * them all.
     */
    private void checkProgress() {
        long now = System.nanoTime();
        long since = sendingSince;
        if (since != 0 && now - since > timeoutNanos) {
            fail(new IOException("sending to " + name + " made no progress for "
                    + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms"));
            return;
        }
        for (Slot slot : slots) {
            int state = slot.state;
            long waiting = slot.since;
            if ((state == PENDING || state == TRANSFER) && waiting != 0 && now - waiting > timeoutNanos) {
                fail(new IOException("no reply from " + name + " within "
                        + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms"));
                return;
            }
        }
    }

    // ------------------------------------------------------------------ handshake

    /** What the handshake settled. */
    private static final class Negotiated {
        long size = -1;
        int flags;
        boolean structured;
        int minBlock = 1;
        int maxPayload = MAX_PAYLOAD;
    }

    private static final class Timer {
        static final ScheduledExecutorService TIMER = createTimer();

        private static ScheduledExecutorService createTimer() {
            ScheduledThreadPoolExecutor timer = new ScheduledThreadPoolExecutor(1,
                    r -> Thread.ofPlatform().daemon().name("nbd-timer").unstarted(r));
            timer.setRemoveOnCancelPolicy(true);
            return Executors.unconfigurableScheduledExecutorService(timer);
        }
    }

    /**
     * Connects and negotiates. Connecting and every step of the handshake must finish within the
     * timeout (the socket's send and receive timeouts, lifted afterwards).
     *
     * @throws IOException naming the server and what went wrong (refused, closed during the
     *                     handshake, export unknown, not an NBD server, timed out)
     */
    static NbdConnection open(NbdAddress address, long timeoutNanos) throws IOException {
        String name = address.toString();
        SocketAddress target;
        try {
            target = address.socketAddress();
        } catch (IllegalArgumentException | SecurityException e) {
            throw new IOException("cannot resolve " + name + ": " + e.getMessage(), e);
        }
        if (target instanceof InetSocketAddress inet && inet.isUnresolved()) {
            throw new IOException("cannot connect to " + name + ": unknown host " + inet.getHostString());
        }
        SocketFd socket;
        try {
            socket = SocketFd.connect(target, timeoutNanos);
        } catch (IOException e) {
            throw new IOException("cannot connect to " + name + ": " + describe(e), e);
        }
        try {
            Negotiated n;
            try {
                n = handshake(socket, address);
            } catch (EOFException e) {
                throw new IOException("NBD handshake with " + name + " failed: the server closed the connection", e);
            } catch (PosixException e) {
                if (e.errno() == Errno.EAGAIN) {
                    throw new IOException("NBD handshake with " + name + " timed out after "
                            + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms", e);
                }
                throw new IOException("NBD handshake with " + name + " failed: " + e.getMessage(), e);
            }
            socket.clearTimeouts();
            return new NbdConnection(name, socket, n, timeoutNanos);
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
    }

    private static String describe(IOException e) {
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    private static Negotiated handshake(SocketFd ch, NbdAddress address) throws IOException {
        ByteBuffer greeting = readExactly(ch, 18);
        if (greeting.getLong() != NBDMAGIC) {
            throw protocol(address, "the server is not an NBD server (no NBDMAGIC greeting)");
        }
        long style = greeting.getLong();
        if (style == CLISERV_MAGIC) {
            throw protocol(address, "the server only speaks oldstyle negotiation, which cannot name an export");
        }
        if (style != IHAVEOPT) {
            throw protocol(address, "unknown negotiation magic 0x" + Long.toHexString(style));
        }
        int handshakeFlags = greeting.getShort() & 0xffff;
        if ((handshakeFlags & FLAG_FIXED_NEWSTYLE) == 0) {
            throw protocol(address, "the server does not support fixed newstyle negotiation");
        }
        boolean noZeroes = (handshakeFlags & FLAG_NO_ZEROES) != 0;
        writeFully(ch, ByteBuffer.allocate(4).putInt(CLIENT_FIXED_NEWSTYLE | (noZeroes ? CLIENT_NO_ZEROES : 0)).flip());

        Negotiated n = new Negotiated();
        sendOption(ch, OPT_STRUCTURED_REPLY, new byte[0]);
        OptionReply sr = readOptionReply(ch, address, OPT_STRUCTURED_REPLY);
        if (sr.type == REP_ACK) {
            n.structured = true;
        } else if (sr.type >= 0) {
            throw protocol(address, "unexpected reply " + sr.type + " to NBD_OPT_STRUCTURED_REPLY");
        } // an error reply (UNSUP, POLICY...) means simple replies only

        byte[] export = address.export().getBytes(StandardCharsets.UTF_8);
        ByteBuffer go = ByteBuffer.allocate(4 + export.length + 2 + 2);
        go.putInt(export.length).put(export).putShort((short) 1).putShort((short) INFO_BLOCK_SIZE);
        sendOption(ch, OPT_GO, go.array());
        while (true) {
            OptionReply r = readOptionReply(ch, address, OPT_GO);
            if (r.type == REP_INFO) {
                if (r.data.length < 2) {
                    throw protocol(address, "NBD_REP_INFO without an information type");
                }
                ByteBuffer info = ByteBuffer.wrap(r.data);
                int type = info.getShort() & 0xffff;
                if (type == INFO_EXPORT) {
                    if (r.data.length != 12) {
                        throw protocol(address, "NBD_INFO_EXPORT of " + r.data.length + " bytes (12 expected)");
                    }
                    n.size = info.getLong();
                    n.flags = info.getShort() & 0xffff;
                } else if (type == INFO_BLOCK_SIZE) {
                    if (r.data.length != 14) {
                        throw protocol(address, "NBD_INFO_BLOCK_SIZE of " + r.data.length + " bytes (14 expected)");
                    }
                    setBlockSizes(n, address, info.getInt(), info.getInt(), info.getInt());
                } // other information is optional and ignored, as the protocol asks
            } else if (r.type == REP_ACK) {
                if (n.size == -1) {
                    throw protocol(address, "NBD_OPT_GO succeeded without NBD_INFO_EXPORT");
                }
                break;
            } else if (r.type == REP_ERR_UNSUP) {
                exportName(ch, address, export, noZeroes, n);
                break;
            } else if (r.type < 0) {
                abortNegotiation(ch);
                throw new IOException("the NBD server at " + address + " refused export '" + address.export() + "': "
                        + optionError(r.type) + (r.data.length > 0
                        ? " (" + new String(r.data, StandardCharsets.UTF_8) + ")" : ""));
            } else {
                throw protocol(address, "unexpected reply type " + r.type + " to NBD_OPT_GO");
            }
        }
        if (n.size < 0) {
            throw protocol(address, "export size " + Long.toUnsignedString(n.size) + " is beyond 2^63 bytes");
        }
        if ((n.flags & FLAG_HAS_FLAGS) == 0) {
            n.flags = 0;
        }
        return n;
    }

    /** The pre-GO way in, for servers that do not know NBD_OPT_GO: no errors, no block sizes. */
    private static void exportName(SocketFd ch, NbdAddress address, byte[] export, boolean noZeroes,
                                   Negotiated n) throws IOException {
        sendOption(ch, OPT_EXPORT_NAME, export);
        ByteBuffer reply = readExactly(ch, 10 + (noZeroes ? 0 : 124));
        n.size = reply.getLong();
        n.flags = reply.getShort() & 0xffff;
        n.minBlock = 1;
        n.maxPayload = MAX_PAYLOAD;
    }

    private static void setBlockSizes(Negotiated n, NbdAddress address, int min, int preferred, int max)
            throws IOException {
        if (min < 1 || min > 65536 || Integer.bitCount(min) != 1) {
            throw protocol(address, "minimum block size " + Integer.toUnsignedString(min) + " is not a power of two up to 64 KiB");
        }
        if (Integer.compareUnsigned(preferred, min) < 0) {
            throw protocol(address, "preferred block size " + Integer.toUnsignedString(preferred)
                    + " is below the minimum " + min);
        }
        long maximum = Integer.toUnsignedLong(max);
        if (maximum < min) {
            throw protocol(address, "maximum payload " + maximum + " is below the minimum block size " + min);
        }
        n.minBlock = min;
        long payload = Math.min(maximum, MAX_PAYLOAD);
        n.maxPayload = (int) (payload - payload % min);
    }

    /** A soft disconnect: the polite way to give up during negotiation. Best effort. */
    private static void abortNegotiation(SocketFd ch) {
        try {
            sendOption(ch, OPT_ABORT, new byte[0]);
        } catch (IOException ignored) {
            // The server is gone already; closing the socket is all that is left.
        }
    }

    private record OptionReply(int type, byte[] data) {
    }

    private static void sendOption(SocketFd ch, int option, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(16 + data.length);
        b.putLong(IHAVEOPT).putInt(option).putInt(data.length).put(data).flip();
        writeFully(ch, b);
    }

    private static OptionReply readOptionReply(SocketFd ch, NbdAddress address, int option) throws IOException {
        ByteBuffer h = readExactly(ch, 20);
        if (h.getLong() != OPTION_REPLY_MAGIC) {
            throw protocol(address, "bad option reply magic");
        }
        int replyTo = h.getInt();
        int type = h.getInt();
        int length = h.getInt();
        if (replyTo != option) {
            throw protocol(address, "reply to option " + replyTo + " while waiting for option " + option);
        }
        if (length < 0 || length > MAX_OPTION_DATA) {
            throw protocol(address, "option reply of " + Integer.toUnsignedString(length) + " bytes");
        }
        return new OptionReply(type, readExactly(ch, length).array());
    }

    private static String optionError(int type) {
        return switch (type) {
            case REP_ERR_UNSUP -> "NBD_REP_ERR_UNSUP";
            case REP_ERR_POLICY -> "NBD_REP_ERR_POLICY (forbidden by the server's policy)";
            case REP_ERR_INVALID -> "NBD_REP_ERR_INVALID";
            case REP_ERR_PLATFORM -> "NBD_REP_ERR_PLATFORM";
            case REP_ERR_TLS_REQD -> "NBD_REP_ERR_TLS_REQD (the server requires TLS, which is not supported)";
            case REP_ERR_UNKNOWN -> "NBD_REP_ERR_UNKNOWN (no such export)";
            case REP_ERR_SHUTDOWN -> "NBD_REP_ERR_SHUTDOWN (the server is shutting down)";
            case REP_ERR_BLOCK_SIZE_REQD -> "NBD_REP_ERR_BLOCK_SIZE_REQD";
            default -> "error 0x" + Integer.toHexString(type);
        };
    }

    private static IOException protocol(NbdAddress address, String what) {
        return new IOException("NBD protocol error from " + address + ": " + what);
    }

    /** Handshake only: reads {@code bytes} into a heap buffer (through native memory, as it must). */
    private static ByteBuffer readExactly(SocketFd ch, int bytes) throws IOException {
        byte[] data = new byte[bytes];
        if (bytes > 0) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment buffer = arena.allocate(bytes);
                ch.readFully(buffer);
                MemorySegment.copy(buffer, ValueLayout.JAVA_BYTE, 0, data, 0, bytes);
            }
        }
        return ByteBuffer.wrap(data);
    }

    /** Handshake only: writes a heap buffer's remaining bytes. */
    private static void writeFully(SocketFd ch, ByteBuffer b) throws IOException {
        int n = b.remaining();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(Math.max(1, n));
            MemorySegment.copy(MemorySegment.ofBuffer(b), 0, buffer, 0, n);
            ch.writeFully(buffer.asSlice(0, n), arena.allocate(IovecWindow.ENTRY, 8));
            b.position(b.limit());
        }
    }

    // ------------------------------------------------------------------ what was negotiated

    long size() {
        return size;
    }

    int transmissionFlags() {
        return flags;
    }

    boolean has(int flag) {
        return (flags & flag) != 0;
    }

    boolean structuredReplies() {
        return structured;
    }

    int minBlock() {
        return minBlock;
    }

    int maxPayload() {
        return maxPayload;
    }

    /** @return whether new requests may use this connection */
    boolean usable() {
        return failure == null && !shuttingDown && !disconnecting;
    }

    // ------------------------------------------------------------------ requests

    /**
     * Sends one request and waits for its reply.
     *
     * @param iov  for READ, where the data goes; for WRITE, where it comes from; else null. Its
     *             segments are native and alive; the caller's thread owns it
     * @param base where in {@code iov} this request's data starts
     * @throws PosixException with the server's errno, or EIO if the connection failed or timed out
     */
    void request(int command, int commandFlags, long offset, long length, IoVector iov, long base)
            throws IOException {
        Slot slot = acquire(command, offset, length);
        try {
            slot.command = command;
            slot.offset = offset;
            slot.length = length;
            slot.iov = iov;
            slot.base = base;
            slot.waiter = Thread.currentThread();
            if (!register(slot)) {
                throw lost(command, offset, length, failure);
            }
            send(slot, commandFlags);
            await(slot);
            if (slot.failure != null) {
                throw lost(command, offset, length, slot.failure);
            }
            if (slot.errno != 0) {
                throw serverError(command, offset, length, slot.errno, slot.message);
            }
        } finally {
            slot.clear();
            release(slot);
        }
    }

    /**
     * Sends one request and returns without waiting for its reply; see the class comment for who
     * reports it. The request holds {@code gate} (entered by the caller) until its completion has
     * been called. Allocates nothing unless the request fails.
     *
     * @param iov        as for {@link #request}, but its memory must be accessible from any thread,
     *                   and it is the connection's until the completion is called
     * @param completion called once: with EIO if the connection fails before the reply (as
     *                   {@link #request} would throw), or the server's errno; on this thread, before
     *                   this returns, if the connection is dead already
     * @param gate       left once the completion was called
     * @return false if all {@link #SLOTS} slots are in flight: nothing was sent, the completion will
     *     not be called, and the caller still holds the gate
     */
    boolean submit(int command, int commandFlags, long offset, long length, IoVector iov, long base,
                   BlockCompletion completion, RequestGate gate) {
        // First, so that a thread that cannot be started leaves no slot taken.
        Thread replies = replyThread();
        Slot slot = tryAcquire();
        if (slot == null) {
            return false;
        }
        slot.command = command;
        slot.offset = offset;
        slot.length = length;
        slot.iov = iov;
        slot.base = base;
        slot.completion = completion;
        slot.gate = gate;
        slot.waiter = replies;
        if (asyncPending.incrementAndGet() == 1) {
            // The reply thread sleeps for good only when none was pending; every later one finds it
            // reading or about to be handed the role.
            LockSupport.unpark(slot.waiter);
        }
        if (!register(slot)) {
            // Not registered, so no reader sees the slot: this thread may use the due fields.
            IOException lost = lost(command, offset, length, failure);
            slot.clear();
            asyncPending.decrementAndGet();
            release(slot);
            dispatch(completion, gate, lost);
            return true;
        }
        // From here the reply may complete the slot and another request reuse it: only the send
        // may still look at it, and no reply comes before the request is sent.
        send(slot, commandFlags);
        return true;
    }

    /**
     * Holding the reader role: ends an asynchronous request with its outcome and frees its slot,
     * keeping what is needed to report it in the due fields until the role is let go: a caller
     * waiting for a slot must not wait behind the completion, nor the completion run in the role.
     */
    private void settle(Slot slot, IOException outcome) {
        dueCompletion = slot.completion;
        dueGate = slot.gate;
        dueFailure = outcome;
        slot.clear();
        asyncPending.decrementAndGet();
        release(slot);
    }

    /** Holding the role for good (the connection is dead): reports the request in the due fields. */
    private void dispatchDue() {
        BlockCompletion completion = dueCompletion;
        RequestGate gate = dueGate;
        IOException outcome = dueFailure;
        clearDue();
        dispatch(completion, gate, outcome);
    }

    private void clearDue() {
        dueCompletion = null;
        dueGate = null;
        dueFailure = null;
    }

    /**
     * Calls a settled request's completion, then lets the request leave the backend's gate (so
     * that close() returns only after every completion has run). Never called holding the reader
     * role while the connection lives: the completion may wait for other requests.
     */
    private static void dispatch(BlockCompletion completion, RequestGate gate, IOException outcome) {
        try {
            BlockRequest.report(completion, outcome);
        } finally {
            gate.exit();
        }
    }

    /** The server's error for a request as the exception the caller gets. */
    private static PosixException serverError(int command, long offset, long length, int errno, String message) {
        return new PosixException(call(command, offset, length)
                + (message != null && !message.isEmpty() ? " [server: " + message + "]" : ""), errno);
    }

    /** Starts the reply thread on first use. */
    private Thread replyThread() {
        Thread t = replyThread;
        if (t != null) {
            return t;
        }
        synchronized (this) {
            if (replyThread == null) {
                replyThread = Thread.ofPlatform().daemon().name("nbd-replies " + name).unstarted(this::serveReplies);
                replyThread.start();
            }
            return replyThread;
        }
    }

    /**
     * The reply thread: takes the reader role while asynchronous requests are pending, and ends
     * once the connection failed (whoever holds the role then fails the pending requests).
     */
    private void serveReplies() {
        Thread me = Thread.currentThread();
        while (failure == null) {
            if (asyncPending.get() == 0) {
                // Woken by the next asynchronous request, or by the connection's end.
                LockSupport.park(this);
                continue;
            }
            if (reading.compareAndSet(false, true)) {
                readerThread = me;
                int outcome = readUntilDone(null, true);
                if (outcome == DEAD) {
                    return; // the role stays taken: the connection is dead
                }
                if (outcome == DONE_READING) {
                    releaseReading();
                }
                continue;
            }
            // A synchronous caller reads meanwhile; it passes the role on when its own reply is in.
            LockSupport.parkNanos(this, PARK_BOUND_NANOS);
        }
        takeDownIfIdle();
    }

    private Slot acquire(int command, long offset, long length) throws IOException {
        Slot slot = tryAcquire();
        if (slot != null) {
            return slot;
        }
        // More than SLOTS requests at once: wait for one to finish, in line with the others.
        long deadline = System.nanoTime() + timeoutNanos;
        Thread me = Thread.currentThread();
        slotWaiters.add(me);
        try {
            while ((slot = tryAcquire()) == null) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new PosixException(call(command, offset, length) + ": " + SLOTS
                            + " requests stayed in flight past the timeout", Errno.EIO);
                }
                LockSupport.parkNanos(this, Math.min(left, PARK_BOUND_NANOS));
                if (Thread.interrupted()) {
                    InterruptedIOException i = new InterruptedIOException(call(command, offset, length)
                            + ": interrupted while waiting for a free request slot");
                    me.interrupt();
                    throw i;
                }
            }
            return slot;
        } finally {
            slotWaiters.remove(me);
        }
    }

    private Slot tryAcquire() {
        while (true) {
            long bits = free.get();
            if (bits == 0) {
                return null;
            }
            int index = Long.numberOfTrailingZeros(bits);
            if (free.compareAndSet(bits, bits & ~(1L << index))) {
                return slots[index];
            }
        }
    }

    private void release(Slot slot) {
        long bit = 1L << slot.index;
        long bits;
        do {
            bits = free.get();
        } while (!free.compareAndSet(bits, bits | bit));
        Thread waiter = slotWaiters.peek();
        if (waiter != null) {
            LockSupport.unpark(waiter);
        }
    }

    /** Makes the slot visible to the reader, unless the connection is already dead. */
    private synchronized boolean register(Slot slot) {
        if (dead || failure != null) {
            return false;
        }
        slot.sequence++;
        slot.cookie = (slot.sequence << 8) | slot.index;
        slot.since = System.nanoTime() | 1;
        slot.state = PENDING;
        return true;
    }

    private void send(Slot slot, int commandFlags) {
        sendLock.lock();
        sendingSince = System.nanoTime() | 1;
        try {
            if (socketClosed) {
                return; // the reader has failed every pending request, this one included
            }
            int entries = 1;
            if (slot.command == CMD_WRITE) {
                gather = IovecWindow.ensure(gather, 1 + slot.iov.nativeIovecCount());
                entries += IovecWindow.copy(slot.iov.nativeIovecs(), slot.iov.nativeIovecCount(), slot.base,
                        slot.length, gather, 1);
            }
            writeRequest(commandFlags, slot.command, slot.cookie, slot.offset, slot.length, entries,
                    REQUEST_BYTES + (slot.command == CMD_WRITE ? slot.length : 0));
        } catch (IOException e) {
            fail(e);
        } catch (RuntimeException e) {
            // Part of the request may be on the wire: the stream cannot be trusted any more.
            fail(new IOException("cannot send a request to " + name + ": " + e, e));
        } finally {
            sendingSince = 0;
            sendLock.unlock();
        }
    }

    /**
     * Under sendLock: the header goes in gather entry 0 (entries 1.. hold any payload already),
     * then one writev after another until every byte is out.
     */
    private void writeRequest(int commandFlags, int command, long cookie, long offset, long length, int entries,
                              long total) throws IOException {
        MemorySegment h = sendHeader;
        h.set(BE_INT, 0, REQUEST_MAGIC);
        h.set(BE_SHORT, 4, (short) commandFlags);
        h.set(BE_SHORT, 6, (short) command);
        h.set(BE_LONG, 8, cookie);
        h.set(BE_LONG, 16, offset);
        h.set(BE_INT, 24, (int) length);
        MemorySegment iov = gather;
        iov.set(ValueLayout.JAVA_LONG, 0, h.address());
        iov.set(ValueLayout.JAVA_LONG, 8, REQUEST_BYTES);
        long left = total;
        int count = entries;
        while (left > 0) {
            long n = socket.writev(iov, count);
            left -= n;
            if (left > 0) {
                count = IovecWindow.consume(iov, count, n);
            }
        }
    }

    /**
     * Waits until the slot is done: by reading replies itself when nobody holds the reader role,
     * else parked until the reader completes it, hands it read data to move, or passes it the role.
     * Timeouts are the watchdog's: it fails the connection, which ends every wait.
     */
    private void await(Slot slot) {
        boolean interrupted = false;
        while (true) {
            int state = slot.state;
            if (state == DONE) {
                break;
            }
            if (state == TRANSFER) {
                transfer(slot);
                continue;
            }
            if (reading.compareAndSet(false, true)) {
                readerThread = Thread.currentThread();
                if (readUntilDone(slot, false) == DONE_READING) {
                    releaseReading();
                }
                continue;
            }
            // Woken by the reader; the bound only guards against a wake-up this code failed to give.
            LockSupport.parkNanos(this, PARK_BOUND_NANOS);
            if (Thread.interrupted()) {
                // A request on the wire cannot be withdrawn: finish waiting, keep the interrupt.
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Gives the reader role up and passes it to a caller still waiting for a reply, if any: without
     * a reader their replies would sit in the socket. A caller that registers after the scan
     * finds the role free itself.
     */
    private void releaseReading() {
        readerThread = null;
        reading.set(false);
        if (failure != null) {
            takeDownIfIdle();
            return;
        }
        for (Slot other : slots) {
            if (other.state == PENDING) {
                LockSupport.unpark(other.waiter);
                return;
            }
        }
    }

    /** In the caller's thread: moves the data the reader handed over, then hands the socket back. */
    private void transfer(Slot slot) {
        moveReadData(slot);
        slot.since = System.nanoTime() | 1;
        slot.state = PENDING;
        LockSupport.unpark(readerThread);
    }

    /** Moves one piece of read data into the slot's buffers; a failure is left in the slot. */
    private void moveReadData(Slot slot) {
        try {
            if (slot.transferHole) {
                zero(slot, slot.transferAt, slot.transferBytes);
            } else {
                readInto(slot, slot.transferAt, slot.transferBytes);
            }
        } catch (IOException e) {
            slot.transferFailure = e;
        } catch (RuntimeException e) {
            // The payload is still in the socket, so the stream cannot be resynchronised.
            slot.transferFailure = new IOException("cannot store read data from " + name + ": " + e, e);
        }
    }

    private static String call(int command, long offset, long length) {
        String op = switch (command) {
            case CMD_READ -> "read";
            case CMD_WRITE -> "write";
            case CMD_FLUSH -> "flush";
            case CMD_TRIM -> "trim";
            case CMD_WRITE_ZEROES -> "write-zeroes";
            default -> "command " + command;
        };
        return command == CMD_FLUSH ? "nbd flush" : "nbd " + op + "(offset " + offset + ", " + length + " bytes)";
    }

    private PosixException lost(int command, long offset, long length, IOException cause) {
        String why = cause == null ? "connection closed" : describe(cause);
        PosixException e = new PosixException(call(command, offset, length) + " on " + name + ": " + why, Errno.EIO);
        e.initCause(cause);
        return e;
    }

    // ------------------------------------------------------------------ the reader

    /**
     * Holding the reader role: reads replies until {@code own} is done (or the connection dies);
     * with {@code own} null, until no asynchronous request is pending if {@code async}, else until
     * the connection ends.
     *
     * <p>A reply that completes an asynchronous request ends the loop early (unless draining): the
     * role is released first, then the future handed to its executor, so that its dependants,
     * which may run right here, never hold up the reading of replies (they may wait for another
     * request; if they block for good, the watchdog can still take the connection down).
     *
     * @return {@link #DONE_READING} when the condition is met (the caller releases the role),
     *     {@link #DISPATCHED} when the role was released to complete a request (the caller looks
     *     at its state again), {@link #DEAD} once the connection is dead (the role then stays
     *     taken for good)
     */
    private int readUntilDone(Slot own, boolean async) {
        BlockCompletion completed = null;
        RequestGate gate = null;
        IOException outcome = null;
        try {
            while (own != null ? own.state == PENDING : !async || asyncPending.get() > 0) {
                if (takenDown) {
                    return DEAD;
                }
                readReply();
                if (dueCompletion != null) {
                    if (own == null && !async) {
                        dispatchDue(); // draining after NBD_CMD_DISC: nothing new is sent
                        continue;
                    }
                    // Taken out of the fields while still holding the role: once it is released,
                    // the next holder may set them again.
                    completed = dueCompletion;
                    gate = dueGate;
                    outcome = dueFailure;
                    clearDue();
                    break;
                }
            }
        } catch (IOException e) {
            takeDown(e);
            return DEAD;
        } catch (RuntimeException | Error e) {
            takeDown(new IOException("reading replies from " + name + " failed", e));
            throw e;
        }
        if (completed == null) {
            return takenDown ? DEAD : DONE_READING;
        }
        // Outside the try: the role is no longer ours, so nothing below may take the connection down.
        releaseReading();
        dispatch(completed, gate, outcome);
        return DISPATCHED;
    }

    /** Reads one reply (a simple reply, or one structured chunk) and acts on it. */
    private void readReply() throws IOException {
        MemorySegment header = replyHeader;
        try {
            // Poll only for a lone request: with several in flight replies come back to back, and
            // a spinning reader takes the CPU that senders and the server need.
            boolean alone = Long.bitCount(free.get()) >= SLOTS - 1;
            long start = System.nanoTime();
            boolean polled = socket.readFully(replyCommon, alone ? poll.window() : 0);
            if (alone) {
                poll.waited(System.nanoTime() - start, polled);
            }
        } catch (EOFException e) {
            throw disconnecting ? new EOFException("disconnected") : e;
        }
        int magic = header.get(BE_INT, 0);
        if (magic == SIMPLE_REPLY_MAGIC) {
            simpleReply(header.get(BE_INT, 4), header.get(BE_LONG, 8));
        } else if (magic == STRUCTURED_REPLY_MAGIC) {
            readFully(replyChunkLength);
            chunk(header.get(BE_SHORT, 4) & 0xffff, header.get(BE_SHORT, 6) & 0xffff, header.get(BE_LONG, 8),
                    Integer.toUnsignedLong(header.get(BE_INT, 16)), header, replyDataOffset, replyHole);
        } else {
            throw protocolError("bad reply magic 0x" + Integer.toHexString(magic));
        }
    }

    /**
     * Holding the reader role, for good: marks the connection failed, fails every pending request
     * and releases the descriptor. No sender may touch the descriptor number once it is released
     * (it could name another file by then): it is closed under the send lock, and senders check
     * the flag.
     */
    private void takeDown(IOException cause) {
        if (takenDown) {
            return;
        }
        takenDown = true;
        markFailed(cause);
        sendLock.lock();
        try {
            socketClosed = true;
            socket.close();
        } finally {
            sendLock.unlock();
        }
        failPending();
    }

    /** After a failure: takes the connection down unless a reader holds the role (it will). */
    private void takeDownIfIdle() {
        if (reading.compareAndSet(false, true)) {
            takeDown(failure);
        }
    }

    private void simpleReply(int errno, long cookie) throws IOException {
        Slot slot = pending(cookie);
        if (slot.command == CMD_READ && errno == 0) {
            if (structured) {
                throw protocolError("a simple reply to a read after structured replies were negotiated");
            }
            handOff(slot, 0, slot.length, false);
        }
        complete(slot, errno, null);
    }

    private void chunk(int chunkFlags, int type, long cookie, long length, MemorySegment header,
                       MemorySegment dataOffset, MemorySegment hole) throws IOException {
        if (!structured) {
            throw protocolError("a structured reply that was not negotiated");
        }
        Slot slot = pending(cookie);
        if (type == REPLY_TYPE_NONE) {
            if (length != 0) {
                throw protocolError("NBD_REPLY_TYPE_NONE with a payload");
            }
        } else if (type == REPLY_TYPE_OFFSET_DATA || type == REPLY_TYPE_OFFSET_HOLE) {
            if (slot.command != CMD_READ) {
                throw protocolError("read data in the reply to a command that is not a read");
            }
            if (type == REPLY_TYPE_OFFSET_DATA ? length <= 8 : length != 12) {
                throw protocolError("content chunk of " + length + " bytes");
            }
            readFully(type == REPLY_TYPE_OFFSET_DATA ? dataOffset : hole);
            long at = header.get(BE_LONG, 20);
            long bytes = type == REPLY_TYPE_OFFSET_DATA ? length - 8 : Integer.toUnsignedLong(header.get(BE_INT, 28));
            long relative = at - slot.offset;
            if (bytes == 0 || relative < 0 || relative > slot.length || bytes > slot.length - relative) {
                throw protocolError("content chunk at offset " + at + " (" + bytes + " bytes) outside the request at "
                        + slot.offset + " (" + slot.length + " bytes)");
            }
            handOff(slot, relative, bytes, type == REPLY_TYPE_OFFSET_HOLE);
            slot.covered += bytes;
        } else if ((type & REPLY_TYPE_ERROR_BIT) != 0) {
            if (length < 6 || length > MAX_OPTION_DATA) {
                throw protocolError("error chunk of " + length + " bytes");
            }
            ByteBuffer payload;
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment buffer = arena.allocate(length);
                readFully(buffer);
                payload = ByteBuffer.wrap(buffer.toArray(ValueLayout.JAVA_BYTE));
            }
            int errno = payload.getInt(0);
            int messageLength = payload.getShort(4) & 0xffff;
            if (messageLength > length - 6) {
                throw protocolError("error message longer than its chunk");
            }
            if (slot.errno == 0) {
                slot.errno = errno != 0 ? errno : Errno.EIO;
                slot.message = new String(payload.array(), 6, messageLength, StandardCharsets.UTF_8);
            }
        } else {
            throw protocolError("unexpected structured reply type " + type);
        }
        if ((chunkFlags & REPLY_FLAG_DONE) != 0) {
            if (slot.errno == 0 && slot.command == CMD_READ && slot.covered != slot.length) {
                // A server claiming success without sending every byte would hand the guest
                // stale memory as disk data.
                throw protocolError("a successful read reply covered " + slot.covered + " of " + slot.length
                        + " bytes");
            }
            complete(slot, slot.errno, slot.message);
        }
    }

    private Slot pending(long cookie) throws IOException {
        Slot slot = slots[(int) (cookie & 0xff) % SLOTS];
        if (slot.cookie != cookie || slot.state != PENDING) {
            throw protocolError("a reply for unknown cookie 0x" + Long.toHexString(cookie));
        }
        return slot;
    }

    private void complete(Slot slot, int errno, String message) {
        slot.errno = errno;
        slot.message = message;
        if (errno == Errno.ESHUTDOWN) {
            // The protocol asks the client to disconnect: later requests go to a new connection.
            shuttingDown = true;
        }
        if (slot.completion != null) {
            settle(slot, errno == 0 ? null : serverError(slot.command, slot.offset, slot.length, errno, message));
            return;
        }
        Thread waiter = slot.waiter;
        slot.state = DONE;
        LockSupport.unpark(waiter);
    }

    /**
     * In the reader: moves the data itself when the request is its own, else lets the waiting caller move {@code bytes} of read data (or zeroes) at
     * {@code relative} into its buffers, and waits until it has. The wait is bounded like any
     * other: a caller stuck on a stalled server is woken by failing the connection.
     */
    private void handOff(Slot slot, long relative, long bytes, boolean hole) throws IOException {
        slot.transferAt = relative;
        slot.transferBytes = bytes;
        slot.transferHole = hole;
        slot.transferFailure = null;
        Thread waiter = slot.waiter;
        if (slot.completion != null || waiter == Thread.currentThread()) {
            // The reader's own request, or an asynchronous one (nobody waits for it): the reader
            // moves the data itself.
            moveReadData(slot);
            if (slot.transferFailure != null) {
                throw slot.transferFailure;
            }
            slot.since = System.nanoTime() | 1;
            return;
        }
        slot.state = TRANSFER;
        LockSupport.unpark(waiter);
        long deadline = System.nanoTime() + timeoutNanos;
        boolean timedOut = false;
        while (slot.state == TRANSFER) {
            long left = deadline - System.nanoTime();
            if (left <= 0 && !timedOut) {
                timedOut = true;
                fail(new IOException("read data from " + name + " did not arrive within "
                        + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms"));
            }
            LockSupport.parkNanos(this, timedOut ? TimeUnit.MILLISECONDS.toNanos(10) : left);
        }
        if (slot.transferFailure != null) {
            throw slot.transferFailure;
        }
    }

    /** In the caller's thread: one readv after another into its own memory, until the bytes are in. */
    private void readInto(Slot slot, long relative, long bytes) throws IOException {
        IoVector iov = slot.iov;
        slot.window = IovecWindow.ensure(slot.window, iov.nativeIovecCount());
        MemorySegment window = slot.window;
        int end = IovecWindow.copy(iov.nativeIovecs(), iov.nativeIovecCount(), slot.base + relative, bytes, window, 0);
        long left = bytes;
        int count = end;
        while (left > 0) {
            long n = socket.readv(window, count);
            if (n == 0) {
                throw new EOFException("the server closed the connection in the middle of read data");
            }
            left -= n;
            if (left > 0) {
                count = IovecWindow.consume(window, count, n);
            }
        }
    }

    private static void zero(Slot slot, long relative, long bytes) {
        slot.iov.fill(slot.base + relative, (byte) 0, bytes);
    }

    private void readFully(MemorySegment part) throws IOException {
        try {
            socket.readFully(part);
        } catch (EOFException e) {
            throw disconnecting ? new EOFException("disconnected") : e;
        }
    }

    private IOException protocolError(String what) {
        return new IOException("NBD protocol error from " + name + ": " + what);
    }

    // ------------------------------------------------------------------ failure and shutdown

    /**
     * Marks the connection failed (the first cause wins) and shuts the socket down, which wakes the
     * reader and any blocked sender; the reader then fails every pending request and releases
     * the descriptor (or this thread does, when nobody holds the reader role).
     */
    void fail(IOException cause) {
        markFailed(cause);
        takeDownIfIdle();
    }

    private void markFailed(IOException cause) {
        synchronized (this) {
            if (failure == null) {
                failure = cause != null ? cause : new IOException("connection to " + name + " closed");
            }
        }
        socket.shutdown();
    }

    private void failPending() {
        watchdog.cancel(false);
        List<Slot> async = new ArrayList<>();
        synchronized (this) {
            dead = true;
            for (Slot slot : slots) {
                // Never TRANSFER: only the reader takes the connection down, and it waits out every hand-off first.
                if (slot.state == PENDING && slot.completion != null) {
                    slot.state = DONE;
                    async.add(slot);
                } else if (slot.state == PENDING) {
                    slot.failure = failure;
                    Thread waiter = slot.waiter;
                    slot.state = DONE;
                    LockSupport.unpark(waiter);
                }
            }
            notifyAll();
        }
        // Outside the lock: the completions may make requests (which fail at once, or reconnect).
        if (dueCompletion != null) {
            // Read before the failure, and not reported yet: it succeeded (or failed) on its own.
            dispatchDue();
        }
        for (Slot slot : async) {
            settle(slot, lost(slot.command, slot.offset, slot.length, failure));
            dispatchDue();
        }
        Thread replies = replyThread;
        if (replies != null) {
            LockSupport.unpark(replies);
        }
    }

    /**
     * Ends the session politely: NBD_CMD_DISC, then waits (up to a second) for the server to close
     * its side, then closes ours. Requests still in flight fail. Idempotent.
     */
    void disconnect() {
        disconnecting = true;
        if (failure == null) {
            boolean sent = false;
            sendLock.lock();
            sendingSince = System.nanoTime() | 1;
            try {
                if (!socketClosed) {
                    writeRequest(0, CMD_DISC, 0, 0, 0, 1, REQUEST_BYTES);
                    socket.shutdownOutput();
                    sent = true;
                }
            } catch (IOException e) {
                // The server is gone already: there is nobody left to say goodbye to.
            } finally {
                sendingSince = 0;
                sendLock.unlock();
            }
            if (sent && reading.compareAndSet(false, true)) {
                // Nobody is reading: read what is left (replies still owed) until the server closes.
                readerThread = Thread.currentThread();
                drainUntilClosed(TimeUnit.SECONDS.toNanos(1));
            } else if (sent) {
                awaitDead(TimeUnit.SECONDS.toNanos(1));
            }
        }
        fail(new IOException("connection to " + name + " closed by the client"));
        awaitDead(timeoutNanos);
    }

    /** Holding the reader role after NBD_CMD_DISC: reads until end of file or the time is up. */
    private void drainUntilClosed(long nanos) {
        try {
            socket.receiveTimeout(nanos);
        } catch (IOException e) {
            takeDown(e);
            return;
        }
        readUntilDone(null, false);
    }

    private void awaitDead(long nanos) {
        long deadline = System.nanoTime() + nanos;
        boolean interrupted = false;
        synchronized (this) {
            long left;
            while (!dead && (left = deadline - System.nanoTime()) > 0) {
                try {
                    TimeUnit.NANOSECONDS.timedWait(this, left);
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
