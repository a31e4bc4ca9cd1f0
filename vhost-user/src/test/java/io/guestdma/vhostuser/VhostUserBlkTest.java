package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioPci;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * virtio-blk behind the vhost-user back end, driven by a front end in the test that shares a memfd
 * as guest RAM, lays out a ring in it, and kicks and waits on eventfds, as QEMU does for a guest.
 */
class VhostUserBlkTest extends BlkFrontEndFixture {
    @Test
    void aWriteAndARead_throughSharedMemory_reachTheImageAndTheRing() throws IOException {
        long before = openFds();
        byte[] pattern = new byte[4096];
        new Random(17).nextBytes(pattern);
        try (FrontEnd fe = connectAndStart()) {
            long data = GUEST + 0x20000;
            MemorySegment.copy(pattern, 0, ram(), ValueLayout.JAVA_BYTE, data - GUEST, pattern.length);
            submit(request(VirtioBlk.T_OUT, 3, data, 4096, true));
            awaitUsed(1);
            assertThat(ram().get(ValueLayout.JAVA_BYTE, 0x11000)).isEqualTo((byte) VirtioBlk.S_OK);
            byte[] onDisk = Arrays.copyOfRange(Files.readAllBytes(image), 3 * 512, 3 * 512 + 4096);
            assertThat(onDisk).isEqualTo(pattern);

            long back = GUEST + 0x30000;
            submit(request(VirtioBlk.T_IN, 3, back, 4096, false));
            awaitUsed(2);
            assertThat(ram().get(ValueLayout.JAVA_BYTE, 0x11000)).isEqualTo((byte) VirtioBlk.S_OK);
            byte[] read = ram().asSlice(back - GUEST, 4096).toArray(ValueLayout.JAVA_BYTE);
            assertThat(read).isEqualTo(pattern);
            assertThat(ram().get(INT, USED + 4 + 8 + 4)).as("bytes written by the device").isEqualTo(4097);

            fe.send(Protocol.GET_VRING_BASE, FrontEnd.state(0, 0));
            assertThat(fe.reply(Protocol.GET_VRING_BASE).getInt(4)).isEqualTo(2);
            assertThat(backend.status().runningQueues()).isZero();
        }
        awaitDisconnected(1);
        assertThat(backend.status().memoryRegions()).isZero();
        assertThat(openFds()).isEqualTo(before);
    }

