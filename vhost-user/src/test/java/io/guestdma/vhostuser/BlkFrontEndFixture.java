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
    int availIdx;
    int descNext;

    @BeforeEach
    void start() throws IOException {
        image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        disk = FileChannelBackend.open(image, BlockOptions.defaults());
        backend = new VhostUserBackend(m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults()));
        socket = dir.resolve("vhost.sock");
        backend.listen(socket);
        ram = RamBacking.memfd("vhost-user-test", RAM);
        kick = Linux.eventfd();
        call = Linux.eventfd();
    }

    @AfterEach
    void stop() throws IOException {
        backend.close();
        ((VirtioBlk) backend.device()).close();
        disk.close();
        ram.close();
        Linux.closeQuietly(kick);
        Linux.closeQuietly(call);
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
        assertThat(fe.getU64(Protocol.GET_QUEUE_NUM)).isEqualTo(1);
        assertThat(fe.sendAcked(Protocol.SET_OWNER, new byte[0])).isZero();
        long features = VirtioPci.F_VERSION_1 | VirtioBlk.F_FLUSH | Protocol.F_PROTOCOL_FEATURES;
        assertThat(fe.sendAcked(Protocol.SET_FEATURES, FrontEnd.u64(features))).isZero();
        byte[] table = FrontEnd.memTable(new long[] {GUEST, RAM, USER, 0});
        assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE, table, ram.fd().getAsInt())).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_NUM, FrontEnd.state(0, QSIZE))).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_BASE, FrontEnd.state(0, 0))).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_ADDR,
                FrontEnd.address(0, USER + DESC, USER + USED, USER + AVAIL))).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_KICK, FrontEnd.u64(0), kick)).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_CALL, FrontEnd.u64(0), call)).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_ENABLE, FrontEnd.state(0, 1))).isZero();
        assertThat(backend.status().runningQueues()).isEqualTo(1);
        return fe;
    }

    MemorySegment ram() {
        return ram.segment();
    }

    /** Puts a chain of buffers (guest addresses) in the ring and kicks; returns the head. */
    int submit(long[][] buffers) throws IOException {
        int head = descNext;
        for (int i = 0; i < buffers.length; i++) {
            int d = (head + i) % QSIZE;
            long at = DESC + 16L * d;
            ram().set(LONG, at, buffers[i][0]);
            ram().set(INT, at + 8, (int) buffers[i][1]);
            int flags = (buffers[i][2] != 0 ? 2 : 0) | (i + 1 < buffers.length ? 1 : 0);
            ram().set(SHORT, at + 12, (short) flags);
            ram().set(SHORT, at + 14, (short) ((d + 1) % QSIZE));
        }
        descNext = (head + buffers.length) % QSIZE;
        ram().set(SHORT, AVAIL + 4 + 2L * (availIdx % QSIZE), (short) head);
        availIdx++;
        ram().set(SHORT, AVAIL + 2, (short) availIdx);
        Linux.signal(kick);
        return head;
    }

    /** Waits for the call eventfd and the used index to reach {@code expected}. */
    void awaitUsed(int expected) throws IOException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (Short.toUnsignedInt(ram().get(SHORT, USED + 2)) != expected) {
            assertThat(System.nanoTime()).as("used index %d never came", expected).isLessThan(deadline);
            if (Linux.poll(new int[] {call}, new short[1], 100) > 0) {
                Linux.drain(call);
            }
        }
    }

    long[][] request(int type, long sector, long data, int length, boolean write) {
        long header = GUEST + 0x10000;
        ram().set(INT, header - GUEST, type);
        ram().set(INT, header - GUEST + 4, 0);
        ram().set(LONG, header - GUEST + 8, sector);
        long status = GUEST + 0x11000;
        ram().set(ValueLayout.JAVA_BYTE, status - GUEST, (byte) 0xff);
        return new long[][] {{header, 16, 0}, {data, length, write ? 0 : 1}, {status, 1, 1}};
    }

    void awaitDisconnected(long connections) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (backend.status().connected() || backend.status().connections() != connections) {
            assertThat(System.nanoTime()).as("the back end never saw the end of the connection").isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    static long openFds() throws IOException {
        try (var list = Files.list(Path.of("/proc/self/fd"))) {
            return list.count();
        }
    }
}
