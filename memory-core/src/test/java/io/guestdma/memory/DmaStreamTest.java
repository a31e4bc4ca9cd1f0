package io.guestdma.memory;

import static io.guestdma.memory.DmaDirection.FROM_DEVICE;
import static io.guestdma.memory.DmaDirection.TO_DEVICE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class DmaStreamTest {

    @Test
    void ramListMapsInOneChunk() {
        try (GuestMemory mem = GuestMemory.ofRam(0x100000)) {
            for (int i = 0; i < 0x3000; i++) {
                mem.writeByte(0x10000 + i, (byte) i);
            }
            SgList sg = new SgList().add(0x10000, 0x1000).add(0x11000, 0x2000);
            DmaStream stream = new DmaStream(mem);
            stream.start(sg, TO_DEVICE, 512);
            assertThat(stream.mapNext(Long.MAX_VALUE)).isEqualTo(0x3000);
            assertThat(stream.done()).isTrue();
            byte[] flat = stream.iov().toByteArray();
            for (int i = 0; i < 0x3000; i++) {
                assertThat(flat[i]).isEqualTo((byte) i);
            }
            stream.unmapChunk(0x3000);
            assertThat(stream.position()).isEqualTo(0x3000);
            assertThat(mem.liveMappings()).isZero();
        }
    }

    /**
     * RAM of 0x300 bytes then MMIO: the bounce pool (4096) limits the chunk to 0x300 + 4096 bytes,
     * which is not a multiple of 512. The aligned part must be kept and the remainder dropped —
     * QEMU kept the remainder and dropped the aligned part for years (gitlab #259).
     */
    @Test
    void chunksAreTrimmedToTheAlignmentKeepingTheAlignedPart() {
        RecordingDevice dev = new RecordingDevice(0x4000, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x10000).mmio("dev", 0x20000, 0x4000, dev).build()) {
            SgList sg = new SgList().add(0x100, 0x300).add(0x20000, 0x2000).add(0x1000, 0x100);
            DmaStream stream = new DmaStream(mem);
            stream.start(sg, FROM_DEVICE, 512);
            long first = stream.mapNext(Long.MAX_VALUE);
            assertThat(first).isEqualTo(0x1200); // 0x300 RAM + 0x1000 bounce = 0x1300 -> aligned down to 0x1200
            assertThat(stream.iov().size()).isEqualTo(first);
            assertThat(mem.bouncePool().bytesInFlight()).as("bounce kept for the aligned part").isLessThanOrEqualTo(4096);
            stream.iov().fill(0, (byte) 0xab, first);
            stream.unmapChunk(first);
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
            long second = stream.mapNext(Long.MAX_VALUE);
            assertThat(second).as("continues exactly after the aligned part").isEqualTo(0x1000);
            stream.iov().fill(0, (byte) 0xcd, second);
            stream.unmapChunk(second);
            long third = stream.mapNext(Long.MAX_VALUE);
            assertThat(third).as("the last chunk reaches the end of the list: no trim").isEqualTo(0x200);
            stream.iov().fill(0, (byte) 0xef, third);
            stream.unmapChunk(third);
            assertThat(stream.done()).isTrue();
            assertThat(stream.position()).isEqualTo(sg.size());
            // every byte written exactly once, in order
            byte[] ram = new byte[0x300];
            mem.read(0x100, ram, 0, ram.length);
            assertThat(ram).containsOnly((byte) 0xab);
            assertThat(dev.registers[0xeff]).isEqualTo((byte) 0xab);
            assertThat(dev.registers[0xf00]).isEqualTo((byte) 0xcd);
            assertThat(dev.registers[0x1eff]).isEqualTo((byte) 0xcd);
            assertThat(dev.registers[0x1f00]).isEqualTo((byte) 0xef);
            assertThat(mem.readByte(0x10ff)).isEqualTo((byte) 0xef);
        }
    }

    @Test
    void exhaustedPoolGivesZeroAndTheStreamContinuesLater() {
        RecordingDevice dev = new RecordingDevice(0x4000, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x20000, 0x4000, dev).build()) {
            DmaMapping hog = (DmaMapping) mem.map(0x20000, 4096, TO_DEVICE);
            SgList sg = new SgList().add(0x21000, 0x800);
            DmaStream stream = new DmaStream(mem);
            stream.start(sg, TO_DEVICE, 512);
            assertThat(stream.mapNext(Long.MAX_VALUE)).isZero();
            assertThat(stream.done()).isFalse();
            boolean[] woken = new boolean[1];
            mem.registerMapClient(Runnable::run, () -> woken[0] = true);
            mem.unmap(hog, 0);
            assertThat(woken[0]).isTrue();
            assertThat(stream.mapNext(Long.MAX_VALUE)).isEqualTo(0x800);
            stream.unmapChunk(0x800);
            assertThat(stream.done()).isTrue();
        }
    }

    @Test
    void maxBytesLimitsAChunkAndAbandonRewinds() {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            SgList sg = new SgList().add(0, 0x1000).add(0x4000, 0x1000);
            DmaStream stream = new DmaStream(mem);
            stream.start(sg, FROM_DEVICE, 512);
            assertThat(stream.mapNext(0x1800)).isEqualTo(0x1800);
            stream.abandonChunk();
            assertThat(stream.position()).isZero();
            assertThat(stream.mapNext(0x1800)).isEqualTo(0x1800);
            assertThatThrownBy(() -> stream.mapNext(1)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("still mapped");
            assertThatThrownBy(() -> stream.unmapChunk(0x1801)).isInstanceOf(IllegalArgumentException.class);
            stream.unmapChunk(0x1800);
            assertThat(stream.mapNext(Long.MAX_VALUE)).isEqualTo(0x800);
            stream.unmapChunk(0x800);
            assertThat(stream.done()).isTrue();
        }
    }

    @Test
    void partialAccessLenWritesBackOnlyThatMuch() {
        RecordingDevice dev = new RecordingDevice(0x1000, 1, 8);
        Arrays.fill(dev.registers, (byte) 0x77);
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x20000, 0x1000, dev).build()) {
            DmaStream stream = new DmaStream(mem);
            stream.start(new SgList().add(0x20000, 0x400), FROM_DEVICE, 512);
            long n = stream.mapNext(Long.MAX_VALUE);
            stream.iov().fill(0, (byte) 0, n);
            stream.unmapChunk(0x200);
            assertThat(dev.registers[0x1ff]).isZero();
            assertThat(dev.registers[0x200]).isEqualTo((byte) 0x77);
        }
    }

    @Test
    void alignmentLargerThanThePoolIsRejected() {
        try (GuestMemory mem = GuestMemory.builder().ram("r", 0, 0x1000).bouncePoolBytes(256).build()) {
            DmaStream stream = new DmaStream(mem);
            assertThatThrownBy(() -> stream.start(new SgList().add(0, 512), TO_DEVICE, 512))
                    .hasMessageContaining("exceeds the bounce pool");
            assertThatThrownBy(() -> stream.start(new SgList(), TO_DEVICE, 3)).hasMessageContaining("power of two");
        }
    }

    @Test
    void ramChunksMarkExactlyTheAccessedPagesDirty() {
        try (GuestMemory mem = GuestMemory.ofRam(0x100000)) {
            DirtyLog.Client log = mem.dirtyLog().register("migration");
            log.getAndClear(0, 0x100000);
            SgList sg = new SgList().add(0x20000, 0x1000).add(0x40000, 0x3000);
            DmaStream stream = new DmaStream(mem);
            stream.start(sg, FROM_DEVICE, 512);
            assertThat(stream.mapNext(Long.MAX_VALUE)).isEqualTo(0x4000);
            stream.iov().fill(0, (byte) 1, 0x4000);
            // The device wrote only 0x1200 bytes: the first piece and 0x200 of the second.
            stream.unmapChunk(0x1200);
            assertThat(log.isDirty(0x20000)).isTrue();
            assertThat(log.isDirty(0x40000)).isTrue();
            assertThat(log.isDirty(0x41000)).as("past accessLen").isFalse();
            assertThat(log.dirtyPages()).isEqualTo(2);
        }
    }

    @Test
    void aRegionRemovedWhileAChunkIsMappedStaysValidUntilTheChunkIsUnmapped() {
        try (GuestMemory mem = GuestMemory.builder().ram("low", 0, 0x10000).ram("high", 0x10000, 0x10000).build()) {
            SgList sg = new SgList().add(0x10000, 0x2000);
            DmaStream stream = new DmaStream(mem);
            stream.start(sg, FROM_DEVICE, 512);
            assertThat(stream.mapNext(Long.MAX_VALUE)).isEqualTo(0x2000);
            assertThat(mem.liveMappings()).isEqualTo(1);
            var removed = mem.removeRegion("high");
            assertThat(removed).as("removal waits for the chunk's lease").isNotDone();
            stream.iov().fill(0, (byte) 7, 0x2000);
            stream.unmapChunk(0x2000);
            assertThat(removed).isDone();
            assertThat(mem.liveMappings()).isZero();
        }
    }

    @Test
    void ramPiecesAreRangesOfGuestMemoryWithTheDirectionsAccess() {
        try (GuestMemory mem = GuestMemory.ofRam(0x100000)) {
            mem.writeInt(0x30000, 0x0badcafe);
            SgList sg = new SgList().add(0x20000, 0x1000).add(0x30000, 0x1000);
            DmaStream stream = new DmaStream(mem);
            for (int round = 0; round < 2; round++) {
                stream.start(sg, TO_DEVICE, 512);
                stream.mapNext(Long.MAX_VALUE);
                IoVector iov = stream.iov();
                assertThat(iov.count()).isEqualTo(2);
                assertThat(iov.isReadOnly(1)).as("TO_DEVICE: the device only reads").isTrue();
                assertThat(iov.length(1)).isEqualTo(0x1000);
                assertThat(iov.segment(1).get(ValueLayout.JAVA_INT_UNALIGNED, 0)).as("guest memory itself")
                        .isEqualTo(0x0badcafe);
                assertThat(iov.address(1) - iov.address(0)).as("the pieces sit where the RAM puts them")
                        .isEqualTo(0x10000);
                stream.unmapChunk(0x2000);
            }
            stream.start(sg, FROM_DEVICE, 512);
            stream.mapNext(Long.MAX_VALUE);
            assertThat(stream.iov().isReadOnly(1)).as("a FROM_DEVICE chunk gets writable memory").isFalse();
            stream.unmapChunk(0);
        }
    }
}
