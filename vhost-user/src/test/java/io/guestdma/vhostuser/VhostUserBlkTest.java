package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.virtio.VirtioBlk;
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

}
