package io.guestdma.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.conformance.VirtioDriver.Buf;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * virtio-net-pci against QEMU 7.2: each machine gets
 * {@code -netdev socket,id=n0,connect=127.0.0.1:PORT -device virtio-net-pci,netdev=n0,...} with a
 * test {@link NetPeer} at the other end, and the same register-level script. Frames the peer sends
 * must land in the guest's receive buffers identically (headers, num_buffers, used ids and lengths,
 * bytes, interrupts), frames the guest transmits must reach the peer identically, and the PCI
 * function (IDs, BARs, capabilities, features, configuration) must look the same.
 *
 * <p>QEMU's device is given {@code romfile=} and its control-queue features off, which is what
 * ours offers (see VirtioNetPciType).
 */
class VirtioNetConformanceTest {
    static final String DEVICE = "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,addr=04.0,romfile=,ctrl_vq=off,"
            + "ctrl_rx=off,ctrl_vlan=off,ctrl_rx_extra=off,ctrl_mac_addr=off,ctrl_guest_offloads=off,"
            + "guest_announce=off,mq=off";
    static final long F_MAC = 1L << 5;
    static final long F_MRG = 1L << 15;
    static final long F_STATUS = 1L << 16;
    static final long F_EVENT_IDX = 1L << 29;
    static final long F_VERSION_1 = 1L << 32;
    static final long RX_BUFS = 0x1000000;
    static final long TX_BUFS = 0x2800000;

    @FunctionalInterface
    interface Script {
        void run(NetDriver d, NetPeer peer, Observations log) throws Exception;
    }

    static List<String> run(Target target, String deviceOptions, Script script) throws Exception {
        Observations log = new Observations();
        try (NetPeer peer = new NetPeer()) {
            List<String> args = List.of("-m", "64M", "-netdev", peer.netdev("n0"), "-device", DEVICE + deviceOptions);
            try (QtestClient client = target.startWith(args)) {
                peer.accept();
                script.run(new NetDriver(new VirtioDriver(client)), peer, log);
            }
        }
        return log.lines();
    }

    static void assertSame(String context, String deviceOptions, Script script) throws Exception {
        QemuTarget qemu = QemuTarget.require();
        List<String> expected = run(qemu, deviceOptions, script);
        for (Target ours : Targets.oursDefault()) {
            List<String> actual = run(ours, deviceOptions, script);
            Conformance.assertSameLog(new Conformance.Run("qemu", expected, null),
                    new Conformance.Run(ours.name(), actual, null), context);
        }
    }

    // ------------------------------------------------------------------ identity and layout

    @ParameterizedTest
    @ValueSource(strings = {"", ",vectors=0", ",rx_queue_size=1024"})
    void pciFunctionLooksTheSame(String options) throws Exception {
        assertSame("identity" + options, options, (n, peer, log) -> {
            VirtioDriver d = n.d;
            d.logConfigurationAndBarSizes(log);
            d.plugIn(!options.contains("vectors=0"));
            for (int sel = 0; sel < 3; sel++) {
                d.write(VirtioDriver.COMMON, 4, sel);
                log.hex("device_feature[" + sel + "]", d.read(VirtioDriver.COMMON + 4, 4));
            }
            for (int off = 0; off < 0x40; off += 2) {
                log.hex(String.format("common[%02x]", off), d.read(VirtioDriver.COMMON + off, 2));
            }
            for (int q = 0; q < 4; q++) {
                d.write(VirtioDriver.COMMON + 0x16, 2, q);
                log.hex("queue " + q + " size", d.read(VirtioDriver.COMMON + 0x18, 2));
            }
            for (int off = 0; off < 16; off++) {
                log.hex(String.format("device[%02x]", off), d.read(VirtioDriver.DEVICE + off, 1));
            }
            log.hex("device readl 0", d.read(VirtioDriver.DEVICE, 4));
            log.hex("device readw 6", d.read(VirtioDriver.DEVICE + 6, 2));
            d.write(VirtioDriver.DEVICE, 1, 0x99);
            log.hex("mac[0] after a write", d.read(VirtioDriver.DEVICE, 1));
            log.hex("isr", d.read(VirtioDriver.ISR, 1));
        });
    }

    // ------------------------------------------------------------------ receive

    /** The driver's model of which posted chains a frame takes (QEMU's and ours must agree). */
    static final class RxModel {
        final Deque<Integer> posted = new ArrayDeque<>();
        final Deque<Long> addresses = new ArrayDeque<>();
        int used;

        /** Chains a frame of {@code size} takes with MRG_RXBUF, or -1 if the posted ones are too few. */
        int chainsFor(int size) {
            long data = 0;
            int k = 0;
            for (int s : posted) {
                data += k == 0 ? Math.max(0, s - 12) : s;
                k++;
                if (data >= size) {
                    return k;
                }
            }
            return -1;
        }
    }

