package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.virtio.VirtioBlk;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A front end that breaks the protocol: malformed messages end the connection, well-formed ones
 * the back end cannot carry out are refused (REPLY_ACK), descriptors are never leaked, and the
 * back end serves the next connection normally.
 */
class HostileFrontEndTest extends BlkFrontEndFixture {
    /** Something that must end the connection. */
    @FunctionalInterface
    interface Abuse {
        void send(FrontEnd fe, HostileFrontEndTest t) throws IOException;
    }

    static Stream<Arguments> abuses() {
        return Stream.of(
                Arguments.of("protocol version 0", (Abuse) (fe, t) -> fe.send(Protocol.GET_FEATURES, 0, new byte[0])),
                Arguments.of("a reply sent as a request",
                        (Abuse) (fe, t) -> fe.send(Protocol.GET_FEATURES, Protocol.VERSION | Protocol.FLAG_REPLY, new byte[0])),
                Arguments.of("payload size 4 GiB - 1", (Abuse) (fe, t) -> fe.sendRaw(header(Protocol.SET_FEATURES, -1))),
                Arguments.of("payload size past the limit",
                        (Abuse) (fe, t) -> fe.sendRaw(header(Protocol.SET_FEATURES, Protocol.MAX_PAYLOAD + 1))),
                Arguments.of("GET_FEATURES with a payload", (Abuse) (fe, t) -> fe.send(Protocol.GET_FEATURES, new byte[8])),
                Arguments.of("SET_FEATURES with 4 bytes", (Abuse) (fe, t) -> fe.send(Protocol.SET_FEATURES, new byte[4])),
                Arguments.of("an unknown request", (Abuse) (fe, t) -> fe.send(99, new byte[0])),
                Arguments.of("a request not offered (SET_LOG_BASE)", (Abuse) (fe, t) -> fe.send(6, new byte[16])),
                Arguments.of("descriptors with SET_OWNER",
                        (Abuse) (fe, t) -> fe.send(Protocol.SET_OWNER, new byte[0], t.kick, t.call)),
                Arguments.of("two descriptors with SET_VRING_CALL",
                        (Abuse) (fe, t) -> fe.send(Protocol.SET_VRING_CALL, FrontEnd.u64(0), t.kick, t.call)),
                Arguments.of("no descriptor with SET_VRING_CALL", (Abuse) (fe, t) -> fe.send(Protocol.SET_VRING_CALL, FrontEnd.u64(0))),
                Arguments.of("a descriptor with the no-fd flag",
                        (Abuse) (fe, t) -> fe.send(Protocol.SET_VRING_CALL, FrontEnd.u64(Protocol.VRING_NOFD), t.call)),
                Arguments.of("SET_VRING_KICK for queue 7", (Abuse) (fe, t) -> fe.send(Protocol.SET_VRING_KICK, FrontEnd.u64(7), t.kick)),
                Arguments.of("SET_VRING_NUM for queue -1", (Abuse) (fe, t) -> fe.send(Protocol.SET_VRING_NUM, FrontEnd.state(-1, 16))),
                Arguments.of("GET_VRING_BASE for queue 1", (Abuse) (fe, t) -> fe.send(Protocol.GET_VRING_BASE, FrontEnd.state(1, 0))),
                Arguments.of("twenty descriptors in one message", (Abuse) (fe, t) -> {
                    int[] many = new int[20];
                    java.util.Arrays.fill(many, t.kick);
                    fe.send(Protocol.SET_MEM_TABLE, FrontEnd.memTable(new long[] {0, 4096, 0, 0}), many);
                }),
                Arguments.of("nine regions", (Abuse) (fe, t) -> fe.send(Protocol.SET_MEM_TABLE, nineRegions())),
                Arguments.of("a region without its descriptor",
                        (Abuse) (fe, t) -> fe.send(Protocol.SET_MEM_TABLE, FrontEnd.memTable(new long[] {0, 4096, 0, 0}))),
                Arguments.of("a table shorter than its count", (Abuse) (fe, t) -> {
                    byte[] table = FrontEnd.memTable(new long[] {0, 4096, 0, 0});
                    fe.send(Protocol.SET_MEM_TABLE, java.util.Arrays.copyOf(table, table.length - 8), t.ram.fd().getAsInt());
                }),
                Arguments.of("GET_CONFIG without CONFIG negotiated", (Abuse) (fe, t) -> fe.send(Protocol.GET_CONFIG, config(0, 8))),
                Arguments.of("GET_CONFIG of 300 bytes", (Abuse) (fe, t) -> {
                    fe.send(Protocol.SET_PROTOCOL_FEATURES, FrontEnd.u64(Protocol.PF_CONFIG));
                    fe.send(Protocol.GET_CONFIG, config(0, 300));
                }),
                Arguments.of("a failed request without REPLY_ACK",
                        (Abuse) (fe, t) -> fe.send(Protocol.SET_VRING_NUM, FrontEnd.state(0, 3))),
                Arguments.of("half a header, then the end", (Abuse) (fe, t) -> {
                    fe.sendRaw(new byte[] {1, 0, 0, 0, 1, 0});
                    fe.close();
                }));
    }

