package io.guestdma.virtio;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.virtio.GuestDriver.Buf;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Rings a driver must not write: each breaks the device (NEEDS_RESET), and nothing else happens. */
class HostileRingTest {
    static final long HDR = 0x200000;
    static final long STATUS = 0x201000;
    static final long DATA = 0x300000;

    @TempDir
    Path dir;
    GuestMemory memory;
    BlockBackend backend;
    VirtioBlk blk;
    VirtioPci pci;
    GuestDriver driver;

    @BeforeEach
    void start() throws IOException {
        Path file = dir.resolve("disk.img");
        Files.write(file, new byte[1 << 20]);
        backend = FileChannelBackend.open(file, BlockOptions.defaults());
        memory = GuestMemory.ofRam(16 << 20);
        DeviceAddressSpace dev = memory.deviceSpace("virtio-blk");
        blk = new VirtioBlk(dev, backend, VirtioBlkConfig.defaults());
        pci = new VirtioPci(blk, dev, level -> { }, 0);
        driver = new GuestDriver(pci, memory).start(VirtioPci.F_VERSION_1 | VirtioPci.F_INDIRECT_DESC, 1, 16);
        memory.writeInt(HDR, VirtioBlk.T_IN);
        memory.writeLong(HDR + 8, 0);
        memory.writeByte(STATUS, (byte) 0x55);
    }

    @AfterEach
    void close() throws IOException {
        blk.close();
        backend.close();
        assertThat(memory.liveMappings()).isZero();
        memory.close();
    }

    void expectBroken(Consumer<GuestDriver> hostile) {
        hostile.accept(driver);
        driver.notify(0);
        driver.awaitNeedsReset();
        assertThat(driver.usedIdx(0)).isZero();
        assertThat(memory.readByte(STATUS)).isEqualTo((byte) 0x55);
        assertThat(driver.bar.read(VirtioPci.ISR, 1)).isEqualTo(3); // a configuration change
        // A broken device ignores notifications until reset; then it works again.
        driver.notify(0);
        driver.common(0x14, 1, 0);
        driver.start(VirtioPci.F_VERSION_1 | VirtioPci.F_INDIRECT_DESC, 1, 16);
        driver.submit(0, List.of(new Buf(HDR, 16, false), new Buf(DATA, 512, true), new Buf(STATUS, 1, true)));
        driver.notify(0);
        driver.awaitUsed(0, 1);
        assertThat(memory.readByte(STATUS)).isZero();
    }

    long desc(int i) {
        return driver.desc(0) + 16L * i;
    }

    @Test
    void loopInChain() {
        expectBroken(d -> {
            int head = d.place(0, List.of(new Buf(HDR, 16, false), new Buf(DATA, 512, true)));
            memory.writeShort(desc(head + 1) + 12, (short) (Virtqueue.DESC_F_NEXT | Virtqueue.DESC_F_WRITE));
            memory.writeShort(desc(head + 1) + 14, (short) head);
            d.offer(0, head);
        });
    }

    @Test
    void nextOutsideTable() {
        expectBroken(d -> {
            int head = d.place(0, List.of(new Buf(HDR, 16, false), new Buf(STATUS, 1, true)));
            memory.writeShort(desc(head) + 14, (short) 16);
            d.offer(0, head);
        });
    }

    @Test
    void headOutsideTable() {
        expectBroken(d -> d.offer(0, 300));
    }

    @Test
    void availIndexTooFarAhead() {
        expectBroken(d -> memory.writeShort(d.avail(0) + 2, (short) 17));
    }

    @Test
    void zeroLengthBuffer() {
        expectBroken(d -> d.submit(0, List.of(new Buf(HDR, 16, false), new Buf(DATA, 0, true), new Buf(STATUS, 1, true))));
    }

    @Test
    void readableAfterWritable() {
        expectBroken(d -> d.submit(0, List.of(new Buf(HDR, 16, false), new Buf(STATUS, 1, true), new Buf(DATA, 512, false))));
    }

    @Test
    void indirectTableOfBadLength() {
        expectBroken(d -> {
            int head = d.place(0, List.of(new Buf(0x400000, 24, false)));
            memory.writeShort(desc(head) + 12, (short) Virtqueue.DESC_F_INDIRECT);
            d.offer(0, head);
        });
    }

    @Test
    void indirectTableInUnassignedSpace() {
        expectBroken(d -> {
            int head = d.place(0, List.of(new Buf(0x7000_0000L, 48, false)));
            memory.writeShort(desc(head) + 12, (short) Virtqueue.DESC_F_INDIRECT);
            d.offer(0, head);
        });
    }

    @Test
    void indirectLoop() {
        expectBroken(d -> {
            long table = 0x400000;
            memory.writeLong(table, HDR);
            memory.writeInt(table + 8, 16);
            memory.writeShort(table + 12, (short) Virtqueue.DESC_F_NEXT);
            memory.writeShort(table + 14, (short) 0);
            int head = d.place(0, List.of(new Buf(table, 16, false)));
            memory.writeShort(desc(head) + 12, (short) Virtqueue.DESC_F_INDIRECT);
            d.offer(0, head);
        });
    }

    @Test
    void buffersOverFourGigabytes() {
        expectBroken(d -> d.submit(0, List.of(new Buf(HDR, 16, false), new Buf(DATA, -1, true), new Buf(DATA, -1, true),
                new Buf(STATUS, 1, true))));
    }

    @Test
    void bufferWrappingPastTheTop() {
        expectBroken(d -> d.submit(0, List.of(new Buf(HDR, 16, false), new Buf(-256, 512, true), new Buf(STATUS, 1, true))));
    }

    @Test
    void headerMissing() {
        expectBroken(d -> d.submit(0, List.of(new Buf(STATUS, 1, true))));
    }

    @Test
    void ringInUnassignedSpace() {
        driver.common(0x16, 2, 0);
        driver.common(0x20, 4, 0x7000_0000L);
        driver.common(0x1c, 2, 1);
        driver.awaitNeedsReset();
    }

    @Test
    void queueSizeNotAPowerOfTwo() {
        driver.common(0x14, 1, 0);
        driver.start(VirtioPci.F_VERSION_1, 0, 16);
        driver.common(0x16, 2, 0);
        driver.common(0x18, 2, 100);
        assertThat(driver.common(0x18, 2)).isEqualTo(100);
        driver.common(0x20, 4, driver.desc(0));
        driver.common(0x28, 4, driver.avail(0));
        driver.common(0x30, 4, driver.used(0));
        driver.common(0x1c, 2, 1);
        driver.awaitNeedsReset();
    }

    @Test
    void queueEnableWithAnotherValue() {
        driver.common(0x1c, 2, 2);
        driver.awaitNeedsReset();
    }
}