    /** Posts one receive chain of {@code total} bytes split into 1-3 descriptors at {@code at}. */
    static void postChain(NetDriver n, RxModel model, Random random, long at, int total) {
        List<Buf> bufs = new ArrayList<>();
        int left = total;
        int pieces = total < 3 ? 1 : 1 + random.nextInt(3);
        long address = at;
        for (int i = 0; i < pieces; i++) {
            int len = i + 1 == pieces ? left : 1 + random.nextInt(Math.max(1, left - (pieces - i - 1)) / 2 + 1);
            len = Math.min(len, left - (pieces - i - 1));
            bufs.add(new Buf(address, len, true));
            address += len + 64L * random.nextInt(3); // gaps between the pieces of a chain
            left -= len;
        }
        n.c.memset(at, address - at + 64, 0xee);
        n.submit(NetDriver.RX, bufs);
        model.posted.add(total);
        model.addresses.add(at);
    }

    static byte[] frame(Random random, int size) {
        byte[] f = new byte[size];
        random.nextBytes(f);
        return f;
    }

    static int frameSize(Random random) {
        return switch (random.nextInt(4)) {
            case 0 -> 14 + random.nextInt(50);
            case 1 -> 60 + random.nextInt(1455);
            case 2 -> 1515 + random.nextInt(9000 - 1515);
            default -> 9000 + random.nextInt(65535 - 9000 + 1);
        };
    }

