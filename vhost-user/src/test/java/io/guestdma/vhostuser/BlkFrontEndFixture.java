package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.memory.RamBacking;
import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioBlkConfig;
import io.guestdma.virtio.VirtioPci;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/**
 * virtio-blk behind a vhost-user back end listening on a socket, and a front end in the test that
 * shares a memfd as guest RAM, lays out a ring in it, and kicks and waits on eventfds, as QEMU does
 * for a guest.
 */
abstract class BlkFrontEndFixture {
    static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Where the shared RAM is for the guest, and (made up) in the VMM's address space. */
    static final long GUEST = 0x100000;
    static final long USER = 0x7f12_3400_0000L;
    static final long RAM = 2 << 20;
    static final int QSIZE = 16;
    static final long DESC = 0;
    static final long AVAIL = 0x4000;
    static final long USED = 0x8000;

    @TempDir
    Path dir;
    Path image;
    FileChannelBackend disk;
    VhostUserBackend backend;
    Path socket;
    RamBacking ram;
    int kick = -1;
    int call = -1;
    /** Per queue: eventfds (queue 0's are kick and call), next avail index, next descriptor. */
    final int[] kicks = {-1, -1, -1, -1};
    final int[] calls = {-1, -1, -1, -1};
    final int[] availIdx = new int[4];
    final int[] descNext = new int[4];

    /** {@return the device's queue count} */
    int queues() {
        return 1;
    }

    /** {@return how long the back end's kick threads may poll an empty ring} */
    Duration pollMax() {
        return Duration.ZERO;
    }

    /** {@return whether the device serves its queues on I/O threads of its own, or on the kick threads} */
    boolean ioThreads() {
        return true;
    }

    /** {@return where queue {@code q}'s ring areas start in the shared RAM} */
    static long ring(int q) {
        return 0x40000L * q;
    }

