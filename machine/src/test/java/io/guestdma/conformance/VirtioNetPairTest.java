package io.guestdma.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.conformance.VirtioDriver.Buf;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The done-when test of virtio-net: our machine's NIC and QEMU 7.2's NIC, wired together over the
 * socket netdev (ours listens, QEMU connects), each driven by its own qtest client as a guest
 * driver would drive it, exchange 10 000 frames of random sizes (14 to 65 535 bytes), half each
 * way, in batches; every frame must arrive once, in order, unaltered.
 */
class VirtioNetPairTest {
    static final int FRAMES = 10_000;
    static final int BATCH = 32;
    static final int RX_CHAIN = 4096;
    static final int QUEUE = 256;
    static final long RX_BUFS = 0x1000000;
    static final long TX_BUFS = 0x2000000;
    static final long FEATURES = 1L << 32 | 1L << 5 | 1L << 16 | 1L << 15;

    /** One side's guest driver: a full receive ring of 4 KiB chains, batched transmissions. */
    static final class Guest {
        final NetDriver n;
        final String name;
        /** Receive chains in the order they were posted: their buffer index. */
        final Deque<Integer> posted = new ArrayDeque<>();
        int rxUsed;
        int txUsed;
        int nextBuffer;

        Guest(String name, QtestClient client) {
            this.name = name;
            this.n = new NetDriver(new VirtioDriver(client));
            n.start(FEATURES, QUEUE);
            for (int i = 0; i < QUEUE; i++) {
                post();
            }
            n.kick(NetDriver.RX);
        }

        void post() {
            int buffer = nextBuffer;
            nextBuffer = (nextBuffer + 1) % (2 * QUEUE);
            n.submit(NetDriver.RX, List.of(new Buf(RX_BUFS + (long) buffer * RX_CHAIN, RX_CHAIN, true)));
            posted.add(buffer);
        }

        /** Transmits frames, each in one descriptor after its header, and waits until all are used. */
        void transmit(List<byte[]> frames) {
            long at = TX_BUFS;
            for (byte[] f : frames) {
                n.c.memwrite(at, ByteBuffer.allocate(12 + f.length).put(new byte[12]).put(f).array());
                n.submit(NetDriver.TX, List.of(new Buf(at, 12 + f.length, false)));
                at += 12 + f.length + 64;
            }
            n.kick(NetDriver.TX);
            txUsed += frames.size();
            assertThat(n.await(NetDriver.TX, txUsed, false)).as(name + " transmitted its batch").isTrue();
        }

        /** Takes {@code count} frames from the receive ring, reposting the chains they used. */
        byte[][] receive(int count, int totalChains) {
            assertThat(n.await(NetDriver.RX, rxUsed + totalChains, false))
                    .as(name + " received " + count + " frames in " + totalChains + " chains (used idx "
                            + n.usedIdx(NetDriver.RX) + ", expected " + ((rxUsed + totalChains) & 0xffff) + ")")
                    .isTrue();
            byte[][] frames = new byte[count][];
            for (int f = 0; f < count; f++) {
                int buffer = posted.poll();
                int len = n.usedLen(NetDriver.RX, rxUsed);
                byte[] first = n.c.memread(RX_BUFS + (long) buffer * RX_CHAIN, len);
                int chains = Short.toUnsignedInt(ByteBuffer.wrap(first, 10, 2).order(ByteOrder.LITTLE_ENDIAN)
                        .getShort());
                ByteBuffer frame = ByteBuffer.allocate(65536 * 2);
                frame.put(first, 12, len - 12);
                rxUsed++;
                for (int c = 1; c < chains; c++) {
                    int b = posted.poll();
                    int l = n.usedLen(NetDriver.RX, rxUsed);
                    frame.put(n.c.memread(RX_BUFS + (long) b * RX_CHAIN, l));
                    rxUsed++;
                }
                frames[f] = Arrays.copyOf(frame.array(), frame.position());
                for (int c = 0; c < chains; c++) {
                    post();
                }
            }
            n.kick(NetDriver.RX);
            return frames;
        }
    }

    static int chains(int size) {
        return (size + 12 + RX_CHAIN - 1) / RX_CHAIN;
    }

    static int frameSize(Random random) {
        int kind = random.nextInt(20);
        if (kind < 16) {
            return 14 + random.nextInt(1501);
        }
        if (kind < 19) {
            return 1515 + random.nextInt(9000 - 1515);
        }
        return 9000 + random.nextInt(65535 - 9000 + 1);
    }

    @Test
    void oursAndQemuExchangeTenThousandFrames() throws Exception {
        QemuTarget qemu = QemuTarget.require();
        int port;
        try (ServerSocket probe = new ServerSocket()) {
            probe.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            port = probe.getLocalPort();
        }
        String device = "virtio-net-pci,netdev=n0,addr=04.0,romfile=,ctrl_vq=off,ctrl_rx=off,ctrl_vlan=off,"
                + "ctrl_rx_extra=off,ctrl_mac_addr=off,ctrl_guest_offloads=off,guest_announce=off,mq=off";
        Target ours = Targets.oursDefault().getFirst();
        try (QtestClient ourClient = ours.startWith(List.of("-m", "64M", "-netdev",
                "socket,id=n0,listen=127.0.0.1:" + port, "-device", device + ",mac=52:54:00:00:00:01"));
             QtestClient qemuClient = qemu.startWith(List.of("-m", "64M", "-netdev",
                     "socket,id=n0,connect=127.0.0.1:" + port, "-device", device + ",mac=52:54:00:00:00:02"))) {
            Guest a = new Guest("ours", ourClient);
            Guest b = new Guest("qemu", qemuClient);
            Random random = new Random(14);
            int sent = 0;
            boolean fromOurs = true;
            while (sent < FRAMES) {
                Guest from = fromOurs ? a : b;
                Guest to = fromOurs ? b : a;
                List<byte[]> batch = new java.util.ArrayList<>();
                int chains = 0;
                while (batch.size() < BATCH && sent + batch.size() < FRAMES) {
                    byte[] f = new byte[frameSize(random)];
                    random.nextBytes(f);
                    if (chains + chains(f.length) > QUEUE) {
                        break; // the peer's ring holds the batch whole
                    }
                    chains += chains(f.length);
                    batch.add(f);
                }
                from.transmit(batch);
                byte[][] got = to.receive(batch.size(), chains);
                for (int i = 0; i < batch.size(); i++) {
                    assertThat(got[i]).as("frame %d from %s", sent + i, from.name).isEqualTo(batch.get(i));
                }
                sent += batch.size();
                fromOurs = !fromOurs;
            }
            assertThat(sent).isEqualTo(FRAMES);
        }
    }
}
