package io.guestdma.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.conformance.VirtioDriver.Buf;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Our virtio-net-pci against hostile peers and rings, through the qtest machine as a guest sees it:
 * a peer that claims a 4 GiB frame, a peer that leaves mid-frame, transmit chains that point into
 * the device's own registers, into nothing, or are too long. Every register access must answer,
 * the guest's buffers must hold whole frames or nothing, and the device must keep working.
 */
class VirtioNetHostileTest {
    static final long FEATURES = 1L << 32 | 1L << 5 | 1L << 16 | 1L << 15;
    static final long RX_BUFS = 0x1000000;
    static final long TX_BUFS = 0x2000000;

    interface Script {
        void run(NetDriver n, NetPeer peer) throws Exception;
    }

    static void run(Script script) throws Exception {
        Target ours = Targets.oursDefault().getFirst();
        try (NetPeer peer = new NetPeer()) {
            try (QtestClient client = ours.startWith(List.of("-m", "64M", "-netdev", peer.netdev("n0"), "-device",
                    "virtio-net-pci,netdev=n0,addr=04.0"))) {
                peer.accept();
                NetDriver n = new NetDriver(new VirtioDriver(client));
                n.start(FEATURES, 256);
                script.run(n, peer);
            }
        }
    }

    static void postBuffers(NetDriver n, int count) {
        n.c.memset(RX_BUFS, 0x10000L * count, 0xee);
        for (int i = 0; i < count; i++) {
            n.submit(NetDriver.RX, List.of(new Buf(RX_BUFS + 0x10000L * i, 4096, true)));
        }
        n.kick(NetDriver.RX);
    }

    /** Waits for the link to go down; true if it did, with a configuration interrupt. */
    static boolean awaitLinkDown(NetDriver n) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < deadline) {
            if (n.d.read(VirtioDriver.DEVICE + 6, 2) == 0) {
                return true;
            }
        }
        return false;
    }

    static void assertUntouched(NetDriver n, int buffers) {
        for (int i = 0; i < buffers; i++) {
            assertThat(n.c.memread(RX_BUFS + 0x10000L * i, 4096)).as("buffer %d", i).containsOnly((byte) 0xee);
        }
        assertThat(n.usedIdx(NetDriver.RX)).isZero();
    }

    @Test
    void aPeerClaimingAFourGigabyteFrameIsCutOffWithoutTouchingTheGuest() throws Exception {
        run((n, peer) -> {
            postBuffers(n, 4);
            assertThat(n.d.read(VirtioDriver.DEVICE + 6, 2)).as("link up").isEqualTo(1);
            peer.sendRaw(ByteBuffer.allocate(4 + 1000).putInt(0xffff_ffff).put(new byte[1000]).flip());
            assertThat(awaitLinkDown(n)).as("link down after a 4 GiB length prefix").isTrue();
            assertThat(n.await(NetDriver.RX, 0, true)).as("configuration interrupt").isTrue();
            assertThat(n.d.read(VirtioDriver.ISR, 1)).as("configuration change in the ISR").isEqualTo(3);
            assertUntouched(n, 4);
            assertThat(n.d.status() & 0x40).as("device still usable").isZero();
        });
    }

    @Test
    void aPeerLeavingMidFrameLosesOnlyThatFrame() throws Exception {
        run((n, peer) -> {
            postBuffers(n, 4);
            byte[] whole = new byte[1000];
            new Random(1).nextBytes(whole);
            peer.send(whole);
            assertThat(n.await(NetDriver.RX, 1, true)).isTrue();
            assertThat(n.c.memread(RX_BUFS + 12, 1000)).isEqualTo(whole);
            n.c.memset(RX_BUFS, 4096, 0xee);
            peer.sendRaw(ByteBuffer.allocate(4 + 3000).putInt(6000).put(new byte[3000]).flip());
            peer.disconnect();
            assertThat(awaitLinkDown(n)).as("link down when the peer leaves").isTrue();
            assertThat(n.usedIdx(NetDriver.RX)).as("the half frame is not delivered").isEqualTo(1);
            for (int i = 1; i < 4; i++) {
                assertThat(n.c.memread(RX_BUFS + 0x10000L * i, 4096)).containsOnly((byte) 0xee);
            }
        });
    }

    @Test
    void hostileTransmitChainsAreDroppedOrSentWithoutBreakingAnything() throws Exception {
        run((n, peer) -> {
            List<List<Buf>> chains = new ArrayList<>();
            chains.add(List.of(new Buf(TX_BUFS, 12, false)));                                   // empty frame
            chains.add(List.of(new Buf(TX_BUFS, 12, false), new Buf(TX_BUFS + 12, 70_000, false))); // too long
            chains.add(List.of(new Buf(TX_BUFS, 12, false), new Buf(VirtioDriver.ISR, 64, false))); // own registers
            chains.add(List.of(new Buf(TX_BUFS, 12, false), new Buf(0xf000_0000L, 64, false)));    // nothing there
            byte[] good = new byte[600];
            new Random(2).nextBytes(good);
            n.c.memwrite(TX_BUFS + 0x100000, ByteBuffer.allocate(612).put(new byte[12]).put(good).array());
            chains.add(List.of(new Buf(TX_BUFS + 0x100000, 612, false)));
            for (List<Buf> chain : chains) {
                n.submit(NetDriver.TX, chain);
            }
            n.kick(NetDriver.TX);
            assertThat(n.await(NetDriver.TX, chains.size(), false)).as("every chain used").isTrue();
            for (int i = 0; i < chains.size(); i++) {
                assertThat(n.usedLen(NetDriver.TX, i)).isZero();
            }
            assertThat(n.d.status() & 0x40).as("no NEEDS_RESET").isZero();
            List<byte[]> received = new ArrayList<>();
            byte[] f;
            while ((f = peer.receive(2000)) != null) {
                received.add(f);
            }
            assertThat(received).isNotEmpty();
            assertThat(received.getLast()).as("the good frame after the hostile ones").isEqualTo(good);
            for (byte[] r : received) {
                assertThat(r.length).isBetween(1, 65535);
            }
            assertThat(received.size()).as("empty and too-long frames are dropped").isLessThanOrEqualTo(4);
            // the ISR was not read (and cleared) by the device's own DMA
            assertThat(n.c.irq(NetDriver.IRQ)).isTrue();
            assertThat(n.d.read(VirtioDriver.ISR, 1)).isEqualTo(1);
        });
    }
}
