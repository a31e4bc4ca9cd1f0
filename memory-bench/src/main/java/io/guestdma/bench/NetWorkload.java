package io.guestdma.bench;

import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioHandler;
import io.guestdma.memory.RamView;
import io.guestdma.net.LoopbackNetBackend;
import io.guestdma.net.RxQueue;
import io.guestdma.virtio.VirtioNet;
import io.guestdma.virtio.VirtioNetConfig;
import io.guestdma.virtio.VirtioPci;
import io.guestdma.virtio.Virtqueue;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

/**
 * virtio-net-pci on a {@link LoopbackNetBackend}, driven as a Linux driver with mergeable receive
 * buffers (VERSION_1, MAC, STATUS, MRG_RXBUF) drives it, for the benchmarks. The device processes
 * notifications inline, so an operation is the device's whole cost on the calling thread.
 *
 * <p>{@link #receive()}: the backend's side queues one frame (as its receive thread would), the
 * driver posts the receive buffers one frame needs (single-descriptor buffers of
 * {@code bufferBytes}, as Linux posts mergeable buffers) and notifies the receive queue, and the
 * device writes the frame that was waiting for them. One frame always stays queued, waiting for
 * the next buffers: the queue never goes from empty to not empty, so no operation wakes the
 * device's worker thread, and the device delivers on the driver's thread as QEMU does in its
 * receive handler.
 *
 * <p>{@link #transmitAndReceive()}: the driver posts one receive buffer and one transmit chain (a
 * 12-byte header descriptor, then the frame's), notifies the transmit queue, and the device sends
 * the frame, the loopback queues it, and the device writes it into the receive buffer.
 *
 * <p>Descriptors cycle over {@value #BUFFERS} buffers per queue: at most one frame's buffers are
 * ever outstanding, and the buffers' count is the same whatever their size, so a larger buffer
 * costs no more cache or TLB footprint than the bytes written into it.
 */
final class NetWorkload implements AutoCloseable {
    private static final int QUEUE_SIZE = 256;
    private static final int BUFFERS = 8;
    private static final long RINGS = 0x100000;
    private static final long TX_HEADERS = 0x200000;
    private static final long RX_DATA = 0x1000000;
    private static final long TX_DATA = 0x2000000;

    private final GuestMemory memory;
    private final LoopbackNetBackend backend;
    private final RxQueue queue;
    private final VirtioNet net;
    private final MmioHandler bar;
    private final RamView[] avail = new RamView[2];
    private final RamView[] used = new RamView[2];
    private final int[] availIdx = new int[2];
    private final int[] nextDesc = new int[2];
    private final int frameBytes;
    private final int bufferBytes;
    private final int buffersPerFrame;
    private final MemorySegment frame;
    private final Arena arena = Arena.ofShared();

    /**
     * @param frameBytes  the frames' size, 14 to {@link RxQueue#MAX_FRAME_BYTES}
     * @param bufferBytes each receive buffer's size, header included
     * @param copyPath    whether the device moves frames through a heap buffer instead of mapping
     * @param loopback    whether the backend loops transmitted frames back (for
     *                    {@link #transmitAndReceive()}); otherwise frames come from {@link #receive()}
     */
    NetWorkload(int frameBytes, int bufferBytes, boolean copyPath, boolean loopback) {
        this.frameBytes = frameBytes;
        this.bufferBytes = bufferBytes;
        this.buffersPerFrame = (frameBytes + VirtioNet.HEADER_BYTES + bufferBytes - 1) / bufferBytes;
        if (buffersPerFrame * BUFFERS > QUEUE_SIZE) {
            throw new IllegalArgumentException(frameBytes + "-byte frames need too many " + bufferBytes + "-byte buffers");
        }
        memory = GuestMemory.ofRam(64L << 20);
        queue = new RxQueue();
        try {
            backend = LoopbackNetBackend.create(queue, loopback, null);
        } catch (IOException e) {
            throw new UncheckedIOException(e); // no capture file: cannot happen
        }
        DeviceAddressSpace dev = memory.deviceSpace("virtio-net");
        net = new VirtioNet(dev, backend, new byte[] {0x52, 0x54, 0, 0x12, 0x34, 0x56},
                VirtioNetConfig.defaults().withQueueSizes(QUEUE_SIZE, QUEUE_SIZE).withInlineNotify(true)
                        .withCopyPath(copyPath));
        VirtioPci pci = new VirtioPci(net, dev, level -> { }, 0);
        bar = pci.modernBar();
        pci.commandWritten(0x6);
        common(0x14, 1, 3);
        common(0x00, 4, 0);
        common(0x08, 4, 0);
        common(0x0c, 4, VirtioNet.F_MAC | VirtioNet.F_STATUS | VirtioNet.F_MRG_RXBUF);
        common(0x08, 4, 1);
        common(0x0c, 4, VirtioPci.F_VERSION_1 >>> 32);
        common(0x14, 1, 0xb);
        for (int q = 0; q < 2; q++) {
            DriverRing ring = DriverRing.enable(bar, memory, q, QUEUE_SIZE, RINGS + 0x10000L * q);
            avail[q] = ring.avail();
            used[q] = ring.used();
        }
        long rxTable = RINGS;
        for (int d = 0; d < QUEUE_SIZE; d++) {
            descriptor(rxTable, d, RX_DATA + (long) (d % (BUFFERS * buffersPerFrame)) * bufferBytes, bufferBytes,
                    Virtqueue.DESC_F_WRITE, 0);
        }
        long txTable = RINGS + 0x10000;
        for (int d = 0; d < QUEUE_SIZE; d += 2) {
            int slot = (d / 2) % BUFFERS;
            descriptor(txTable, d, TX_HEADERS + 16L * slot, VirtioNet.HEADER_BYTES, Virtqueue.DESC_F_NEXT, d + 1);
            descriptor(txTable, d + 1, TX_DATA + 0x10000L * slot, frameBytes, 0, 0);
        }
        common(0x14, 1, 0xf);
        frame = arena.allocate(frameBytes);
        byte[] bytes = new byte[frameBytes];
        new Random(14).nextBytes(bytes);
        frame.copyFrom(MemorySegment.ofArray(bytes));
        for (int slot = 0; slot < BUFFERS; slot++) {
            memory.write(TX_DATA + 0x10000L * slot, bytes, 0, frameBytes);
        }
        if (!loopback && !queue.offer(frame)) {
            throw new IllegalStateException("the backend's queue refused the first frame");
        }
    }