    static byte[] header(int request, int size) {
        return ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(request).putInt(Protocol.VERSION)
                .putInt(size).array();
    }

    static byte[] nineRegions() {
        long[][] regions = new long[9][];
        for (int i = 0; i < 9; i++) {
            regions[i] = new long[] {i * 4096L, 4096, i * 4096L, 0};
        }
        return FrontEnd.memTable(regions);
    }

    static byte[] config(int offset, int size) {
        return ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(offset).putInt(size).putInt(0).array();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("abuses")
    void aMalformedMessage_endsTheConnection_andLeaksNothing(String what, Abuse abuse) throws IOException {
        long before = openFds();
        FrontEnd fe = FrontEnd.connect(socket);
        try {
            abuse.send(fe, this);
            if (!what.startsWith("half a header")) {
                assertThat(fe.closedByPeer(10_000)).as("the back end closed the connection").isTrue();
            }
        } finally {
            fe.close();
        }
        awaitDisconnected(1);
        assertThat(backend.status().lastError()).isNotNull();
        assertThat(openFds()).as("descriptors open").isEqualTo(before);
        // The back end goes on: the next front end is served.
        try (FrontEnd next = connectAndStart()) {
            assertThat(backend.status().connections()).isEqualTo(2);
        }
        awaitDisconnected(2);
        assertThat(openFds()).as("descriptors open").isEqualTo(before);
    }

    @Test
    void requestsThatCannotBeCarriedOut_areRefused_andTheConnectionGoesOn() throws IOException {
        long before = openFds();
        try (FrontEnd fe = connectAndStart()) {
            int fd = ram.fd().getAsInt();
            assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE, FrontEnd.memTable(new long[] {GUEST, 0, USER, 0}), fd))
                    .as("a zero-sized region").isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE,
                    FrontEnd.memTable(new long[] {GUEST, RAM, USER, 0}, new long[] {GUEST + 0x1000, 0x1000, USER + RAM, 0}),
                    fd, fd)).as("regions overlapping in guest memory").isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE,
                    FrontEnd.memTable(new long[] {GUEST, 0x1000, USER, 0}, new long[] {GUEST + RAM, 0x1000, USER, 0}),
                    fd, fd)).as("regions overlapping in the VMM's memory").isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE, FrontEnd.memTable(new long[] {GUEST, RAM, USER, RAM}), fd))
                    .as("a region past the end of its file").isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_MEM_TABLE, FrontEnd.memTable(new long[] {GUEST, RAM, USER, 0}), kick))
                    .as("an eventfd as memory").isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_VRING_NUM, FrontEnd.state(0, 8)))
                    .as("a running ring's size").isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_FEATURES, FrontEnd.u64(1L << 63))).as("features not offered").isEqualTo(1);
            // The ring still runs on the first table.
            assertThat(backend.status().memoryRegions()).isEqualTo(1);
            long data = GUEST + 0x20000;
            submit(request(VirtioBlk.T_IN, 0, data, 512, false));
            awaitUsed(1);

            fe.send(Protocol.GET_VRING_BASE, FrontEnd.state(0, 0));
            assertThat(fe.reply(Protocol.GET_VRING_BASE).getInt(4)).isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_VRING_ADDR, FrontEnd.address(0, USER + RAM, USER, USER)))
                    .as("a descriptor table outside the table").isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_VRING_ADDR, FrontEnd.address(0, USER + RAM - 16, USER, USER)))
                    .as("a descriptor table running past its region").isEqualTo(1);
            assertThat(fe.sendAcked(Protocol.SET_VRING_ADDR, FrontEnd.address(0, USER + 8, USER + USED, USER + AVAIL)))
                    .as("a misaligned descriptor table is refused when the ring starts").isZero();
            assertThat(fe.sendAcked(Protocol.SET_VRING_KICK, FrontEnd.u64(0), kick)).isEqualTo(1);
            assertThat(backend.status().runningQueues()).isZero();
        }
        awaitDisconnected(1);
        assertThat(backend.status().lastError()).isNull();
        assertThat(openFds()).isEqualTo(before);
    }
}
