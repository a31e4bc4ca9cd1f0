package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.ErrorPolicy;
import io.guestdma.block.FaultInjectingBackend;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.migration.DeviceState;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;
import io.guestdma.virtio.GuestDriver.Buf;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * virtio-blk over the virtio-pci transport migrated: a device with a write held by werror=stop and
 * more requests waiting in its ring is saved; a second device with the same configuration over a
 * copy of RAM and of the image loads the section, re-reads the held chain from the migrated
 * descriptor table and retries it when resumed; both then complete the same requests alike.
 */
class VirtioMigrationTest {
    static final long FEATURES = VirtioPci.F_VERSION_1 | VirtioPci.F_INDIRECT_DESC | VirtioPci.F_EVENT_IDX
            | VirtioBlk.F_FLUSH;
    static final long RAM = 16 << 20;
    static final long DATA = 0x300000;

    @TempDir
    Path dir;

    /** One side: RAM, an image, the device and its transport, and a driver. */
    static final class Side implements AutoCloseable {
        final GuestMemory memory = GuestMemory.ofRam(RAM);
        final FaultInjectingBackend backend;
        final VirtioBlk blk;
        final VirtioPci pci;
        final AtomicBoolean intx = new AtomicBoolean();
        final GuestDriver driver;

        Side(Path image, VirtioBlkConfig config) throws IOException {
            backend = new FaultInjectingBackend(FileChannelBackend.open(image, BlockOptions.defaults()));
            DeviceAddressSpace dev = memory.deviceSpace("virtio-blk");
            blk = new VirtioBlk(dev, backend, config);
            pci = new VirtioPci(blk, dev, intx::set, 0);
            driver = new GuestDriver(pci, memory);
        }

        /** Header at {@code slot}'s area, data, status: offered but not notified. */
        int offer(int slot, int type, long sector, int dataBytes) {
            long hdr = 0x200000 + 0x100L * slot;
            memory.writeInt(hdr, type);
            memory.writeInt(hdr + 4, 0);
            memory.writeLong(hdr + 8, sector);
            memory.writeByte(hdr + 0x20, (byte) 0x55);
            List<Buf> chain = new ArrayList<>();
            chain.add(new Buf(hdr, 16, false));
            if (dataBytes > 0) {
                chain.add(new Buf(DATA + 0x10000L * slot, dataBytes, type == VirtioBlk.T_IN));
            }
            chain.add(new Buf(hdr + 0x20, 1, true));
            return driver.submit(0, chain);
        }

        void awaitIdle() {
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (!blk.isIdle()) {
                assertThat(System.nanoTime()).isLessThan(deadline);
                Thread.onSpinWait();
            }
        }

        /** What a guest sees: RAM, the common configuration, INTx (ISR read last, it clears). */
        List<Long> observe() {
            List<Long> seen = new ArrayList<>();
            for (int offset = 0; offset < 0x38; offset += 4) {
                seen.add(driver.common(offset, 4));
            }
            seen.add(intx.get() ? 1L : 0L);
            return seen;
        }

        byte[] ram() {
            byte[] b = new byte[(int) RAM];
            memory.read(0, b, 0, b.length);
            return b;
        }

        @Override
        public void close() throws IOException {
            blk.close();
            backend.close();
            assertThat(memory.liveMappings()).isZero();
            memory.close();
        }
    }

    private Path image(String name) throws IOException {
        byte[] bytes = new byte[1 << 20];
        new Random(7).nextBytes(bytes);
        return Files.write(dir.resolve(name), bytes);
    }

    static byte[] save(DeviceState state) {
        StateWriter out = new StateWriter();
        state.save(out);
        return out.toByteArray();
    }

    private static void assertSameGuestView(Side a, Side b) {
        assertThat(b.observe()).isEqualTo(a.observe());
        assertThat(b.ram()).isEqualTo(a.ram());
        assertThat(b.pci.modernBar().read(VirtioPci.ISR, 1)).isEqualTo(a.pci.modernBar().read(VirtioPci.ISR, 1));
    }