    private void common(int offset, int size, long value) {
        bar.write(VirtioPci.COMMON + offset, size, value);
    }

    private void descriptor(long table, int index, long address, int length, int flags, int next) {
        DriverRing.descriptor(memory, table, index, address, length, flags, next);
    }

    /**
     * One frame received: queued by the backend's side, buffers posted, the receive queue notified.
     *
     * @return the receive queue's used index, so the work cannot be optimised away
     * @throws IllegalStateException if the device did not use the buffers (it broke or dropped)
     */
    int receive() {
        if (!queue.offer(frame)) {
            throw new IllegalStateException("the backend's queue is full: the device stopped taking frames");
        }
        int idx = post(VirtioNet.RX, buffersPerFrame);
        bar.write(VirtioPci.NOTIFY + 4L * VirtioNet.RX, 2, VirtioNet.RX);
        return awaitUsed(VirtioNet.RX, idx);
    }

    /**
     * One frame transmitted, looped back and received.
     *
     * @return the receive queue's used index
     * @throws IllegalStateException if the device did not use the chains
     */
    int transmitAndReceive() {
        int rxIdx = post(VirtioNet.RX, buffersPerFrame);
        int txIdx = post(VirtioNet.TX, 1);
        bar.write(VirtioPci.NOTIFY + 4L * VirtioNet.TX, 2, VirtioNet.TX);
        awaitUsed(VirtioNet.TX, txIdx);
        return awaitUsed(VirtioNet.RX, rxIdx);
    }

    /** Makes {@code count} chains available (the next descriptors in turn); returns the new avail index. */
    private int post(int q, int count) {
        RamView a = avail[q];
        int idx = availIdx[q];
        int step = q == VirtioNet.TX ? 2 : 1;
        for (int i = 0; i < count; i++) {
            a.setShort(4 + 2L * ((idx + i) % QUEUE_SIZE), (short) nextDesc[q]);
            nextDesc[q] = (nextDesc[q] + step) % QUEUE_SIZE;
        }
        idx = (idx + count) & 0xffff;
        availIdx[q] = idx;
        a.setShortRelease(2, (short) idx);
        return idx;
    }

    private int awaitUsed(int q, int idx) {
        int usedIdx = Short.toUnsignedInt(used[q].getShortAcquire(2));
        if (usedIdx != idx) {
            throw new IllegalStateException("virtio-net queue " + q + " used up to " + usedIdx + " of " + idx
                    + " (rx dropped " + net.rxDropped() + ", tx dropped " + net.txDropped() + ")");
        }
        return usedIdx;
    }

    /** {@return the guest memory, for checks} */
    GuestMemory memory() {
        return memory;
    }

    /** {@return a copy of the frame every operation sends or receives} */
    byte[] frameBytes() {
        return frame.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
    }

    /**
     * Gathers what the device wrote for the frame whose last buffer is used-ring entry
     * {@code usedIdx - 1}: the used entries' buffers, each to its used length.
     *
     * @param usedIdx a used index {@link #receive()} or {@link #transmitAndReceive()} returned
     * @return the header and the frame as the guest sees them
     */
    byte[] received(int usedIdx) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        long usedRing = RINGS + 0x8000;
        for (int i = usedIdx - buffersPerFrame; i < usedIdx; i++) {
            long element = usedRing + 4 + 8L * Math.floorMod(i, QUEUE_SIZE);
            int id = memory.readInt(element);
            int length = memory.readInt(element + 4);
            byte[] b = new byte[length];
            memory.read(memory.readLong(RINGS + 16L * id), b, 0, length);
            out.writeBytes(b);
        }
        return out.toByteArray();
    }

    /** {@return the device, for its counters} */
    VirtioNet device() {
        return net;
    }

    @Override
    public void close() {
        net.close();
        backend.close();
        memory.close();
        arena.close();
    }
}
