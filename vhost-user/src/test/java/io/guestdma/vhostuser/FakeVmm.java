package io.guestdma.vhostuser;

import io.guestdma.memory.RamBacking;
import io.guestdma.memory.posix.PosixException;
import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioPci;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.file.Path;

/**
 * A VMM without a guest, for benchmarks: connects to a vhost-user-blk back end, shares a memfd as
 * guest RAM, starts ring 0 with kick and call eventfds as QEMU does, lays out a fixed set of
 * virtio-blk requests in the RAM, and then submits them all, kicks and waits for their completion
 * in batches. A batch allocates nothing on this side (the kick is a write of a kept value, the
 * wait a spin on the used index), so what a profiler counts per request is the back end's.
 */
public final class FakeVmm implements AutoCloseable {
    /** Ring entries: room for {@code depth} three-descriptor requests up to a depth of 42. */
    public static final int QUEUE_SIZE = 128;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Where the RAM is for the guest, and (made up) in the VMM's address space. */
    private static final long GUEST = 0x100000;
    private static final long USER = 0x7f12_3400_0000L;
    private static final long DESC = 0;
    private static final long AVAIL = 0x1000;
    private static final long USED = 0x2000;
    private static final long HEADERS = 0x10000;
    private static final long DATA = 0x20000;
    private static final long TIMEOUT_NANOS = 10_000_000_000L;

    private final FrontEnd frontEnd;
    private final RamBacking ram;
    private final MemorySegment memory;
    private final int kick;
    private final int call;
    private final MemorySegment one = Linux.eventOne();
    private final int depth;
    private int availIndex;

    private FakeVmm(FrontEnd frontEnd, RamBacking ram, int kick, int call, int depth) {
        this.frontEnd = frontEnd;
        this.ram = ram;
        this.memory = ram.segment();
        this.kick = kick;
        this.call = call;
        this.depth = depth;
    }

    /**
     * Connects, negotiates, shares the RAM and starts ring 0, then lays out {@code depth} requests
     * of {@code length} bytes each at consecutive sectors from 0.
     *
     * @param socket where the back end listens
     * @param depth  requests per batch, 1 to 42
     * @param length bytes per request, a multiple of 512 up to 64 KiB
     * @param write  whether the requests write (else they read)
     * @return the VMM, its ring running on the back end
     * @throws IOException              if the socket, the memfd or an eventfd fails
     * @throws IllegalStateException    if the back end refuses a step of the start
     * @throws IllegalArgumentException if depth or length is out of range
     */
    public static FakeVmm start(Path socket, int depth, int length, boolean write) throws IOException {
        if (depth < 1 || 3 * depth > QUEUE_SIZE) {
            throw new IllegalArgumentException("depth must be 1 to " + QUEUE_SIZE / 3 + ", was " + depth);
        }
        if (length <= 0 || length % 512 != 0 || length > 65536) {
            throw new IllegalArgumentException("length must be a multiple of 512 up to 64 KiB, was " + length);
        }
        long ramBytes = DATA + (long) depth * length;
        RamBacking ram = RamBacking.memfd("fake-vmm", (ramBytes + 0xfffff) & ~0xfffffL);
        int kick = -1;
        int call = -1;
        FrontEnd fe = null;
        try {
            kick = Linux.eventfd();
            call = Linux.eventfd();
            fe = FrontEnd.connect(socket);
            FakeVmm vmm = new FakeVmm(fe, ram, kick, call, depth);
            vmm.negotiate();
            vmm.layOut(length, write);
            return vmm;
        } catch (IOException | RuntimeException e) {
            if (fe != null) {
                fe.close();
            }
            Linux.closeQuietly(kick);
            Linux.closeQuietly(call);
            ram.close();
            throw e;
        }
    }

