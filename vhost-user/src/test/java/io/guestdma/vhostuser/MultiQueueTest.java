package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.virtio.VirtioBlk;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Two rings of one virtio-blk behind the back end: each has its own kick and call eventfds. */
class MultiQueueTest extends BlkFrontEndFixture {
    @Override
    int queues() {
        return 2;
    }

    @Test
    void bothQueuesCarryRequests_andEachSignalsItsOwnCallEventfd() throws IOException {
        byte[] a = new byte[4096];
        byte[] b = new byte[4096];
        new Random(1).nextBytes(a);
        new Random(2).nextBytes(b);
        try (FrontEnd fe = connectAndStart()) {
            MemorySegment.copy(a, 0, ram(), ValueLayout.JAVA_BYTE, 0x20000, a.length);
            MemorySegment.copy(b, 0, ram(), ValueLayout.JAVA_BYTE, 0x60000, b.length);
            submit(0, request(0, VirtioBlk.T_OUT, 8, GUEST + 0x20000, a.length, true));
            submit(1, request(1, VirtioBlk.T_OUT, 24, GUEST + 0x60000, b.length, true));
            awaitUsed(0, 1);
            awaitUsed(1, 1);
            byte[] disk = Files.readAllBytes(image);
            assertThat(Arrays.copyOfRange(disk, 8 * 512, 8 * 512 + a.length)).isEqualTo(a);
            assertThat(Arrays.copyOfRange(disk, 24 * 512, 24 * 512 + b.length)).isEqualTo(b);

            // Queue 1 stopped (GET_VRING_BASE) leaves queue 0 running.
            fe.send(Protocol.GET_VRING_BASE, FrontEnd.state(1, 0));
            assertThat(fe.reply(Protocol.GET_VRING_BASE).getInt(4)).isEqualTo(1);
            assertThat(backend.status().runningQueues()).isEqualTo(1);
            submit(0, request(0, VirtioBlk.T_IN, 24, GUEST + 0x30000, b.length, false));
            awaitUsed(0, 2);
            assertThat(ram().asSlice(0x30000, b.length).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(b);
        }
        awaitDisconnected(1);
    }
}
