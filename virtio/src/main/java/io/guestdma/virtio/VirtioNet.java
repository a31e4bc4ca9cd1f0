package io.guestdma.virtio;

import io.guestdma.memory.AccessResult;
import io.guestdma.memory.AddressSpace;
import io.guestdma.memory.DmaAccessException;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaPacket;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.SgList;
import io.guestdma.net.NetBackend;
import io.guestdma.net.RxQueue;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * virtio-net (virtio 1.x, section 5.1) over any {@link NetBackend}, with the feature set and
 * receive semantics of QEMU 7.2's device on a backend without a vnet header (its socket and
 * stream netdevs): VIRTIO_NET_F_MAC, STATUS, MRG_RXBUF, indirect descriptors, EVENT_IDX and
 * RING_RESET. Queues: 0 receive, 1 transmit, 2 control (64 entries, as QEMU has it whether or not
 * the control features are offered).
 *
 * <p><b>Receive.</b> Frames wait in the backend's {@link RxQueue} until the driver has posted
 * enough buffers for the whole frame and its 12-byte {@code virtio_net_hdr}: with MRG_RXBUF, as
 * many receive chains as the frame needs (their number goes into the first header's
 * {@code num_buffers}); without it, one chain, and a frame larger than the chain is dropped
 * (counted) and the chain left for the next frame, as QEMU does. The chains are mapped and written
 * as one {@link DmaPacket}: every byte of the frame reaches the guest, or none does, and the used
 * ring learns of the chains only afterwards. While the driver posts too few buffers the frame
 * waits, the queue fills, and the backend holds its peer back or drops what it cannot hold
 * (counted by the backend); a frame that even a ring full of the driver's buffers cannot hold is
 * dropped (counted) rather than left to block the queue for ever. The header is all zeroes (no
 * checksum or GSO offload is offered), bytes 10-11 being {@code num_buffers} with MRG_RXBUF and
 * left as the driver wrote them without it (QEMU leaves them too).
 *
 * <p><b>Transmit.</b> The readable buffers after the 12-byte header are mapped as one packet and
 * handed to {@link NetBackend#transmit}; the chain is then used with length 0. A chain whose
 * header is shorter than 12 bytes breaks the device (DEVICE_NEEDS_RESET), as in QEMU; a frame
 * that is empty, longer than {@link RxQueue#MAX_FRAME_BYTES}, or whose buffers cannot be read (an
 * MMIO handler failed) is dropped and counted in {@link #txDropped()}, and its chain is used.
 *
 * <p><b>Link.</b> The status field follows the backend's link ({@link NetBackend#onLinkChange}):
 * a change raises a configuration interrupt.
 *
 * <p><b>Copy path.</b> With {@link VirtioNetConfig#copyPath()} frames go through a heap buffer
 * instead: received frames are copied out of the backend's queue into it and then written into
 * the guest's buffers through the address space's copy path; transmitted ones are read into it
 * and handed to the backend from there. The guest sees the same bytes; the mode exists to measure
 * what mapping saves.
 *
 * <p><b>Threads.</b> One worker thread per device takes frames from the backend and, unless the
 * device processes notifications inline ({@link VirtioNetConfig#inlineNotify()}), runs the
 * transmit queue. Inline, a notify of the receive or transmit queue also delivers the frames that
 * wait for buffers, so that frames a loopback transmit produced are in the guest's buffers when
 * the notify returns (QEMU's receive handler flushes its queued packets before returning, and its
 * transmit hands each frame to the peer's receive before returning).
 * Thread-safe; {@link #close()} stops the worker (the backend is the caller's).
 */
public final class VirtioNet implements VirtioDevice, AutoCloseable {
    /** The virtio device type of a network card. */
    public static final int DEVICE_ID = 1;
    /** Feature bit: the configuration's mac field is valid. */
    public static final long F_MAC = 1L << 5;
    /** Legacy only: the host takes packets of any GSO type. */
    private static final long F_LEGACY_GSO = 1L << 6;
    /** CSUM, HOST_TSO4, HOST_TSO6, HOST_ECN: the rest of QEMU's bad-feature set for legacy drivers. */
    private static final long LEGACY_SAFE_OFFLOADS = 1L | 1L << 11 | 1L << 12 | 1L << 13;
    /** Feature bit: a received frame may span several receive chains. */
    public static final long F_MRG_RXBUF = 1L << 15;
    /** Feature bit: the configuration's status field is valid. */
    public static final long F_STATUS = 1L << 16;
    /** The status field's link-up bit. */
    public static final int S_LINK_UP = 1;
    /** Bytes of the virtio_net_hdr on both paths with VIRTIO_F_VERSION_1. */
    public static final int HEADER_BYTES = 12;
    /** Bytes of the configuration space: mac and status (QEMU's size for these features). */
    public static final int CONFIG_SIZE = 8;
    /** Queue indexes. */
    public static final int RX = 0;
    /** The transmit queue. */
    public static final int TX = 1;
    /** The control queue. */
    public static final int CTRL = 2;
    /** The control queue's size (QEMU's). */
    public static final int CTRL_QUEUE_SIZE = 64;
    /** The answer to every control command: no control feature is offered. */
    public static final int CTRL_ERR = 1;

    /** The part of the header QEMU writes without a vnet-header backend: flags to gso_type and csum fields. */
    private static final int BASE_HEADER_BYTES = 10;
    private static final ValueLayout.OfShort NUM_BUFFERS = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final System.Logger LOG = System.getLogger(VirtioNet.class.getName());

    private final AddressSpace memory;
    private final NetBackend backend;
    private final RxQueue rx;
    private final byte[] defaultMac;
    private final byte[] mac = new byte[6];
    private final int rxQueueSize;
    private final int txQueueSize;
    private final boolean inlineNotify;
    private final long features = F_MAC | F_MRG_RXBUF | F_STATUS | VirtioPci.F_INDIRECT_DESC | VirtioPci.F_EVENT_IDX
            | VirtioPci.F_VERSION_1 | VirtioPci.F_RING_RESET;

    private final ReentrantLock runLock = new ReentrantLock();
    private final Thread worker;
    private final AtomicBoolean kicked = new AtomicBoolean();
    private final AtomicBoolean txKicked = new AtomicBoolean();
    private final AtomicBoolean linkKicked = new AtomicBoolean();
    private volatile boolean closed;
    /** The machine is stopped: no frame moves (see {@link #pause()}). */
    private volatile boolean paused;
    private volatile boolean linkUp;
    private Bus bus;

    // guarded by runLock: the receive and transmit paths' reusable state
    private final DmaPacket rxPacket;
    private final DmaPacket txPacket;
    private final DescriptorChain[] rxChains;
    private final int[] rxLengths;
    private final SgList rxSg = new SgList(64);
    private final DescriptorChain txChain = new DescriptorChain();
    private final Virtqueue.ChainProcessor transmitter = new Transmitter();
    private final SgList txSg = new SgList(16);
    private final DescriptorChain ctrlChain = new DescriptorChain();
    /** The receive header as written: zeroes (no offload), then num_buffers. */
    private final MemorySegment rxHeader = MemorySegment.ofArray(new byte[HEADER_BYTES]);
    private final MemorySegment ctrlStatus = MemorySegment.ofArray(new byte[] {CTRL_ERR});
    /** The copy path's heap buffer (a header and a frame), or null when frames are mapped. */
    private final byte[] copyBuffer;
    private final IoVector copyFrame = new IoVector(1);

    private final AtomicLong rxFrames = new AtomicLong();
    private final AtomicLong rxDropped = new AtomicLong();
    private final AtomicLong txFrames = new AtomicLong();
    private final AtomicLong txDropped = new AtomicLong();

    /**
     * Creates the device, zero-copy, and starts its worker thread; it takes the backend's received
     * frames once the driver is ready.
     *
     * @param memory       the bus master's view of guest memory (the same the transport is given)
     * @param backend      where frames go and come from; its link-change listener is set here
     * @param mac          the MAC address, 6 bytes
     * @param rxQueueSize  the receive queue's size after reset, a power of two up to
     *                     {@value Virtqueue#MAX_SIZE}
     * @param txQueueSize  the transmit queue's size after reset, likewise
     * @param inlineNotify whether a queue notification is processed on the notifying thread before
     *                     the notify returns ({@link VirtioNetConfig#inlineNotify()})
     * @throws IllegalArgumentException if mac is not 6 bytes or a queue size is invalid
     * @throws NullPointerException     if an argument is null
     */
    public VirtioNet(AddressSpace memory, NetBackend backend, byte[] mac, int rxQueueSize, int txQueueSize,
                     boolean inlineNotify) {
        this(memory, backend, mac, new VirtioNetConfig(rxQueueSize, txQueueSize, inlineNotify, false));
    }

    /**
     * Creates the device and starts its worker thread; it takes the backend's received frames
     * once the driver is ready.
     *
     * @param memory  the bus master's view of guest memory (the same the transport is given)
     * @param backend where frames go and come from; its link-change listener is set here
     * @param mac     the MAC address, 6 bytes
     * @param config  queue sizes, where notifications are processed, zero copy or copy path
     * @throws IllegalArgumentException if mac is not 6 bytes
     * @throws NullPointerException     if an argument is null
     */
    public VirtioNet(AddressSpace memory, NetBackend backend, byte[] mac, VirtioNetConfig config) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.backend = Objects.requireNonNull(backend, "backend");
        if (mac.length != 6) {
            throw new IllegalArgumentException("a MAC address has 6 bytes, not " + mac.length);
        }
        this.defaultMac = mac.clone();
        System.arraycopy(mac, 0, this.mac, 0, 6);
        this.rxQueueSize = config.rxQueueSize();
        this.txQueueSize = config.txQueueSize();
        this.inlineNotify = config.inlineNotify();
        // header and frame side by side, as the copy path moves them in one piece
        this.copyBuffer = config.copyPath() ? new byte[HEADER_BYTES + RxQueue.MAX_FRAME_BYTES] : null;
        this.rx = backend.rxQueue();
        this.rxPacket = new DmaPacket(memory);
        this.txPacket = new DmaPacket(memory);
        this.rxChains = new DescriptorChain[Virtqueue.MAX_SIZE];
        this.rxLengths = new int[Virtqueue.MAX_SIZE];
        this.linkUp = backend.linkUp();
        this.worker = Thread.ofPlatform().daemon().name("virtio-net").unstarted(this::work);
        rx.onFrame(this::frameArrived);
        backend.onLinkChange(this::linkChanged);
        worker.start();
    }

    @Override
    public int deviceId() {
        return DEVICE_ID;
    }

    @Override
    public long features() {
        return features;
    }

    /** QEMU offers the deprecated VIRTIO_NET_F_GSO to legacy drivers. */
    @Override
    public long legacyOnlyFeatures() {
        return F_LEGACY_GSO;
    }

    /** QEMU's virtio_net_bad_features: MAC, and the offloads this device does not offer. */
    @Override
    public long legacyBadFeatures() {
        return F_MAC | LEGACY_SAFE_OFFLOADS;
    }

    @Override
    public int queueCount() {
        return 3;
    }

    /** {@return the receive queue's size after reset} */
    @Override
    public int queueSize() {
        return rxQueueSize;
    }

    @Override
    public int queueSize(int index) {
        return switch (index) {
            case RX -> rxQueueSize;
            case TX -> txQueueSize;
            default -> CTRL_QUEUE_SIZE;
        };
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    /** {@return the MAC address the configuration shows} */
    public synchronized byte[] mac() {
        return mac.clone();
    }

    /** {@return whether the status field says the link is up} */
    public boolean linkUp() {
        return linkUp;
    }

    @Override
    public synchronized int configRead(int offset, int size) {
        int status = linkUp ? S_LINK_UP : 0;
        int value = 0;
        for (int i = 0; i < size && offset + i < CONFIG_SIZE; i++) {
            int at = offset + i;
            int b = at < 6 ? mac[at] & 0xff : (status >>> (8 * (at - 6))) & 0xff;
            value |= b << (8 * i);
        }
        return value;
    }

    /**
     * Writes the configuration: as in QEMU, only the mac field, and only while the driver has not
     * negotiated VIRTIO_F_VERSION_1 (a modern driver sets the address through the control queue).
     */
    @Override
    public synchronized void configWrite(int offset, int size, int value) {
        if (bus == null || (bus.negotiatedFeatures() & VirtioPci.F_VERSION_1) != 0) {
            return;
        }
        for (int i = 0; i < size && offset + i < 6; i++) {
            mac[offset + i] = (byte) (value >>> (8 * i));
        }
    }

    @Override
    public void attach(Bus transport) {
        if (bus != null) {
            throw new IllegalStateException("the device is attached already");
        }
        bus = Objects.requireNonNull(transport, "transport");
    }

    @Override
    public void statusChanged(int status) {
        if ((status & VirtioPci.STATUS_DRIVER_OK) != 0) {
            kick(); // frames may be waiting for a ready driver
        }
    }

    @Override
    public void queueNotified(int index) {
        if (paused) {
            // remembered: unpause() looks at both queues
            txKicked.set(true);
            return;
        }
        if (index == RX && !inlineNotify) {
            kick(); // new receive buffers: waiting frames may fit now
            return;
        }
        if (inlineNotify) {
            runLock.lock();
            try {
                if (index == TX) {
                    drainTx();
                } else if (index == CTRL) {
                    drainCtrl();
                }
                // New receive buffers, or frames the transmit looped back: waiting frames go in now.
                if (index != CTRL) {
                    drainRx();
                }
            } catch (RuntimeException e) {
                failed(e);
            } finally {
                runLock.unlock();
            }
            return;
        }
        if (index == TX) {
            txKicked.set(true);
        } else if (index == CTRL) {
            txKicked.set(true);
        }
        kick();
    }

    /** Waits for the work in progress; frames waiting in the backend stay there. */
    @Override
    public void reset() {
        runLock.lock();
        try {
            txKicked.set(false);
            synchronized (this) {
                System.arraycopy(defaultMac, 0, mac, 0, 6);
            }
        } finally {
            runLock.unlock();
        }
    }

    @Override
    public void queueReset(int index) {
        runLock.lock();
        runLock.unlock(); // the queue's work in progress has finished; nothing else is held per queue
    }

    @Override
    public boolean runsOnDeviceThread() {
        return Thread.currentThread() == worker || runLock.isHeldByCurrentThread();
    }

    /**
     * Writes the MAC address the configuration shows and the link status the guest last saw.
     * Frames move whole while the device works, so an idle device has nothing in flight: its
     * receive and transmit progress is the queues' indices, which the transport saves.
     *
     * @throws IllegalStateException if the worker is moving frames
     */
    @Override
    public void saveState(io.guestdma.migration.StateWriter out) {
        if (!isIdle()) {
            throw new IllegalStateException("virtio-net is moving frames: stop it before saving");
        }
        synchronized (this) {
            out.bytes(mac.clone());
        }
        out.bool(linkUp);
    }

    /**
     * Reads what {@link #saveState} wrote. The link status stays the destination backend's own;
     * if it differs from what the guest saw on the source, the guest gets a configuration change
     * interrupt, as QEMU's virtio-net tells a migrated guest about its new link.
     *
     * @throws io.guestdma.migration.MigrationFormatException if the MAC is not 6 bytes
     */
    @Override
    public void loadState(io.guestdma.migration.StateReader in) throws io.guestdma.migration.MigrationFormatException {
        byte[] saved = in.bytes("virtio-net.mac", 6);
        if (saved.length != 6) {
            throw in.failure("virtio-net.mac", saved.length + " bytes, not 6");
        }
        boolean sawLinkUp = in.bool("virtio-net.linkUp");
        synchronized (this) {
            System.arraycopy(saved, 0, mac, 0, 6);
        }
        if (sawLinkUp != linkUp) {
            linkKicked.set(true);
            kick();
        }
    }

    /** {@return frames delivered to the guest} */
    public long rxFrames() {
        return rxFrames.get();
    }

    /**
     * {@return received frames the device dropped: larger than a receive chain without
     * MRG_RXBUF, larger than a whole ring of buffers, or whose buffers could not be written}
     */
    public long rxDropped() {
        return rxDropped.get();
    }

    /** {@return frames the guest transmitted that the backend sent} */
    public long txFrames() {
        return txFrames.get();
    }

    /** {@return frames the guest transmitted that were dropped here or by the backend} */
    public long txDropped() {
        return txDropped.get();
    }

    /**
     * Stops moving frames after the one in progress; returns once the device is still. Frames
     * from the backend wait in its bounded queue (then drop, counted), as QEMU's netdev queues
     * them while the VM is stopped; a link change waits too.
     */
    @Override
    public void pause() {
        paused = true;
        runLock.lock();
        runLock.unlock();
    }

    /** Moves frames again: the transmit queue, then waiting frames, then a pending link change. */
    @Override
    public void unpause() {
        paused = false;
        txKicked.set(true);
        kick();
    }

    /** {@return whether the worker has nothing to do: no kick pending and no work running} */
    public boolean isIdle() {
        return !kicked.get() && !runLock.isLocked();
    }

    /** Stops the worker thread (work in progress finishes first). Idempotent. */
    @Override
    public void close() {
        closed = true;
        LockSupport.unpark(worker);
        try {
            worker.join(30_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * The backend queued a frame into an empty queue. A frame this very thread queued while it
     * runs the device (a loopback of a transmit) needs no wake-up: the drainRx that follows every
     * drainTx under runLock delivers it, and a wake-up would cost a futex call per frame.
     */
    private void frameArrived() {
        if (!runLock.isHeldByCurrentThread()) {
            kick();
        }
    }

    private void kick() {
        if (kicked.compareAndSet(false, true)) {
            LockSupport.unpark(worker);
        }
    }

    /**
     * The backend's thread reports the link: the configuration interrupt is raised from the
     * worker, so that every interrupt of the device comes from a thread of its own (the backend's
     * may end with the connection).
     */
    private void linkChanged(boolean up) {
        if (linkUp != up) {
            linkUp = up;
            linkKicked.set(true);
            kick();
        }
    }

    private void work() {
        while (!closed) {
            if (!kicked.get()) {
                LockSupport.park(this);
                continue;
            }
            runLock.lock();
            try {
                // The kick is taken under runLock: taken before it, isIdle() could see neither the
                // kick nor the lock and call a worker about to run idle.
                kicked.set(false);
                if (paused) {
                    continue; // the flags stay set: unpause() kicks again
                }
                if (linkKicked.getAndSet(false) && bus != null) {
                    bus.configChanged();
                }
                if (txKicked.getAndSet(false)) {
                    drainTx();
                    drainCtrl();
                }
                drainRx();
            } catch (RuntimeException e) {
                failed(e);
            } finally {
                runLock.unlock();
            }
        }
    }

    /** A device bug must not end the worker silently: the device breaks, visibly. */
    private void failed(RuntimeException e) {
        LOG.log(System.Logger.Level.ERROR, "virtio-net failed", e);
        bus.needsReset("internal error: " + e);
    }

    // ------------------------------------------------------------------ receive

    /** Delivers waiting frames while the driver has buffers for them. Under runLock. */
    private void drainRx() {
        while (rx.headLength() > 0 && bus.isLive()) {
            if (!deliverHead()) {
                return;
            }
        }
    }

    /**
     * Delivers or drops the frame at the head of the backend's queue; false if it must wait for
     * buffers (or the queue is not usable).
     */
    private boolean deliverHead() {
        int length = rx.headLength();
        Virtqueue q = bus.queue(RX);
        boolean mergeable = (bus.negotiatedFeatures() & F_MRG_RXBUF) != 0;
        int header = headerBytes();
        int taken;
        String broken = null;
        synchronized (q) {
            if (!q.isEnabled()) {
                return false;
            }
            taken = take(q, mergeable, header, length);
            if (taken < 0) {
                // QEMU's virtio_net_has_buffers: ask for a notification, then look once more
                q.setNotification(true);
                taken = take(q, mergeable, header, length);
            }
            if (taken == -2) {
                broken = q.error();
            } else if (taken >= 0) {
                q.setNotification(false);
            }
        }
        if (broken != null) {
            bus.needsReset("virtio-net receive queue: " + broken);
            return false;
        }
        if (taken < 0) {
            return false;
        }
        for (int i = 0; i < taken; i++) {
            if (rxChains[i].writable().count() == 0) {
                synchronized (q) {
                    q.unpop(taken);
                }
                bus.needsReset("virtio-net receive queue contains no in buffers");
                return false;
            }
        }
        if (dataCapacity(taken, header) < length) {
            // no MRG_RXBUF and the chain is too small, or a full ring of buffers is: drop the
            // frame, keep the buffers for the next one
            synchronized (q) {
                q.unpop(taken);
            }
            rx.removeHead();
            rxDropped.incrementAndGet();
            return true;
        }
        return write(q, length, taken, mergeable, header);
    }

    /** The virtio_net_hdr's size: 12 bytes with VERSION_1 or MRG_RXBUF, else the legacy 10. */
    private int headerBytes() {
        return (bus.negotiatedFeatures() & (VirtioPci.F_VERSION_1 | F_MRG_RXBUF)) != 0 ? HEADER_BYTES
                : BASE_HEADER_BYTES;
    }

    /** Frame bytes the first {@code taken} chains hold after the header (which goes in the first). */
    private long dataCapacity(int taken, int header) {
        long bytes = 0;
        for (int i = 0; i < taken; i++) {
            long size = rxChains[i].writable().size();
            bytes += i == 0 ? Math.max(0, size - header) : size;
        }
        return bytes;
    }

    /**
     * Takes receive chains until they hold a frame of {@code length} bytes after the header (one
     * chain without MRG_RXBUF). Under the queue's lock.
     *
     * @return chains taken; -1 if there are not enough (none is kept), -2 if the ring is broken
     */
    private int take(Virtqueue q, boolean mergeable, int header, int length) {
        int taken = 0;
        long bytes = 0;
        while (taken == 0 || (mergeable && bytes < length)) {
            if (taken == q.size()) {
                return taken; // a whole ring's worth and still short: the caller drops the frame
            }
            if (rxChains[taken] == null) {
                rxChains[taken] = new DescriptorChain();
            }
            Virtqueue.Pop pop = q.pop(rxChains[taken]);
            if (pop != Virtqueue.Pop.CHAIN) {
                q.unpop(taken);
                return pop == Virtqueue.Pop.BROKEN ? -2 : -1;
            }
            long size = rxChains[taken].writable().size();
            bytes += taken == 0 ? Math.max(0, size - header) : size;
            taken++;
        }
        return taken;
    }

    /** Writes the frame into the chains taken, as one packet, and uses them. */
    private boolean write(Virtqueue q, int length, int taken, boolean mergeable, int header) {
        rxSg.reset();
        int headerPart = 0;
        int left = length;
        int used = 0;
        for (int i = 0; i < taken && (i == 0 || left > 0); i++) {
            SgList in = rxChains[i].writable();
            long size = in.size();
            int data;
            if (i == 0) {
                headerPart = (int) Math.min(size, header);
                data = (int) Math.min(size - headerPart, left);
                if (mergeable) {
                    slice(in, 0, headerPart + data);
                } else {
                    // bytes 10-11 are not written without MRG_RXBUF: leave them out of the packet
                    slice(in, 0, Math.min(headerPart, BASE_HEADER_BYTES));
                    slice(in, headerPart, data);
                    headerPart = Math.min(headerPart, BASE_HEADER_BYTES);
                }
                rxLengths[i] = header + data; // QEMU counts the header even in a chain too small for it
            } else {
                data = (int) Math.min(size, left);
                slice(in, 0, data);
                rxLengths[i] = data;
            }
            left -= data;
            used = i + 1;
        }
        AccessResult result;
        if (copyBuffer != null) {
            result = writeThroughHeap(length, used, mergeable, headerPart);
        } else {
            IoVector iov;
            try {
                iov = rxPacket.map(rxSg, DmaDirection.FROM_DEVICE);
            } catch (DmaAccessException e) {
                synchronized (q) {
                    q.unpop(taken);
                }
                rx.removeHead();
                rxDropped.incrementAndGet();
                bus.needsReset("virtio-net receive buffers cannot be written: " + e.getMessage());
                return false;
            }
            try {
                // Without MRG_RXBUF headerPart ends before num_buffers. The offset-taking copy:
                // a slice of the header would be allocated per frame.
                rxHeader.set(NUM_BUFFERS, BASE_HEADER_BYTES, (short) used);
                iov.copyFrom(0, rxHeader, 0, headerPart);
                rx.copyHead(0, iov, headerPart, length);
            } finally {
                result = rxPacket.complete(rxSg.size());
            }
        }
        rx.removeHead();
        if (result.failed()) {
            synchronized (q) {
                q.unpop(taken);
            }
            rxDropped.incrementAndGet();
            bus.needsReset("virtio-net receive buffers cannot be written (a device's handler failed)");
            return false;
        }
        boolean notify;
        synchronized (q) {
            if (taken > used) {
                q.unpop(taken - used);
            }
            for (int i = 0; i < used; i++) {
                q.push(rxChains[i].head(), rxLengths[i]);
            }
            notify = q.shouldNotify();
        }
        rxFrames.incrementAndGet();
        if (notify) {
            bus.interruptQueue(RX);
        }
        return true;
    }

    /**
     * The copy path's receive: the header and the frame are put together in the heap buffer, then
     * written over rxSg range by range through the address space's copy path (as the guest sees
     * it, the same bytes as the mapped path writes).
     */
    private AccessResult writeThroughHeap(int length, int used, boolean mergeable, int headerPart) {
        java.util.Arrays.fill(copyBuffer, 0, Math.min(headerPart, BASE_HEADER_BYTES), (byte) 0);
        if (mergeable && headerPart > BASE_HEADER_BYTES) {
            copyBuffer[BASE_HEADER_BYTES] = (byte) used;
            if (headerPart > BASE_HEADER_BYTES + 1) {
                copyBuffer[BASE_HEADER_BYTES + 1] = (byte) (used >>> 8);
            }
        }
        rx.copyHead(0, MemorySegment.ofArray(copyBuffer).asSlice(headerPart, length));
        AccessResult result = AccessResult.OK;
        int at = 0;
        for (int i = 0; i < rxSg.count(); i++) {
            int n = (int) rxSg.length(i);
            result = result.and(memory.write(rxSg.address(i), copyBuffer, at, n));
            at += n;
        }
        return result;
    }

    /** Appends bytes {@code [from, from + length)} of {@code list} to rxSg. */
    private void slice(SgList list, long from, long length) {
        rxSg.addPart(list, from, length);
    }

    // ------------------------------------------------------------------ transmit

    /** Sends what the driver made available on the transmit queue. Under runLock. */
    private void drainTx() {
        bus.queue(TX).drain(txChain, transmitter);
    }

    /** The transmit queue's step: one frame per chain. Under runLock, as drainTx. */
    private final class Transmitter implements Virtqueue.ChainProcessor {
        @Override
        public boolean stopBeforeNext() {
            return !bus.isLive();
        }

        @Override
        public boolean process(DescriptorChain chain) {
            return transmit(bus.queue(TX));
        }

        @Override
        public void ringBroken(String why) {
            bus.needsReset("virtio-net transmit queue: " + why);
        }
    }

    /** Sends the frame in txChain and uses the chain; false if the device broke. */
    private boolean transmit(Virtqueue q) {
        SgList out = txChain.readable();
        if (out.count() < 1) {
            synchronized (q) {
                q.detach();
            }
            bus.needsReset("virtio-net header not in first element");
            return false;
        }
        int header = headerBytes();
        if (out.size() < header) {
            synchronized (q) {
                q.detach();
            }
            bus.needsReset("virtio-net header incorrect");
            return false;
        }
        long length = out.size() - header;
        if (length < 1 || length > RxQueue.MAX_FRAME_BYTES) {
            txDropped.incrementAndGet();
        } else {
            txSg.reset();
            txSg.addPart(out, header, length);
            send();
        }
        boolean notify;
        synchronized (q) {
            q.push(txChain.head(), 0);
            notify = q.shouldNotify();
        }
        if (notify) {
            bus.interruptQueue(TX);
        }
        return true;
    }

    private void send() {
        IoVector frame;
        if (copyBuffer != null) {
            frame = readThroughHeap();
            if (frame == null) {
                txDropped.incrementAndGet();
                return;
            }
        } else {
            try {
                frame = txPacket.map(txSg, DmaDirection.TO_DEVICE);
            } catch (DmaAccessException e) {
                txDropped.incrementAndGet();
                return;
            }
        }
        try {
            if (backend.transmit(frame)) {
                txFrames.incrementAndGet();
            } else {
                txDropped.incrementAndGet();
            }
        } catch (IOException | IllegalArgumentException e) {
            txDropped.incrementAndGet(); // a closed backend: the frame is lost as on a cut cable
        } finally {
            if (copyBuffer == null) {
                txPacket.complete(0);
            }
        }
    }

    /** The copy path's transmit: txSg gathered into the heap buffer; null if a handler failed. */
    private IoVector readThroughHeap() {
        int at = 0;
        for (int i = 0; i < txSg.count(); i++) {
            int n = (int) txSg.length(i);
            if (memory.read(txSg.address(i), copyBuffer, at, n).failed()) {
                return null;
            }
            at += n;
        }
        copyFrame.reset();
        return copyFrame.add(MemorySegment.ofArray(copyBuffer).asSlice(0, at));
    }

    // ------------------------------------------------------------------ control

    /** Answers every control command with VIRTIO_NET_ERR: no control feature is offered. Under runLock. */
    private void drainCtrl() {
        Virtqueue q = bus.queue(CTRL);
        while (bus.isLive()) {
            Virtqueue.Pop pop;
            String why;
            synchronized (q) {
                pop = q.pop(ctrlChain);
                why = q.error();
            }
            if (pop == Virtqueue.Pop.EMPTY && why == null) {
                return;
            }
            if (pop != Virtqueue.Pop.CHAIN) {
                bus.needsReset("virtio-net control queue: " + why);
                return;
            }
            if (ctrlChain.readable().size() < 2 || ctrlChain.writable().size() < 1) {
                synchronized (q) {
                    q.detach();
                }
                bus.needsReset("virtio-net ctrl missing headers");
                return;
            }
            memory.write(ctrlChain.writable().address(0), ctrlStatus);
            boolean notify;
            synchronized (q) {
                q.push(ctrlChain.head(), 1);
                notify = q.shouldNotify();
            }
            if (notify) {
                bus.interruptQueue(CTRL);
            }
        }
    }
}
