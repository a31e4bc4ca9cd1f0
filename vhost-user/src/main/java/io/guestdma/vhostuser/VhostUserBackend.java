package io.guestdma.vhostuser;

import io.guestdma.memory.AddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.RamBacking;
import io.guestdma.memory.RamRegion;
import io.guestdma.memory.RegionTransaction;
import io.guestdma.memory.posix.PosixException;
import io.guestdma.virtio.VirtioDevice;
import io.guestdma.virtio.VirtioPci;
import io.guestdma.virtio.Virtqueue;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;

/**
 * A vhost-user back end: serves one {@link VirtioDevice} (virtio-blk, or any other device model
 * written against that interface) to a VMM such as QEMU over a Unix socket, one connection at a
 * time. The VMM shares guest RAM as file descriptors (SET_MEM_TABLE), which become RAM regions of the
 * back end's own {@link GuestMemory}; it hands over each ring's addresses and eventfds, and the
 * device does its DMA on the shared RAM itself. The back end is the device's transport: it
 * implements {@link VirtioDevice.Bus}, with an interrupt being a write to the queue's call eventfd.
 *
 * <p><b>Protocol.</b> GET/SET_FEATURES, GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK, CONFIG,
 * RESET_DEVICE), SET_OWNER, RESET_OWNER, RESET_DEVICE, GET_QUEUE_NUM, GET/SET_CONFIG,
 * SET_MEM_TABLE, SET_VRING_NUM/ADDR/BASE/KICK/CALL/ERR/ENABLE and GET_VRING_BASE. A ring starts
 * when its kick descriptor arrives and, once protocol features were negotiated, runs only while
 * enabled; GET_VRING_BASE stops it and returns where it stopped. Each running ring has a thread
 * waiting on its kick eventfd; the device's own I/O threads do the requests.
 *
 * <p><b>A hostile front end.</b> Every message is checked before it changes anything: its header
 * (version, reply bit, payload size up to {@value Protocol#MAX_PAYLOAD}), its payload size for its
 * request, the number of descriptors it carries, queue indices, ring sizes, memory tables
 * (region count, sizes, overlaps, descriptors that cannot be mapped) and ring addresses (inside
 * the table). A request that is malformed, unknown or not offered ends the connection; a
 * well-formed one that cannot be carried out is answered with a failure when the front end asked
 * for an acknowledgement (REPLY_ACK), and ends the connection otherwise. Descriptors are closed
 * whenever they are not kept, and when a connection ends every ring is stopped, the device reset,
 * every descriptor closed and the shared memory removed (unmapped once the last DMA mapping
 * through it is gone); then the next connection is accepted.
 *
 * <p>Thread-safe: {@link #close()} may be called from any thread.
 */
