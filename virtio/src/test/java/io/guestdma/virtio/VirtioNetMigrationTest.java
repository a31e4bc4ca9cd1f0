package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.migration.StateReader;
import io.guestdma.net.NetBackend;
import io.guestdma.virtio.GuestDriver.Buf;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * virtio-net migrated between two devices over loopback backends: the receive and transmit rings
 * continue where the source left them (a receive buffer posted and not yet used included), and a
 * destination whose link differs from what the guest saw tells the guest with a configuration
 * interrupt.
 */
class VirtioNetMigrationTest {
    static final long RAM = 32 << 20;
    static final long TX_BUF = 0x400000;
    static final long RX_BUF = 0x800000;

    /** One side: RAM, a backend, the device and its transport, a driver. */
    static final class Side implements AutoCloseable {
        final GuestMemory memory = GuestMemory.ofRam(RAM);
        final NetBackend backend;
        final VirtioNet net;
        final VirtioPci pci;
        final AtomicBoolean intx = new AtomicBoolean();
        final GuestDriver driver;

        Side(NetBackend backend) {
            this.backend = backend;
            DeviceAddressSpace dev = memory.deviceSpace("virtio-net");
            net = new VirtioNet(dev, backend, VirtioNetTest.MAC, 256, 256, false);
            pci = new VirtioPci(net, dev, intx::set, 0);
            driver = new GuestDriver(pci, memory);
        }

        void transmit(byte[] frame) {
            memory.fill(TX_BUF, 12, (byte) 0);
            memory.write(TX_BUF + 12, MemorySegment.ofArray(frame));
            driver.submit(VirtioNet.TX, List.of(new Buf(TX_BUF, 12, false), new Buf(TX_BUF + 12, frame.length, false)));
            driver.notify(VirtioNet.TX);
        }

        void awaitIdle() {
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (!net.isIdle()) {
                assertThat(System.nanoTime()).isLessThan(deadline);
                Thread.onSpinWait();
            }
        }

        byte[] ram() {
            byte[] b = new byte[(int) RAM];
            memory.read(0, b, 0, b.length);
            return b;
        }

        @Override
        public void close() {
            net.close();
            backend.close();
            memory.close();
        }
    }

    @Test
    void ringsContinueOnTheDestination() throws Exception {
        Random random = new Random(4);
        try (Side src = new Side(VirtioNetTest.loopback())) {
            src.driver.start(VirtioNetTest.MRG, 3, 64);
            src.driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF, 2048, true)));
            src.driver.submit(VirtioNet.RX, List.of(new Buf(RX_BUF + 0x1000, 2048, true)));
            src.driver.notify(VirtioNet.RX);
            src.transmit(VirtioNetTest.frame(random, 600));
            src.driver.awaitUsed(VirtioNet.RX, 1);
            src.driver.awaitUsed(VirtioNet.TX, 1);
            src.awaitIdle();
            byte[] section = VirtioMigrationTest.save(src.pci.migrationState("virtio-net@05.0"));
            try (Side dst = new Side(VirtioNetTest.loopback())) {
                dst.memory.write(0, src.ram(), 0, (int) RAM);
                StateReader in = new StateReader("virtio-net@05.0", section);
                dst.pci.migrationState("virtio-net@05.0").load(in, 1);
                in.expectEnd();
                dst.driver.continuing(src.driver);
                assertThat(dst.net.mac()).isEqualTo(src.net.mac());
                assertThat(dst.pci.queue(VirtioNet.RX).lastAvailIndex()).isEqualTo(1);
                assertThat(dst.pci.queue(VirtioNet.TX).usedIndex()).isEqualTo(1);
                byte[] next = VirtioNetTest.frame(random, 900);
                for (Side side : List.of(src, dst)) {
                    side.transmit(next);
                    side.driver.awaitUsed(VirtioNet.TX, 2);
                    side.driver.awaitUsed(VirtioNet.RX, 2);
                    side.awaitIdle();
                }
                assertThat(dst.driver.usedId(VirtioNet.RX, 1)).isEqualTo(src.driver.usedId(VirtioNet.RX, 1));
                byte[] got = new byte[900];
                dst.memory.read(RX_BUF + 0x1000 + 12, got, 0, 900);
                assertThat(got).as("the frame landed in the buffer posted before migration").isEqualTo(next);
                assertThat(dst.ram()).isEqualTo(src.ram());
                assertThat(dst.intx.get()).isEqualTo(src.intx.get());
            }
        }
    }

    @Test
    void aLinkThatDiffersOnTheDestinationRaisesAConfigurationInterrupt() throws Exception {
        try (Side src = new Side(VirtioNetTest.loopback())) {
            src.driver.start(VirtioNetTest.MRG, 3, 64);
            src.awaitIdle();
            byte[] section = VirtioMigrationTest.save(src.pci.migrationState("n"));
            VirtioNetTest.Switchable down = new VirtioNetTest.Switchable();
            down.set(false);
            try (Side dst = new Side(down)) {
                dst.memory.write(0, src.ram(), 0, (int) RAM);
                dst.pci.migrationState("n").load(new StateReader("n", section), 1);
                long deadline = System.nanoTime() + 10_000_000_000L;
                while (!dst.intx.get()) {
                    assertThat(System.nanoTime()).as("a configuration interrupt").isLessThan(deadline);
                    Thread.onSpinWait();
                }
                assertThat(dst.pci.modernBar().read(VirtioPci.ISR, 1)).isEqualTo(3);
                assertThat(dst.pci.modernBar().read(VirtioPci.DEVICE + 6, 2)).as("link down").isZero();
            }
        }
    }
}