    @Test
    void aHeldWriteAndWaitingRequestsAreResubmittedOnTheDestination() throws Exception {
        VirtioBlkConfig config = VirtioBlkConfig.defaults().withPolicies(ErrorPolicy.REPORT, ErrorPolicy.STOP);
        Path a = image("a.img");
        try (Side src = new Side(a, config)) {
            src.driver.start(FEATURES, 1, 16);
            // one read completes first
            src.offer(0, VirtioBlk.T_IN, 3, 1024);
            src.driver.notify(0);
            src.driver.awaitUsed(0, 1);
            // a write that the backend fails: werror=stop holds it
            byte[] pattern = new byte[4096];
            new Random(9).nextBytes(pattern);
            src.memory.write(DATA + 0x10000, pattern, 0, pattern.length);
            src.backend.failAt(FaultInjectingBackend.Operation.WRITE, 1, FaultInjectingBackend.Fault.EIO);
            src.offer(1, VirtioBlk.T_OUT, 40, 4096);
            src.driver.notify(0);
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (!src.blk.isStopped()) {
                assertThat(System.nanoTime()).isLessThan(deadline);
                Thread.onSpinWait();
            }
            src.awaitIdle();
            // two more requests waiting in the ring behind it
            src.offer(2, VirtioBlk.T_IN, 40, 4096);
            src.offer(3, VirtioBlk.T_FLUSH, 0, 0);
            src.driver.notify(0);
            src.awaitIdle();
            assertThat(src.driver.usedIdx(0)).isEqualTo(1);

            byte[] section = save(src.pci.migrationState("virtio-blk@04.0"));
            Path b = dir.resolve("b.img");
            Files.copy(a, b, StandardCopyOption.REPLACE_EXISTING);
            try (Side dst = new Side(b, config)) {
                dst.memory.write(0, src.ram(), 0, (int) RAM);
                StateReader in = new StateReader("virtio-blk@04.0", section);
                dst.pci.migrationState("virtio-blk@04.0").load(in, 1);
                in.expectEnd();
                dst.driver.continuing(src.driver);
                assertThat(dst.blk.isStopped()).as("the held write keeps the device stopped").isTrue();
                assertThat(dst.pci.queue(0).inUse()).isEqualTo(1);
                assertSameGuestView(src, dst);

                src.blk.resume();
                dst.blk.resume();
                src.driver.awaitUsed(0, 4);
                dst.driver.awaitUsed(0, 4);
                src.awaitIdle();
                dst.awaitIdle();
                for (int i = 1; i < 4; i++) {
                    assertThat(dst.driver.usedId(0, i)).isEqualTo(src.driver.usedId(0, i));
                    assertThat(dst.driver.usedLen(0, i)).isEqualTo(src.driver.usedLen(0, i));
                }
                assertThat(dst.memory.readByte(0x200120)).as("the retried write's status").isZero();
                byte[] readBack = new byte[4096];
                dst.memory.read(DATA + 0x20000, readBack, 0, 4096);
                assertThat(readBack).as("the waiting read saw the retried write").isEqualTo(pattern);
                assertSameGuestView(src, dst);
                assertThat(Files.readAllBytes(b)).isEqualTo(Files.readAllBytes(a));

                // and the rings go on: one more request on each side
                for (Side side : List.of(src, dst)) {
                    side.offer(4, VirtioBlk.T_IN, 0, 512);
                    side.driver.notify(0);
                    side.driver.awaitUsed(0, 5);
                    side.awaitIdle();
                }
                assertSameGuestView(src, dst);
            }
        }
    }

    @Test
    void versionsQueueCountsAndRingsThatAreNotInRamAreRefused() throws Exception {
        VirtioBlkConfig config = VirtioBlkConfig.defaults();
        Path a = image("a.img");
        try (Side src = new Side(a, config); Side two = new Side(image("b.img"), config.withQueues(2))) {
            src.driver.start(FEATURES, 1, 16);
            byte[] section = save(src.pci.migrationState("s"));
            DeviceState other = two.pci.migrationState("s");
            assertThatThrownBy(() -> other.load(new StateReader("s", section), 2))
                    .isInstanceOf(MigrationFormatException.class).hasMessageContaining("unknown version 2");
            assertThatThrownBy(() -> other.load(new StateReader("s", section), 1))
                    .isInstanceOf(MigrationFormatException.class).hasMessageContaining("1 queues");
            assertThat(two.pci.status()).as("left reset").isZero();
        }
        try (Side src = new Side(a, config); Side small = new Side(image("c.img"), config)) {
            src.driver.start(FEATURES, 1, 16);
            src.offer(0, VirtioBlk.T_IN, 0, 512);
            src.driver.notify(0);
            src.driver.awaitUsed(0, 1);
            byte[] section = save(src.pci.migrationState("s"));
            // the destination's RAM lacks the used index the section says the device wrote
            StateReader in = new StateReader("s", section);
            assertThatThrownBy(() -> small.pci.migrationState("s").load(in, 1))
                    .isInstanceOf(MigrationFormatException.class).hasMessageContaining("used ring in guest memory");
            assertThat(small.pci.queue(0).isEnabled()).isFalse();
        }
    }
}