public final class VhostUserBackend implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(VhostUserBackend.class.getName());

    /**
     * What the back end is doing, for monitoring and tests.
     *
     * @param connected        whether a front end is connected
     * @param connections      connections served so far, the current one included
     * @param features         virtio features the front end set (0 before SET_FEATURES)
     * @param protocolFeatures protocol features the front end set
     * @param memoryRegions    regions of the current memory table
     * @param runningQueues    rings running (started and enabled)
     * @param lastError        why the last connection ended abnormally, or null
     */
    public record Status(boolean connected, long connections, long features, long protocolFeatures,
                         int memoryRegions, int runningQueues, String lastError) {
    }

    private final GuestMemory memory;
    private final VirtioDevice device;
    private final Vring[] vrings;
    /** The longest a kick thread polls its ring before it sleeps on the kick (0: never polls). */
    private final long pollMaxNanos;
    private final Object lock = new Object();
    private Thread server;
    private int listener = -1;
    private Path socketPath;
    private volatile Channel channel;
    private volatile boolean closed;
    private long connections;
    private String lastError;

    // Connection state, touched only by the thread serving the connection (reads for status()
    // are racy snapshots, which is all they promise).
    private volatile long features;
    private volatile long protocolFeatures;
    private boolean featuresSet;
    private final List<MappedRegion> table = new ArrayList<>();
    private int tableGeneration;

    /** One region of the current memory table: where it is for the guest and for the VMM. */
    private record MappedRegion(String name, long guestAddress, long size, long userAddress) {
    }

    /**
     * Creates a back end with an empty guest memory and the device {@code factory} builds over it,
     * whose kick threads sleep on their kick as soon as the ring is empty (no polling).
     *
     * @param factory builds the device over the back end's guest memory (for example
     *                {@code m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults())}); called once
     * @throws NullPointerException     if factory is null or returns null
     * @throws IllegalArgumentException if the device has no queues or more than 256
     */
    public VhostUserBackend(Function<? super AddressSpace, ? extends VirtioDevice> factory) {
        this(factory, Duration.ZERO);
    }

    /**
     * Creates a back end with an empty guest memory and the device {@code factory} builds over it,
     * whose kick threads poll an empty ring for up to {@code pollMax} before they sleep on the
     * kick, as QEMU's I/O threads poll their virtqueues ({@code poll-max-ns}, 32 us by default
     * there). While a kick thread polls, the guest is told not to kick (VRING_USED_F_NO_NOTIFY, or
     * with EVENT_IDX an avail event it has passed), so a guest that makes requests available in a
     * steady stream costs neither a kick nor a wake-up per request. The time polled adapts as in
     * QEMU: it starts at 0, grows (4 us, then doubling up to {@code pollMax}) while the next kick
     * came later than the poll gave up but within {@code pollMax}, and drops to 0 when the ring
     * stayed empty for longer than {@code pollMax}, so a ring served one request at a time with
     * long pauses (a queue depth of 1) is not polled at all. Polling pays for a device that serves
     * its queue inside {@link VirtioDevice#queueNotified(int)} (for virtio-blk,
     * {@code VirtioBlkConfig.withIoThreads(false)}); a device that hands the queue to a thread of
     * its own ends each poll that finds a request, since the kick thread cannot tell when that
     * thread has taken it.
     *
     * @param factory builds the device over the back end's guest memory; called once
     * @param pollMax the longest poll, {@link Duration#ZERO} for none, at most one second
     * @throws NullPointerException     if factory or pollMax is null, or the factory returns null
     * @throws IllegalArgumentException if pollMax is negative or over a second, or the device has
     *                                  no queues or more than 256
     */
    public VhostUserBackend(Function<? super AddressSpace, ? extends VirtioDevice> factory, Duration pollMax) {
        Objects.requireNonNull(factory, "factory");
        Objects.requireNonNull(pollMax, "pollMax");
        if (pollMax.isNegative() || pollMax.compareTo(Duration.ofSeconds(1)) > 0) {
            throw new IllegalArgumentException("pollMax must be from 0 to 1 s, was " + pollMax);
        }
        this.pollMaxNanos = pollMax.toNanos();
        this.memory = GuestMemory.builder().build();
        VirtioDevice built;
        try {
            built = Objects.requireNonNull(factory.apply(memory), "the factory returned no device");
        } catch (RuntimeException e) {
            memory.close();
            throw e;
        }
        this.device = built;
        int count = device.queueCount();
        if (count < 1 || count > 256) {
            memory.close();
            throw new IllegalArgumentException("a vhost-user device has 1 to 256 queues, this one " + count);
        }
        this.vrings = new Vring[count];
        for (int i = 0; i < count; i++) {
            vrings[i] = new Vring(i, new Virtqueue(memory, device.queueSize()));
        }
        device.attach(new Bus());
    }

    /** {@return the device served} */
    public VirtioDevice device() {
        return device;
    }

    /** {@return the guest memory the front end shares: empty while no memory table is set} */
    public GuestMemory memory() {
        return memory;
    }

    /** {@return a snapshot of the back end's state} */
    public Status status() {
        int running = 0;
        for (Vring v : vrings) {
            if (v.kickThread != null) {
                running++;
            }
        }
        synchronized (lock) {
            return new Status(channel != null, connections, features, protocolFeatures, table.size(), running,
                    lastError);
        }
    }

    /**
     * Listens on {@code socket} and serves front ends there, one after another, on a thread of its
     * own, until {@link #close()}. The socket file is created (an existing one is refused) and
     * deleted on close.
     *
     * @param socket the socket's path (at most 107 bytes)
     * @throws PosixException           if binding fails (EADDRINUSE if the path exists)
     * @throws IllegalStateException    if the back end is serving already or closed
     * @throws IllegalArgumentException if the path is too long
     */
    public void listen(Path socket) throws PosixException {
        synchronized (lock) {
            checkIdle();
            listener = Linux.listen(socket);
            socketPath = socket;
            int fd = listener;
            server = Thread.ofPlatform().name("vhost-user-listen").daemon().start(() -> acceptLoop(fd));
        }
    }

    /**
     * Connects to a front end listening on {@code socket} (QEMU's {@code -chardev socket,server=on})
     * and serves that one connection on a thread of its own.
     *
     * @param socket the front end's socket
     * @throws PosixException           if connecting fails (ENOENT, ECONNREFUSED)
     * @throws IllegalStateException    if the back end is serving already or closed
     * @throws IllegalArgumentException if the path is too long
     */
    public void connect(Path socket) throws PosixException {
        synchronized (lock) {
            checkIdle();
            int fd = Linux.connect(socket);
            server = Thread.ofPlatform().name("vhost-user-connection").daemon().start(() -> serve(fd));
        }
    }

    private void checkIdle() {
        if (closed) {
            throw new IllegalStateException("the back end is closed");
        }
        if (server != null) {
            throw new IllegalStateException("the back end is serving already");
        }
    }

    private void acceptLoop(int fd) {
        while (!closed) {
            int connection;
            try {
                connection = Linux.accept(fd);
            } catch (PosixException e) {
                if (!closed) {
                    LOG.log(System.Logger.Level.ERROR, "vhost-user: accept failed, no longer listening", e);
                }
                return;
            }
            serve(connection);
        }
    }

    /** Serves one connection to its end; never throws. */
    private void serve(int fd) {
        Channel c = new Channel(fd);
        synchronized (lock) {
            if (closed) {
                c.close();
                return;
            }
            channel = c;
            connections++;
        }
        String why = null;
        try {
            while (true) {
                Channel.Message m = c.read();
                if (m == null) {
                    break;
                }
                handle(c, m);
            }
        } catch (Channel.ViolationException e) {
            why = e.getMessage();
        } catch (PosixException e) {
            why = closed ? null : e.getMessage();
        } catch (RuntimeException e) {
            // A bug of ours must not take the process down: this connection ends, the next is served.
            LOG.log(System.Logger.Level.ERROR, "vhost-user: internal error", e);
            why = "internal error: " + e;
        } finally {
            disconnect();
            synchronized (lock) {
                // Closed under the lock: close() must not shut down a descriptor number reused since,
                // and whoever sees the connection gone sees its socket closed too.
                channel = null;
                lastError = why;
                c.close();
            }
        }
        if (why != null) {
            LOG.log(System.Logger.Level.WARNING, "vhost-user: connection closed: " + why);
        }
    }

    /** A well-formed request the back end cannot carry out. */
    private static final class RefusedException extends Exception {
        private static final long serialVersionUID = 1L;

        RefusedException(String message) {
            super(message);
        }
    }

    private void handle(Channel c, Channel.Message m) throws Channel.ViolationException, PosixException {
        boolean keepFds = false;
        try {
            boolean ack = m.needsReply() && (protocolFeatures & Protocol.PF_REPLY_ACK) != 0;
            String refused = null;
            try {
                keepFds = dispatch(c, m);
            } catch (RefusedException e) {
                refused = e.getMessage();
            }
            if (refused != null && !ack) {
                throw new Channel.ViolationException(Protocol.name(m.request()) + " refused: " + refused);
            }
            if (refused != null) {
                LOG.log(System.Logger.Level.WARNING, "vhost-user: " + Protocol.name(m.request()) + " refused: " + refused);
            }
            if (ack && !hasReply(m.request())) {
                c.replyU64(m.request(), refused == null ? 0 : 1);
            }
        } finally {
            if (!keepFds) {
                m.closeFds();
            }
        }
    }

    private static boolean hasReply(int request) {
        return request == Protocol.GET_FEATURES || request == Protocol.GET_PROTOCOL_FEATURES
                || request == Protocol.GET_QUEUE_NUM || request == Protocol.GET_VRING_BASE
                || request == Protocol.GET_CONFIG;
    }

    /** Carries out one request; true if it kept the message's descriptors. */
    private boolean dispatch(Channel c, Channel.Message m)
            throws Channel.ViolationException, PosixException, RefusedException {
        int request = m.request();
        ByteBuffer p = m.payload();
        if (request != Protocol.SET_MEM_TABLE && request != Protocol.SET_VRING_KICK
                && request != Protocol.SET_VRING_CALL && request != Protocol.SET_VRING_ERR && m.fds().length > 0) {
            throw violation(m, m.fds().length + " descriptors where none belong");
        }
        switch (request) {
            case Protocol.GET_FEATURES -> {
                size(m, 0);
                c.replyU64(request, offeredFeatures());
            }
            case Protocol.SET_FEATURES -> {
                size(m, 8);
                long value = p.getLong(0);
                if ((value & ~offeredFeatures()) != 0) {
                    throw new RefusedException(String.format("features 0x%x were not offered", value & ~offeredFeatures()));
                }
                features = value;
                featuresSet = true;
            }
            case Protocol.SET_OWNER, Protocol.RESET_OWNER, Protocol.RESET_DEVICE -> {
                size(m, 0);
                if (request == Protocol.RESET_DEVICE && (protocolFeatures & Protocol.PF_RESET_DEVICE) == 0) {
                    throw violation(m, "RESET_DEVICE was not negotiated");
                }
                if (request != Protocol.SET_OWNER) {
                    resetDevice();
                }
            }
            case Protocol.GET_PROTOCOL_FEATURES -> {
                size(m, 0);
                c.replyU64(request, Protocol.PROTOCOL_FEATURES);
            }
            case Protocol.SET_PROTOCOL_FEATURES -> {
                size(m, 8);
                long value = p.getLong(0);
                if ((value & ~Protocol.PROTOCOL_FEATURES) != 0) {
                    throw new RefusedException(String.format("protocol features 0x%x were not offered",
                            value & ~Protocol.PROTOCOL_FEATURES));
                }
                protocolFeatures = value;
            }
            case Protocol.GET_QUEUE_NUM -> {
                size(m, 0);
                c.replyU64(request, vrings.length);
            }
            case Protocol.GET_CONFIG -> c.reply(request, readConfig(m));
            case Protocol.SET_CONFIG -> writeConfig(m);
            case Protocol.SET_MEM_TABLE -> {
                setMemTable(m);
                return false; // the mappings hold their own references; the descriptors are closed
            }
            case Protocol.SET_VRING_NUM -> {
                Vring v = vring(m, 8);
                int num = p.getInt(4);
                if (num < 1 || num > Virtqueue.MAX_SIZE || Integer.bitCount(num) != 1) {
                    throw new RefusedException("ring size " + Integer.toUnsignedString(num)
                            + " is not a power of two from 1 to " + Virtqueue.MAX_SIZE);
                }
                requireStopped(v);
                v.num = num;
            }
            case Protocol.SET_VRING_BASE -> {
                Vring v = vring(m, 8);
                int base = p.getInt(4);
                if (base < 0 || base > 0xffff) {
                    throw new RefusedException("ring base " + Integer.toUnsignedString(base) + " is not a 16-bit index");
                }
                requireStopped(v);
                v.base = base;
            }
            case Protocol.SET_VRING_ADDR -> {
                Vring v = vring(m, 40);
                requireStopped(v);
                // Addresses outside the table are refused now, not when the ring starts.
                translate(v.index, v.num, p.getLong(8), p.getLong(24), p.getLong(16));
                v.descUser = p.getLong(8);
                v.usedUser = p.getLong(16);
                v.availUser = p.getLong(24);
                v.addressSet = true;
            }
            case Protocol.GET_VRING_BASE -> {
                Vring v = vring(m, 8);
                stopRing(v);
                v.started = false;
                v.closeKick();
                c.reply(request, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                        .putInt(v.index).putInt(v.base).array());
            }
            case Protocol.SET_VRING_KICK, Protocol.SET_VRING_CALL, Protocol.SET_VRING_ERR -> {
                return setVringFd(m);
            }
            case Protocol.SET_VRING_ENABLE -> {
                Vring v = vring(m, 8);
                if ((features & Protocol.F_PROTOCOL_FEATURES) == 0) {
                    throw violation(m, "sent without protocol features negotiated");
                }
                int enable = p.getInt(4);
                if (enable != 0 && enable != 1) {
                    throw new RefusedException("enable must be 0 or 1, was " + Integer.toUnsignedString(enable));
                }
                v.enabled = enable == 1;
                if (v.enabled) {
                    startIfReady(v);
                } else {
                    stopRing(v);
                }
            }
            default -> throw violation(m, "unknown or not offered");
        }
        return false;
    }

    private long offeredFeatures() {
        return (device.features() & ~VirtioPci.F_RING_RESET) | Protocol.F_PROTOCOL_FEATURES;
    }

    private static Channel.ViolationException violation(Channel.Message m, String why) {
        return new Channel.ViolationException(Protocol.name(m.request()) + ": " + why);
    }

    private static void size(Channel.Message m, int expected) throws Channel.ViolationException {
        if (m.payload().capacity() != expected) {
            throw violation(m, "payload of " + m.payload().capacity() + " bytes, expected " + expected);
        }
    }

    private Vring vring(Channel.Message m, int expectedSize) throws Channel.ViolationException {
        size(m, expectedSize);
        int index = m.payload().getInt(0);
        if (index < 0 || index >= vrings.length) {
            throw violation(m, "queue " + Integer.toUnsignedString(index) + " of " + vrings.length);
        }
        return vrings[index];
    }

    private static void requireStopped(Vring v) throws RefusedException {
        if (v.kickThread != null) {
            throw new RefusedException("queue " + v.index + " is running");
        }
    }

    private boolean setVringFd(Channel.Message m) throws Channel.ViolationException, PosixException, RefusedException {
        size(m, 8);
        long value = m.payload().getLong(0);
        long index = value & Protocol.VRING_INDEX_MASK;
        boolean noFd = (value & Protocol.VRING_NOFD) != 0;
        if ((value & ~(Protocol.VRING_INDEX_MASK | Protocol.VRING_NOFD)) != 0) {
            throw violation(m, String.format("unknown bits in 0x%x", value));
        }
        if (index >= vrings.length) {
            throw violation(m, "queue " + index + " of " + vrings.length);
        }
        if (m.fds().length != (noFd ? 0 : 1)) {
            throw violation(m, m.fds().length + " descriptors, expected " + (noFd ? 0 : 1));
        }
        Vring v = vrings[(int) index];
        int fd = noFd ? -1 : m.fds()[0];
        switch (m.request()) {
            case Protocol.SET_VRING_KICK -> {
                if (noFd) {
                    // Polling the avail ring instead of waiting on a kick is not supported.
                    throw new RefusedException("queue " + index + ": a ring without a kick eventfd");
                }
                stopRing(v);
                v.closeKick();
                v.kickFd = fd;
                v.started = true;
                if ((features & Protocol.F_PROTOCOL_FEATURES) == 0) {
                    v.enabled = true;
                }
                startIfReady(v);
            }
            case Protocol.SET_VRING_CALL -> v.setCall(fd);
            default -> v.setErr(fd);
        }
        return !noFd;
    }

    private byte[] readConfig(Channel.Message m) throws Channel.ViolationException {
        int size = configHeader(m);
        if ((protocolFeatures & Protocol.PF_CONFIG) == 0) {
            throw violation(m, "CONFIG was not negotiated");
        }
        ByteBuffer p = m.payload();
        int offset = p.getInt(0);
        ByteBuffer reply = ByteBuffer.allocate(12 + size).order(ByteOrder.LITTLE_ENDIAN);
        reply.putInt(offset).putInt(size).putInt(p.getInt(8));
        for (int i = 0; i < size; i++) {
            // Beyond the device's configuration space reads zero, as a PCI function's does.
            reply.put((byte) (offset + i < device.configSize() ? device.configRead(offset + i, 1) : 0));
        }
        return reply.array();
    }

    private void writeConfig(Channel.Message m) throws Channel.ViolationException {
        int size = configHeader(m);
        if ((protocolFeatures & Protocol.PF_CONFIG) == 0) {
            throw violation(m, "CONFIG was not negotiated");
        }
        ByteBuffer p = m.payload();
        int offset = p.getInt(0);
        for (int i = 0; i < size && offset + i < device.configSize(); i++) {
            device.configWrite(offset + i, 1, p.get(12 + i) & 0xff);
        }
    }

    /** Checks a GET/SET_CONFIG payload; returns the size of the configuration bytes. */
    private static int configHeader(Channel.Message m) throws Channel.ViolationException {
        ByteBuffer p = m.payload();
        if (p.capacity() < 12) {
            throw violation(m, "payload of " + p.capacity() + " bytes, shorter than its 12-byte header");
        }
        int offset = p.getInt(0);
        int size = p.getInt(4);
        if (offset < 0 || size < 0 || offset > Protocol.MAX_CONFIG_SIZE || size > Protocol.MAX_CONFIG_SIZE - offset) {
            throw violation(m, "configuration bytes " + Integer.toUnsignedString(offset) + "+"
                    + Integer.toUnsignedString(size) + " outside " + Protocol.MAX_CONFIG_SIZE);
        }
        if (p.capacity() != 12 + size) {
            throw violation(m, "payload of " + p.capacity() + " bytes for " + size + " configuration bytes");
        }
        return size;
    }

    private void setMemTable(Channel.Message m) throws Channel.ViolationException, RefusedException {
        ByteBuffer p = m.payload();
        if (p.capacity() < 8) {
            throw violation(m, "payload of " + p.capacity() + " bytes, shorter than its 8-byte header");
        }
        int count = p.getInt(0);
        if (count < 0 || count > Protocol.MAX_REGIONS) {
            throw violation(m, Integer.toUnsignedString(count) + " regions (at most " + Protocol.MAX_REGIONS + ")");
        }
        if (p.capacity() != 8 + 32 * count) {
            throw violation(m, "payload of " + p.capacity() + " bytes for " + count + " regions");
        }
        if (m.fds().length != count) {
            throw violation(m, m.fds().length + " descriptors for " + count + " regions");
        }
        List<MappedRegion> next = new ArrayList<>();
        long[] offsets = new long[count];
        int generation = tableGeneration + 1;
        for (int i = 0; i < count; i++) {
            int at = 8 + 32 * i;
            long guest = p.getLong(at);
            long size = p.getLong(at + 8);
            long user = p.getLong(at + 16);
            offsets[i] = p.getLong(at + 24);
            if (size <= 0 || guest + size - 1 < guest || user + size - 1 < user || offsets[i] < 0) {
                throw new RefusedException(String.format("region %d: guest 0x%x, size 0x%x, user 0x%x, offset 0x%x"
                        + " is empty or wraps", i, guest, size, user, offsets[i]));
            }
            for (MappedRegion r : next) {
                if (Long.compareUnsigned(user, r.userAddress + r.size) < 0
                        && Long.compareUnsigned(r.userAddress, user + size) < 0) {
                    throw new RefusedException(String.format("region %d: VMM addresses 0x%x+0x%x overlap %s", i, user,
                            size, r.name));
                }
            }
            next.add(new MappedRegion("vhost-user-" + generation + "-" + i, guest, size, user));
        }
        // Stop every ring first: its views pin the old table, and its indices are kept to resume.
        List<Vring> running = new ArrayList<>();
        for (Vring v : vrings) {
            if (v.kickThread != null) {
                running.add(v);
                stopRing(v);
            }
        }
        List<RamBacking> backings = new ArrayList<>();
        try {
            RegionTransaction t = memory.transaction();
            for (MappedRegion r : table) {
                t.remove(r.name);
            }
            for (int i = 0; i < count; i++) {
                MappedRegion r = next.get(i);
                RamBacking b = RamBacking.sharedFd(m.fds()[i], offsets[i], r.size, true);
                backings.add(b);
                t.add(new RamRegion(r.name, r.guestAddress, r.size, 0, b));
            }
            CompletableFuture<Void> drained = t.commit();
            drained.exceptionally(e -> {
                LOG.log(System.Logger.Level.WARNING, "vhost-user: unmapping an old memory table failed", e);
                return null;
            });
        } catch (IOException | IllegalArgumentException | IllegalStateException e) {
            for (RamBacking b : backings) {
                b.close(); // never handed to the memory: ours to unmap
            }
            for (Vring v : running) {
                startIfReady(v); // the old table stays
            }
            throw new RefusedException(e.getMessage());
        }
        synchronized (lock) {
            table.clear();
            table.addAll(next);
            tableGeneration = generation;
        }
        for (Vring v : running) {
            startIfReady(v);
        }
    }

    /** Finds the guest physical addresses of a ring's areas; refuses areas outside the table. */
    private long[] translate(int index, long num, long desc, long avail, long used) throws RefusedException {
        if (table.isEmpty()) {
            return null; // checked again once a table arrives
        }
        return new long[] {
            guestAddress(index, "descriptor table", desc, 16 * num),
            guestAddress(index, "avail ring", avail, 6 + 2 * num),
            guestAddress(index, "used ring", used, 6 + 8 * num),
        };
    }

    private long guestAddress(int index, String what, long user, long length) throws RefusedException {
        for (MappedRegion r : table) {
            long offset = user - r.userAddress;
            if (Long.compareUnsigned(offset, r.size) < 0 && Long.compareUnsigned(length, r.size - offset) <= 0) {
                return r.guestAddress + offset;
            }
        }
        throw new RefusedException(String.format("queue %d: %s at VMM address 0x%x (+0x%x) is not inside one region"
                + " of the memory table", index, what, user, length));
    }

    /** Starts a ring once it has a kick, addresses, memory and (with protocol features) is enabled. */
    private void startIfReady(Vring v) throws RefusedException {
        if (!v.started || !v.enabled || !v.addressSet || table.isEmpty() || v.kickThread != null) {
            return;
        }
        long[] at = translate(v.index, v.num, v.descUser, v.availUser, v.usedUser);
        Virtqueue q = v.queue;
        synchronized (q) {
            q.setSize(v.num);
            q.useEventIdx((features & VirtioPci.F_EVENT_IDX) != 0);
            if (!q.enable(at[0], at[1], at[2]) || !q.resumeAt(v.base)) {
                String why = q.error();
                q.disable();
                throw new RefusedException("queue " + v.index + ": " + why);
            }
        }
        if (featuresSet) {
            device.statusChanged(VirtioPci.STATUS_ACKNOWLEDGE | VirtioPci.STATUS_DRIVER
                    | VirtioPci.STATUS_FEATURES_OK | VirtioPci.STATUS_DRIVER_OK);
        }
        v.startKickThread();
        device.queueNotified(v.index); // buffers made available before the kick eventfd was watched
    }

    /** Stops a ring's work; its next avail index is kept in {@code base}. */
    private void stopRing(Vring v) {
        if (v.kickThread == null) {
            return;
        }
        v.stopKickThread();
        device.queueReset(v.index);
        Virtqueue q = v.queue;
        synchronized (q) {
            v.base = q.lastAvailIndex();
            q.disable();
        }
    }

    private void resetDevice() {
        for (Vring v : vrings) {
            stopRing(v);
        }
        device.reset();
        for (Vring v : vrings) {
            v.forget();
        }
        features = 0;
        featuresSet = false;
    }

    /** Ends a connection's state: rings, device, descriptors, memory. */
    private void disconnect() {
        resetDevice();
        protocolFeatures = 0;
        RegionTransaction t = memory.transaction();
        synchronized (lock) {
            for (MappedRegion r : table) {
                t.remove(r.name);
            }
            table.clear();
        }
        try {
            t.commit();
        } catch (IllegalStateException e) {
            // The memory is closed (close() raced with the connection's end): nothing left to remove.
        }
    }

    /**
     * Stops serving: the listener (and its socket file) goes, the connection in progress ends as if
     * the front end had closed it, the device's queues are stopped and the shared memory released.
     * The device itself is the caller's to close. Idempotent.
     */
    @Override
    public void close() {
        Thread t;
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            t = server;
            if (listener >= 0) {
                Linux.shutdownQuietly(listener);
            }
            if (channel != null) {
                channel.shutdown();
            }
        }
        if (t != null) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        synchronized (lock) {
            Linux.closeQuietly(listener);
            listener = -1;
            if (socketPath != null) {
                try {
                    Files.deleteIfExists(socketPath);
                } catch (IOException e) {
                    LOG.log(System.Logger.Level.WARNING, "vhost-user: cannot delete " + socketPath, e);
                }
            }
        }
        memory.close();
    }

    /** One ring's vhost-user state: what the front end set, its descriptors and its kick thread. */
    private final class Vring {
        final int index;
        final Virtqueue queue;
        int num = Virtqueue.MAX_SIZE;
        int base;
        long descUser;
        long availUser;
        long usedUser;
        boolean addressSet;
        boolean started;
        boolean enabled;
        int kickFd = -1;
        /** Guarded by this: device threads signal it while the connection's thread may replace it. */
        private int callFd = -1;
        private int errFd = -1;
        volatile Thread kickThread;
        private int stopFd = -1;
        /** Set before the stop descriptor is signalled: a kick thread that keeps finding requests stops polling. */
        private volatile boolean stopping;
        /** The 1 every interrupt writes, so that signalling allocates nothing. */
        private final MemorySegment one = Linux.eventOne();

        Vring(int index, Virtqueue queue) {
            this.index = index;
            this.queue = queue;
        }

        synchronized void setCall(int fd) {
            Linux.closeQuietly(callFd);
            callFd = fd;
        }

        synchronized void setErr(int fd) {
            Linux.closeQuietly(errFd);
            errFd = fd;
        }

        synchronized void interrupt() {
            if (callFd < 0) {
                return;
            }
            try {
                Linux.signal(callFd, one);
            } catch (PosixException e) {
                LOG.log(System.Logger.Level.WARNING, "vhost-user: queue " + index + ": cannot signal the front end", e);
            }
        }

        synchronized void error() {
            signal(errFd);
        }

        private void signal(int fd) {
            if (fd < 0) {
                return;
            }
            try {
                Linux.signal(fd);
            } catch (PosixException e) {
                LOG.log(System.Logger.Level.WARNING, "vhost-user: queue " + index + ": cannot signal the front end", e);
            }
        }

        void closeKick() {
            Linux.closeQuietly(kickFd);
            kickFd = -1;
        }

        /** Back to the state of a new connection; descriptors closed. */
        void forget() {
            closeKick();
            setCall(-1);
            setErr(-1);
            synchronized (queue) {
                queue.reset();
            }
            num = Virtqueue.MAX_SIZE;
            base = 0;
            addressSet = false;
            started = false;
            enabled = false;
        }

        void startKickThread() {
            try {
                stopFd = Linux.eventfd();
            } catch (PosixException e) {
                throw new java.io.UncheckedIOException(e);
            }
            int kick = kickFd;
            int stop = stopFd;
            stopping = false;
            kickThread = Thread.ofPlatform().daemon().name("vhost-user-kick-q" + index).start(() -> watch(kick, stop));
        }

        void stopKickThread() {
            Thread t = kickThread;
            if (t == null) {
                return;
            }
            stopping = true;
            signal(stopFd);
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            Linux.closeQuietly(stopFd);
            stopFd = -1;
            kickThread = null;
        }

        /** The kick thread: every kick notifies the device, until the stop eventfd is signalled. */
        private void watch(int kick, int stop) {
            try (Arena arena = Arena.ofConfined()) {
                // Kept for the thread's life: a kick costs a poll and a read, and no allocation.
                MemorySegment set = Linux.pollSet(arena, kick, stop);
                MemorySegment counter = arena.allocate(8, 8);
                long pollNanos = 0;
                while (true) {
                    long sleptFrom = System.nanoTime();
                    Linux.poll(set, 2, -1);
                    short kicked = Linux.revents(set, 0);
                    if (Linux.revents(set, 1) != 0) {
                        return;
                    }
                    if ((kicked & (Linux.POLLERR | Linux.POLLHUP | Linux.POLLNVAL)) != 0) {
                        LOG.log(System.Logger.Level.WARNING, "vhost-user: queue " + index
                                + ": the kick descriptor failed; waiting for the ring to be stopped");
                        Linux.poll(new int[] {stop}, new short[1], -1);
                        return;
                    }
                    if ((kicked & Linux.POLLIN) != 0) {
                        Linux.drain(kick, counter);
                        // QEMU's adjustment (aio-posix.c): the wait this kick ended, counted from
                        // where the last poll began, decides the next poll's length.
                        pollNanos = nextPoll(pollNanos, System.nanoTime() - sleptFrom + pollNanos);
                        device.queueNotified(index);
                        while (pollNanos > 0 && !stopping && pollFound(pollNanos)) {
                            int taken = taken();
                            device.queueNotified(index);
                            if (taken() == taken) {
                                // The device takes nothing now (paused, or holding a failed request
                                // under the STOP policy): it kicks itself when it resumes.
                                break;
                            }
                        }
                    }
                }
            } catch (PosixException | RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, "vhost-user: queue " + index + ": kick thread failed", e);
            }
        }

        /** {@return where the device will take its next request from the ring} */
        private int taken() {
            synchronized (queue) {
                return queue.lastAvailIndex();
            }
        }

        /**
         * The next poll's length after a wait of {@code waitedNanos} (the poll and the sleep after it):
         * unchanged when the poll would have found the request, 0 when even the longest poll would
         * not have, else grown.
         */
        private long nextPoll(long pollNanos, long waitedNanos) {
            if (waitedNanos <= pollNanos) {
                return pollNanos;
            }
            if (waitedNanos > pollMaxNanos) {
                return 0;
            }
            return Math.min(pollMaxNanos, pollNanos == 0 ? Math.min(4_000, pollMaxNanos) : pollNanos * 2);
        }

        /**
         * Polls the ring, the guest told not to kick, for up to {@code pollNanos}. When it finds nothing
         * it leaves the guest told to kick again and, as the device's drain does, looks at the ring
         * once more after telling it, so that a request made available in between is not left
         * waiting for a kick that will not come.
         *
         * @return whether the ring has a request for the device
         */
        private boolean pollFound(long pollNanos) {
            long deadline = System.nanoTime() + pollNanos;
            synchronized (queue) {
                queue.setNotification(false);
            }
            boolean found = false;
            while (!found && System.nanoTime() - deadline < 0) {
                synchronized (queue) {
                    found = !queue.isEmpty();
                }
                if (!found) {
                    // A yield, not a pause: on a machine with few CPUs the thread that delivers our
                    // interrupt to the guest (the VMM's) may be waiting for this one.
                    Thread.yield();
                }
            }
            if (found) {
                return true;
            }
            synchronized (queue) {
                queue.setNotification(true);
                return !queue.isEmpty();
            }
        }
    }

    /** The device's transport: queues, negotiated features and eventfd interrupts. */
    private final class Bus implements VirtioDevice.Bus {
        @Override
        public Virtqueue queue(int index) {
            return vrings[index].queue;
        }

        @Override
        public long negotiatedFeatures() {
            return features & ~Protocol.F_PROTOCOL_FEATURES;
        }

        @Override
        public boolean isLive() {
            return channel != null;
        }

        @Override
        public void interruptQueue(int index) {
            vrings[index].interrupt();
        }

        @Override
        public void needsReset(String why) {
            LOG.log(System.Logger.Level.WARNING, "vhost-user: the device needs a reset: " + why);
            for (Vring v : vrings) {
                v.error();
            }
        }

        /**
         * A vhost-user back end tells its front end of a configuration change over the back-end
         * request channel (BACKEND_REQ, CONFIG_CHANGE_MSG), which this back end does not offer yet:
         * the front end sees the new configuration at its next GET_CONFIG. Logged, not signalled.
         */
        @Override
        public void configChanged() {
            LOG.log(System.Logger.Level.DEBUG, "vhost-user: configuration changed; the front end reads it at its next"
                    + " GET_CONFIG (no back-end request channel)");
        }
    }
}