    /** Logs what the driver sees of the last {@code chains} used receive entries, the interrupt, the ISR. */
    static void logReceived(NetDriver n, RxModel model, int chains, Observations log, String label) {
        log.flag(label + " arrived", n.await(NetDriver.RX, model.used + chains, true));
        log.hex(label + " used idx", n.usedIdx(NetDriver.RX));
        for (int i = 0; i < chains; i++) {
            int entry = model.used + i;
            int len = n.usedLen(NetDriver.RX, entry);
            log.hex(label + " used[" + i + "] id", n.usedId(NetDriver.RX, entry));
            log.hex(label + " used[" + i + "] len", len);
            long at = model.addresses.poll();
            model.posted.poll();
            // the chain's bytes as the guest sees them, within the used length (plus a little past it)
            log.bytes(label + " chain " + i, n.c.memread(at, Math.min(len + 16, 70_000)));
        }
        model.used += chains;
        log.flag(label + " irq", n.c.irq(NetDriver.IRQ));
        log.hex(label + " isr", n.d.read(VirtioDriver.ISR, 1));
        log.flag(label + " irq after isr", n.c.irq(NetDriver.IRQ));
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3})
    void receivedFramesLandIdenticallyWithMergeableBuffers(long seed) throws Exception {
        assertSame("rx mrg seed " + seed, "", (n, peer, log) -> {
            Random random = new Random(seed);
            n.start(F_VERSION_1 | F_MAC | F_STATUS | F_MRG | (seed == 3 ? F_EVENT_IDX : 0), 256);
            log.hex("status", n.d.status());
            log.hex("link", n.d.read(VirtioDriver.DEVICE + 6, 2));
            RxModel model = new RxModel();
            long next = RX_BUFS;
            for (int f = 0; f < 12; f++) {
                int size = frameSize(random);
                // post chains of a random size class until the frame fits (sometimes with one to spare)
                int chainBytes = switch (random.nextInt(3)) {
                    case 0 -> 1526;
                    case 1 -> 4096;
                    default -> 64 + random.nextInt(20000);
                };
                boolean spare = random.nextBoolean();
                while (model.chainsFor(size) < 0 || (spare && model.posted.size() == model.chainsFor(size))) {
                    if (next + chainBytes + 512 > TX_BUFS) {
                        next = RX_BUFS;
                    }
                    postChain(n, model, random, next, chainBytes);
                    next += chainBytes + 512;
                    if (model.chainsFor(size) > 0 && spare && model.posted.size() > model.chainsFor(size)) {
                        break;
                    }
                }
                if (seed == 3) {
                    // EVENT_IDX: used_event asks for an interrupt once this frame's chains are used
                    int event = model.used;
                    n.c.memwrite(NetDriver.avail(NetDriver.RX) + 4 + 2 * 256, new byte[] {(byte) event,
                        (byte) (event >> 8)});
                }
                n.kick(NetDriver.RX);
                peer.send(frame(random, size));
                logReceived(n, model, model.chainsFor(size), log, "frame " + f + " (" + size + " bytes)");
            }
            log.hex("used flags", n.usedFlags(NetDriver.RX));
        });
    }

    @Test
    void tooFewBuffersMakeTheFrameWaitThenItLandsWhole() throws Exception {
        assertSame("rx waits", "", (n, peer, log) -> {
            Random random = new Random(11);
            n.start(F_VERSION_1 | F_MAC | F_STATUS | F_MRG, 256);
            RxModel model = new RxModel();
            postChain(n, model, random, RX_BUFS, 2048);
            n.kick(NetDriver.RX);
            byte[] big = frame(random, 6000);
            peer.send(big);
            Thread.sleep(300);
            log.hex("used idx while too few buffers", n.usedIdx(NetDriver.RX));
            log.bytes("first buffer while waiting", n.c.memread(RX_BUFS, 2048));
            log.flag("irq while waiting", n.c.irq(NetDriver.IRQ));
            log.hex("used flags while waiting", n.usedFlags(NetDriver.RX));
            postChain(n, model, random, RX_BUFS + 0x10000, 2048);
            postChain(n, model, random, RX_BUFS + 0x20000, 2048);
            n.kick(NetDriver.RX);
            logReceived(n, model, 3, log, "big frame");
            log.hex("used flags", n.usedFlags(NetDriver.RX));
        });
    }

    @Test
    void withoutMergeableBuffersFramesTakeOneChainAndTooBigOnesAreDropped() throws Exception {
        assertSame("rx no mrg", "", (n, peer, log) -> {
            Random random = new Random(21);
            n.start(F_VERSION_1 | F_MAC | F_STATUS, 256);
            RxModel model = new RxModel();
            for (int f = 0; f < 10; f++) {
                int chain = 64 + random.nextInt(3000);
                postChain(n, model, random, RX_BUFS + 0x10000L * f, chain);
                n.kick(NetDriver.RX);
                if (random.nextBoolean()) {
                    peer.send(frame(random, chain - 12 + 1 + random.nextInt(200))); // one byte too many or more
                }
                int size = 14 + random.nextInt(chain - 12 - 14 + 1);
                peer.send(frame(random, size));
                log.flag("frame " + f + " arrived", n.await(NetDriver.RX, model.used + 1, true));
                int len = n.usedLen(NetDriver.RX, model.used);
                log.hex("frame " + f + " used id", n.usedId(NetDriver.RX, model.used));
                log.hex("frame " + f + " used len", len);
                long at = model.addresses.poll();
                model.posted.poll();
                model.used++;
                // only the used bytes: QEMU writes part of a dropped frame into the chain, we write none
                log.bytes("frame " + f + " bytes", n.c.memread(at, len));
                log.hex("frame " + f + " isr", n.d.read(VirtioDriver.ISR, 1));
            }
        });
    }

    // ------------------------------------------------------------------ transmit

    @ParameterizedTest
    @ValueSource(longs = {1, 2})
    void transmittedFramesReachThePeerIdentically(long seed) throws Exception {
        assertSame("tx seed " + seed, "", (n, peer, log) -> {
            Random random = new Random(seed);
            n.start(F_VERSION_1 | F_MAC | F_STATUS | F_MRG, 256);
            for (int f = 0; f < 12; f++) {
                int size = frameSize(random);
                byte[] frame = frame(random, size);
                byte[] header = new byte[12];
                random.nextBytes(header);
                header[0] = 0; // no NEEDS_CSUM
                header[1] = 0; // GSO_NONE
                byte[] all = ByteBuffer.allocate(12 + size).put(header).put(frame).array();
                n.c.memwrite(TX_BUFS, all);
                // random layout: the header alone or with data, the frame in 1-4 pieces
                List<Buf> bufs = new ArrayList<>();
                int at = 0;
                int first = random.nextBoolean() ? 12 : 12 + random.nextInt(size);
                bufs.add(new Buf(TX_BUFS, first, false));
                at = first;
                while (at < all.length) {
                    int len = Math.min(all.length - at, 1 + random.nextInt(all.length));
                    bufs.add(new Buf(TX_BUFS + at, len, false));
                    at += len;
                }
                n.submit(NetDriver.TX, bufs);
                n.kick(NetDriver.TX);
                byte[] got = peer.receive(10_000);
                log.text("frame " + f + " size at the peer", got == null ? "none" : got.length);
                if (got != null) {
                    log.bytes("frame " + f, got);
                    assertThat(got).isEqualTo(frame);
                }
                log.flag("frame " + f + " used", n.await(NetDriver.TX, f + 1, true));
                log.hex("frame " + f + " used id", n.usedId(NetDriver.TX, f));
                log.hex("frame " + f + " used len", n.usedLen(NetDriver.TX, f));
                log.flag("frame " + f + " irq", n.c.irq(NetDriver.IRQ));
                log.hex("frame " + f + " isr", n.d.read(VirtioDriver.ISR, 1));
            }
        });
    }
}