    private void negotiate() throws PosixException {
        long offered = frontEnd.getU64(Protocol.GET_FEATURES);
        long features = VirtioPci.F_VERSION_1 | Protocol.F_PROTOCOL_FEATURES | (offered & VirtioBlk.F_FLUSH);
        frontEnd.send(Protocol.SET_PROTOCOL_FEATURES, FrontEnd.u64(Protocol.PF_REPLY_ACK));
        acked(Protocol.SET_OWNER, new byte[0]);
        acked(Protocol.SET_FEATURES, FrontEnd.u64(features));
        acked(Protocol.SET_MEM_TABLE, FrontEnd.memTable(new long[] {GUEST, ram.size(), USER, 0}), ram.fd().getAsInt());
        acked(Protocol.SET_VRING_NUM, FrontEnd.state(0, QUEUE_SIZE));
        acked(Protocol.SET_VRING_BASE, FrontEnd.state(0, 0));
        acked(Protocol.SET_VRING_ADDR, FrontEnd.address(0, USER + DESC, USER + USED, USER + AVAIL));
        acked(Protocol.SET_VRING_KICK, FrontEnd.u64(0), kick);
        acked(Protocol.SET_VRING_CALL, FrontEnd.u64(0), call);
        acked(Protocol.SET_VRING_ENABLE, FrontEnd.state(0, 1));
    }

    private void acked(int request, byte[] payload, int... fds) throws PosixException {
        long status = frontEnd.sendAcked(request, payload, fds);
        if (status != 0) {
            throw new IllegalStateException("the back end refused " + Protocol.name(request) + " (" + status + ")");
        }
    }

    /** Request i: descriptors 3i..3i+2, its header and status at HEADERS + 32i, its data at DATA + i * length. */
    private void layOut(int length, boolean write) {
        for (int i = 0; i < depth; i++) {
            long header = HEADERS + 32L * i;
            memory.set(INT, header, write ? VirtioBlk.T_OUT : VirtioBlk.T_IN);
            memory.set(INT, header + 4, 0);
            memory.set(LONG, header + 8, (long) i * (length / 512));
            long[][] buffers = {{header, 16, 0}, {DATA + (long) i * length, length, write ? 0 : 2}, {header + 16, 1, 2}};
            for (int b = 0; b < 3; b++) {
                int d = 3 * i + b;
                long at = DESC + 16L * d;
                memory.set(LONG, at, GUEST + buffers[b][0]);
                memory.set(INT, at + 8, (int) buffers[b][1]);
                memory.set(SHORT, at + 12, (short) (buffers[b][2] | (b < 2 ? 1 : 0)));
                memory.set(SHORT, at + 14, (short) (d + 1));
            }
        }
    }

    /**
     * Submits every request, kicks once, and waits until all are used.
     *
     * @return how many of the batch's requests ended with a status other than OK
     * @throws PosixException        if the kick fails
     * @throws IllegalStateException if the back end does not complete the batch within 10 s
     */
    public int batch() throws PosixException {
        for (int i = 0; i < depth; i++) {
            memory.set(SHORT, AVAIL + 4 + 2L * ((availIndex + i) % QUEUE_SIZE), (short) (3 * i));
            memory.set(ValueLayout.JAVA_BYTE, HEADERS + 32L * i + 16, (byte) 0xff);
        }
        availIndex += depth;
        // The ring's entries before its index, as a driver's write barrier orders them.
        VarHandle.releaseFence();
        memory.set(SHORT, AVAIL + 2, (short) availIndex);
        VarHandle.fullFence();
        Linux.signal(kick, one);
        long deadline = 0;
        while (Short.toUnsignedInt(memory.get(SHORT, USED + 2)) != (availIndex & 0xffff)) {
            if (deadline == 0) {
                deadline = System.nanoTime() + TIMEOUT_NANOS;
            } else if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("the back end completed " + Short.toUnsignedInt(memory.get(SHORT, USED + 2))
                        + " of " + (availIndex & 0xffff) + " requests in 10 s");
            }
            Thread.onSpinWait();
        }
        VarHandle.acquireFence();
        int failed = 0;
        for (int i = 0; i < depth; i++) {
            if (memory.get(ValueLayout.JAVA_BYTE, HEADERS + 32L * i + 16) != VirtioBlk.S_OK) {
                failed++;
            }
        }
        return failed;
    }

    /** Disconnects and frees the RAM and the eventfds. */
    @Override
    public void close() {
        frontEnd.close();
        Linux.closeQuietly(kick);
        Linux.closeQuietly(call);
        ram.close();
    }
}