    @Test
    void aNewMemoryTable_whileTheRingRuns_movesTheRingWithIt() throws IOException {
        byte[] pattern = new byte[512];
        new Random(3).nextBytes(pattern);
        try (FrontEnd fe = connectAndStart()) {
            long data = GUEST + 0x20000;
            MemorySegment.copy(pattern, 0, ram(), ValueLayout.JAVA_BYTE, data - GUEST, pattern.length);
            submit(request(VirtioBlk.T_OUT, 0, data, 512, true));
            awaitUsed(1);
            // The same RAM as two regions (new mappings): the ring is re-pinned and continues where it was.
            long half = RAM / 2;
            byte[] table = FrontEnd.memTable(new long[] {GUEST, half, USER, 0},
                    new long[] {GUEST + half, half, USER + half, half});
            int fd = ram.fd().getAsInt();
            assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE, table, fd, fd)).isZero();
            assertThat(backend.status().runningQueues()).isEqualTo(1);
            assertThat(backend.status().memoryRegions()).isEqualTo(2);
            assertThat(backend.memory().regions()).hasSize(2);
            long back = GUEST + 0x30000;
            submit(request(VirtioBlk.T_IN, 0, back, 512, false));
            awaitUsed(2);
            assertThat(ram().asSlice(back - GUEST, 512).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(pattern);
        }
        awaitDisconnected(1);
    }

    @Test
    void theConfigurationSpace_isTheDevicesOwn() throws IOException {
        try (FrontEnd fe = connectAndStart()) {
            byte[] get = java.nio.ByteBuffer.allocate(12 + 60).order(ByteOrder.LITTLE_ENDIAN)
                    .putInt(0).putInt(60).putInt(0).array();
            fe.send(Protocol.GET_CONFIG, get);
            var reply = fe.reply(Protocol.GET_CONFIG);
            assertThat(reply.capacity()).isEqualTo(72);
            assertThat(reply.getLong(12)).as("capacity in sectors").isEqualTo(2048);
            assertThat(reply.getInt(12 + 20)).as("blk_size").isEqualTo(512);
            assertThat(reply.get(12 + 56)).as("write_zeroes_may_unmap").isEqualTo((byte) 1);
            assertThat(new byte[] {reply.get(12 + 57), reply.get(12 + 58), reply.get(12 + 59)})
                    .as("bytes past the device's 57").containsOnly(0);
        }
    }

    /** Features, memory and ring 0 as QEMU's vhost_dev_start sends them for a driver that accepted {@code features}. */
    private void startDriver(FrontEnd fe, long features) throws IOException {
        assertThat(fe.sendAcked(Protocol.SET_FEATURES, FrontEnd.u64(features | Protocol.F_PROTOCOL_FEATURES))).isZero();
        assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE, FrontEnd.memTable(new long[] {GUEST, RAM, USER, 0}),
                ram.fd().getAsInt())).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_NUM, FrontEnd.state(0, QSIZE))).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_BASE, FrontEnd.state(0, 0))).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_ADDR, FrontEnd.address(0, USER + DESC, USER + USED, USER + AVAIL))).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_KICK, FrontEnd.u64(0), kick)).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_CALL, FrontEnd.u64(0), call)).isZero();
        assertThat(fe.sendAcked(Protocol.SET_VRING_ENABLE, FrontEnd.state(0, 1))).isZero();
        assertThat(backend.status().runningQueues()).isEqualTo(1);
    }

    private static void stopDriver(FrontEnd fe) throws IOException {
        fe.send(Protocol.GET_VRING_BASE, FrontEnd.state(0, 0));
        fe.reply(Protocol.GET_VRING_BASE);
    }

    /*
     * What QEMU sends for a guest whose firmware (SeaBIOS: no FLUSH) drives the disk before the
     * kernel (FLUSH and CONFIG_WCE, reading writeback = 1): rings stopped and started again, no
     * reset. The kernel's driver must get the write-back cache it read, not the firmware's
     * write-through (an fdatasync per write); one that wrote writeback = 0 keeps write-through.
     */
    @Test
    void aKernelAfterTheFirmware_getsTheWriteCacheItReads() throws IOException {
        VirtioBlk blk = (VirtioBlk) backend.device();
        try (FrontEnd fe = FrontEnd.connect(socket)) {
            fe.getU64(Protocol.GET_FEATURES);
            fe.send(Protocol.SET_PROTOCOL_FEATURES, FrontEnd.u64(Protocol.PF_REPLY_ACK | Protocol.PF_CONFIG));
            assertThat(fe.sendAcked(Protocol.SET_OWNER, new byte[0])).isZero();
            startDriver(fe, VirtioPci.F_VERSION_1);
            assertThat(blk.writeCacheEnabled()).as("firmware without FLUSH: write-through").isFalse();
            stopDriver(fe);
            startDriver(fe, VirtioPci.F_VERSION_1 | VirtioBlk.F_FLUSH | VirtioBlk.F_CONFIG_WCE);
            assertThat(blk.writeCacheEnabled()).as("the kernel's driver: writeback, as it read").isTrue();

            byte[] writeThrough = java.nio.ByteBuffer.allocate(13).order(ByteOrder.LITTLE_ENDIAN)
                    .putInt(32).putInt(1).putInt(0).put((byte) 0).array();
            assertThat(fe.sendAcked(Protocol.SET_CONFIG, writeThrough)).isZero();
            assertThat(blk.writeCacheEnabled()).isFalse();
            stopDriver(fe);
            startDriver(fe, VirtioPci.F_VERSION_1 | VirtioBlk.F_FLUSH | VirtioBlk.F_CONFIG_WCE);
            assertThat(blk.writeCacheEnabled()).as("chosen by the driver: kept across a restart").isFalse();
        }
    }
}