    @BeforeEach
    void start() throws IOException {
        image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        disk = FileChannelBackend.open(image, BlockOptions.defaults());
        backend = new VhostUserBackend(m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults().withQueues(queues())
                .withIoThreads(ioThreads())), pollMax());
        socket = dir.resolve("vhost.sock");
        backend.listen(socket);
        ram = RamBacking.memfd("vhost-user-test", RAM);
        for (int q = 0; q < queues(); q++) {
            kicks[q] = Linux.eventfd();
            calls[q] = Linux.eventfd();
        }
        kick = kicks[0];
        call = calls[0];
    }

    @AfterEach
    void stop() throws IOException {
        backend.close();
        ((VirtioBlk) backend.device()).close();
        disk.close();
        ram.close();
        for (int q = 0; q < queues(); q++) {
            Linux.closeQuietly(kicks[q]);
            Linux.closeQuietly(calls[q]);
        }
    }

    /** Negotiation, the memory table and ring 0, as QEMU's vhost-user-blk start sends them. */
    FrontEnd connectAndStart() throws IOException {
        FrontEnd fe = FrontEnd.connect(socket);
        long offered = fe.getU64(Protocol.GET_FEATURES);
        assertThat(offered & Protocol.F_PROTOCOL_FEATURES).isNotZero();
        assertThat(offered & VirtioPci.F_VERSION_1).isNotZero();
        assertThat(fe.getU64(Protocol.GET_PROTOCOL_FEATURES))
                .isEqualTo(Protocol.PF_MQ | Protocol.PF_REPLY_ACK | Protocol.PF_CONFIG | Protocol.PF_RESET_DEVICE);
        fe.send(Protocol.SET_PROTOCOL_FEATURES, FrontEnd.u64(Protocol.PF_MQ | Protocol.PF_REPLY_ACK | Protocol.PF_CONFIG));
        assertThat(fe.getU64(Protocol.GET_QUEUE_NUM)).isEqualTo(queues());
        assertThat(fe.sendAcked(Protocol.SET_OWNER, new byte[0])).isZero();
        long features = VirtioPci.F_VERSION_1 | VirtioBlk.F_FLUSH | Protocol.F_PROTOCOL_FEATURES;
        assertThat(fe.sendAcked(Protocol.SET_FEATURES, FrontEnd.u64(features))).isZero();
        byte[] table = FrontEnd.memTable(new long[] {GUEST, RAM, USER, 0});
        assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE, table, ram.fd().getAsInt())).isZero();
        for (int q = 0; q < queues(); q++) {
            long r = USER + ring(q);
            assertThat(fe.sendAcked(Protocol.SET_VRING_NUM, FrontEnd.state(q, QSIZE))).isZero();
            assertThat(fe.sendAcked(Protocol.SET_VRING_BASE, FrontEnd.state(q, 0))).isZero();
            assertThat(fe.sendAcked(Protocol.SET_VRING_ADDR, FrontEnd.address(q, r + DESC, r + USED, r + AVAIL))).isZero();
            assertThat(fe.sendAcked(Protocol.SET_VRING_KICK, FrontEnd.u64(q), kicks[q])).isZero();
            assertThat(fe.sendAcked(Protocol.SET_VRING_CALL, FrontEnd.u64(q), calls[q])).isZero();
            assertThat(fe.sendAcked(Protocol.SET_VRING_ENABLE, FrontEnd.state(q, 1))).isZero();
        }
        assertThat(backend.status().runningQueues()).isEqualTo(queues());
        return fe;
    }

    MemorySegment ram() {
        return ram.segment();
    }

    /** Puts a chain of buffers (guest addresses) in ring 0 and kicks; returns the head. */
    int submit(long[][] buffers) throws IOException {
        return submit(0, buffers);
    }

    /** Puts a chain of buffers (guest addresses) in ring {@code q} and kicks it; returns the head. */
    int submit(int q, long[][] buffers) throws IOException {
        return submit(q, buffers, true);
    }

    /** Puts a chain of buffers (guest addresses) in ring {@code q}, kicking it or not; returns the head. */
    int submit(int q, long[][] buffers, boolean kick) throws IOException {
        int head = descNext[q];
        for (int i = 0; i < buffers.length; i++) {
            int d = (head + i) % QSIZE;
            long at = ring(q) + DESC + 16L * d;
            ram().set(LONG, at, buffers[i][0]);
            ram().set(INT, at + 8, (int) buffers[i][1]);
            int flags = (buffers[i][2] != 0 ? 2 : 0) | (i + 1 < buffers.length ? 1 : 0);
            ram().set(SHORT, at + 12, (short) flags);
            ram().set(SHORT, at + 14, (short) ((d + 1) % QSIZE));
        }
        descNext[q] = (head + buffers.length) % QSIZE;
        ram().set(SHORT, ring(q) + AVAIL + 4 + 2L * (availIdx[q] % QSIZE), (short) head);
        availIdx[q]++;
        ram().set(SHORT, ring(q) + AVAIL + 2, (short) availIdx[q]);
        if (kick) {
            Linux.signal(kicks[q]);
        }
        return head;
    }

    /** Waits for ring 0's used index to reach {@code expected}. */
    void awaitUsed(int expected) throws IOException {
        awaitUsed(0, expected);
    }

    /** Waits on ring {@code q}'s call eventfd until its used index reaches {@code expected}. */
    void awaitUsed(int q, int expected) throws IOException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (Short.toUnsignedInt(ram().get(SHORT, ring(q) + USED + 2)) != expected) {
            assertThat(System.nanoTime()).as("queue %d: used index %d never came", q, expected).isLessThan(deadline);
            if (Linux.poll(new int[] {calls[q]}, new short[1], 100) > 0) {
                Linux.drain(calls[q]);
            }
        }
    }

    long[][] request(int type, long sector, long data, int length, boolean write) {
        return request(0, type, sector, data, length, write);
    }

    /** A virtio-blk request for ring {@code q}: its header and status byte live next to the ring. */
    long[][] request(int q, int type, long sector, long data, int length, boolean write) {
        long header = GUEST + ring(q) + 0x10000;
        ram().set(INT, header - GUEST, type);
        ram().set(INT, header - GUEST + 4, 0);
        ram().set(LONG, header - GUEST + 8, sector);
        long status = GUEST + ring(q) + 0x11000;
        ram().set(ValueLayout.JAVA_BYTE, status - GUEST, (byte) 0xff);
        return new long[][] {{header, 16, 0}, {data, length, write ? 0 : 1}, {status, 1, 1}};
    }

    void awaitDisconnected(long connections) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        // One snapshot per look: two could see "not connected" before the accept and "one
        // connection" after it, while that connection is still being served.
        for (VhostUserBackend.Status s = backend.status(); s.connected() || s.connections() != connections;
                s = backend.status()) {
            assertThat(System.nanoTime()).as("the back end never saw the end of the connection").isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    /**
     * The descriptors open in this JVM, pipes left out: the JDK closes a child process's pipes on
     * its reaper thread, at times after {@code waitFor} has returned, so a test class that ran a
     * process just before (a QEMU, a probe JVM) could change the count in the middle of a test
     * here. Neither the back end nor this fixture uses a pipe.
     */
    static long openFds() throws IOException {
        try (var list = Files.list(Path.of("/proc/self/fd"))) {
            return list.filter(fd -> !isPipe(fd)).count();
        }
    }

    private static boolean isPipe(Path fd) {
        try {
            return Files.readSymbolicLink(fd).toString().startsWith("pipe:");
        } catch (IOException closedSinceListed) {
            return false;
        }
    }
}
