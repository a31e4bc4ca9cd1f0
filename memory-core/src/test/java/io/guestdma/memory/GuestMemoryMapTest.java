package io.guestdma.memory;

import static io.guestdma.memory.DmaDirection.FROM_DEVICE;
import static io.guestdma.memory.DmaDirection.TO_DEVICE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

class GuestMemoryMapTest {

    private static DmaMapping mapped(MapResult r) {
        assertThat(r).isInstanceOf(DmaMapping.class);
        return (DmaMapping) r;
    }

    @Test
    void ramMapIsZeroCopy() {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            DmaMapping m = mapped(mem.map(0x1000, 0x800, FROM_DEVICE));
            assertThat(m.bounced()).isFalse();
            assertThat(m.length()).isEqualTo(0x800);
            m.segment().set(ValueLayout.JAVA_INT_UNALIGNED, 0, 0xdeadbeef);
            // visible through the copy path before unmap: the segment IS guest RAM
            assertThat(mem.readInt(0x1000)).isEqualTo(0xdeadbeef);
            mem.unmap(m, 4);
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
        }
    }

    @Test
    void toDeviceMappingsAreReadOnly() {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            mem.writeInt(0x100, 77);
            DmaMapping m = mapped(mem.map(0x100, 16, TO_DEVICE));
            assertThat(m.segment().isReadOnly()).isTrue();
            assertThat(m.segment().get(ValueLayout.JAVA_INT_UNALIGNED, 0)).isEqualTo(77);
            assertThatThrownBy(() -> m.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 1))
                    .isInstanceOf(IllegalArgumentException.class);
            mem.unmap(m, 16);
        }
    }

    @Test
    void mapStopsWhereRamEndsAndTheRestIsBounced() {
        RecordingDevice dev = new RecordingDevice(0x1000, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).mmio("dev", 0x1000, 0x1000, dev).build()) {
            DmaMapping first = mapped(mem.map(0xc00, 0x800, FROM_DEVICE));
            assertThat(first.bounced()).isFalse();
            assertThat(first.length()).as("a map never crosses from RAM into MMIO").isEqualTo(0x400);
            DmaMapping second = mapped(mem.map(0x1000, 0x400, FROM_DEVICE));
            assertThat(second.bounced()).isTrue();
            assertThat(mem.bouncePool().bytesInFlight()).isEqualTo(0x400);
            mem.unmap(first, 0);
            mem.unmap(second, 0);
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
        }
    }

    @Test
    void adjacentRamRegionsContiguousInTheBackingMapAsOnePiece() {
        try (GuestMemory mem = GuestMemory.builder().ram("a", 0, 0x1000).ram("b", 0x1000, 0x1000)
                .ram("c", 0x2000, 0x1000, 0x4000).build()) {
            DmaMapping m = mapped(mem.map(0x800, 0x2000, TO_DEVICE));
            assertThat(m.bounced()).isFalse();
            assertThat(m.length()).as("a and b are contiguous in the backing; c is not").isEqualTo(0x1800);
            mem.unmap(m, 0);
        }
    }

    @Test
    void lengthZeroIsRejectedAndRangesPastTwoToThe64AreCut() {
        try (GuestMemory mem = GuestMemory.builder().ram("top", -0x1000L, 0x1000).build()) {
            assertThatThrownBy(() -> mem.map(0, 0, TO_DEVICE)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("at least 1");
            assertThatThrownBy(() -> mem.map(0, -5, TO_DEVICE)).isInstanceOf(IllegalArgumentException.class);
            DmaMapping m = mapped(mem.map(-0x10L, 0x100, FROM_DEVICE));
            assertThat(m.length()).as("cut at the top of the address space, never wrapped to 0").isEqualTo(0x10);
            assertThat(m.bounced()).isFalse();
            mem.unmap(m, 0x10);
            // unassigned near the top: bounced, also cut at 2^64
            DmaMapping u = mapped(mem.map(-0x1010L, Long.MAX_VALUE, TO_DEVICE));
            assertThat(u.bounced()).isTrue();
            assertThat(u.length()).isEqualTo(0x10);
            mem.unmap(u, 0);
        }
    }

    @Test
    void partialWriteThroughABounceBufferLeavesGuestBytesPastAccessLenUntouched() {
        RecordingDevice dev = new RecordingDevice(0x100, 1, 8);
        Arrays.fill(dev.registers, (byte) 0xee);
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x1000, 0x100, dev).build()) {
            DmaMapping m = mapped(mem.map(0x1000, 0x100, FROM_DEVICE));
            assertThat(m.bounced()).isTrue();
            m.segment().fill((byte) 0x11);
            mem.unmap(m, 10);
            for (int i = 0; i < 0x100; i++) {
                assertThat(dev.registers[i]).as("register %d", i).isEqualTo(i < 10 ? (byte) 0x11 : (byte) 0xee);
            }
        }
    }

    @Test
    void toDeviceBounceIsFilledFromTheDeviceAtMapTime() {
        RecordingDevice dev = new RecordingDevice(0x100, 4, 4);
        for (int i = 0; i < 0x100; i++) {
            dev.registers[i] = (byte) i;
        }
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x1000, 0x100, dev).build()) {
            DmaMapping m = mapped(mem.map(0x1010, 0x20, TO_DEVICE));
            assertThat(m.segment().isReadOnly()).isTrue();
            for (int i = 0; i < 0x20; i++) {
                assertThat(m.segment().get(ValueLayout.JAVA_BYTE, i)).isEqualTo((byte) (0x10 + i));
            }
            mem.unmap(m, 0x20);
            assertThat(dev.drain()).allMatch(a -> !a.write());
        }
    }

    @Test
    void unassignedMapsBounceReadZeroAndDropWrites() {
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).ram("ram2", 0x3000, 0x1000).build()) {
            DmaMapping r = mapped(mem.map(0x1000, 0x4000, TO_DEVICE));
            assertThat(r.bounced()).isTrue();
            assertThat(r.length()).as("the 0x2000-byte gap, limited by the 4096-byte pool").isEqualTo(4096);
            assertThat(MemorySegment.mismatch(r.segment(), 0, r.length(), MemorySegment.ofArray(new byte[(int) r.length()]), 0, r.length()))
                    .isEqualTo(-1);
            mem.unmap(r, r.length());
            DmaMapping w = mapped(mem.map(0x2ff0, 0x20, FROM_DEVICE));
            assertThat(w.length()).isEqualTo(0x10);
            w.segment().fill((byte) 9);
            mem.unmap(w, 0x10);
            assertThat(mem.readByte(0x3000)).isZero();
        }
    }

    @Test
    void bouncePoolIsBoundedAndAllowsManyConcurrentMappings() {
        RecordingDevice dev = new RecordingDevice(0x10000, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x10000, 0x10000, dev).build()) {
            List<DmaMapping> live = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                live.add(mapped(mem.map(0x10000 + i * 0x1000L, 1000, FROM_DEVICE)));
            }
            assertThat(mem.bouncePool().bytesInFlight()).isEqualTo(4000);
            DmaMapping shortOne = mapped(mem.map(0x18000, 1000, FROM_DEVICE));
            assertThat(shortOne.length()).as("what is left of the 4096-byte pool").isEqualTo(96);
            MapResult none = mem.map(0x19000, 1000, FROM_DEVICE);
            assertThat(none).isInstanceOf(BounceExhausted.class);
            assertThat(((BounceExhausted) none).inFlight()).isEqualTo(4096);
            mem.unmap(shortOne, 0);
            for (DmaMapping m : live) {
                mem.unmap(m, 0);
            }
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
        }
    }

    @Test
    void romMappedForWritingIsBouncedAndTheWriteDropped() {
        try (GuestMemory mem = GuestMemory.builder().rom("rom", 0, 0x1000).build()) {
            DmaMapping m = mapped(mem.map(0, 0x100, FROM_DEVICE));
            assertThat(m.bounced()).isTrue();
            m.segment().fill((byte) 1);
            mem.unmap(m, 0x100);
            assertThat(mem.readByte(0)).isZero();
            DmaMapping r = mapped(mem.map(0, 0x100, TO_DEVICE));
            assertThat(r.bounced()).as("ROM reads are direct").isFalse();
            mem.unmap(r, 0);
        }
    }

    @Test
    void unmapMisuseFailsClearlyAndLeavesTheMappingUsable() {
        try (GuestMemory mem = GuestMemory.ofRam(0x1000); GuestMemory other = GuestMemory.ofRam(0x1000)) {
            DmaMapping m = mapped(mem.map(0, 0x100, FROM_DEVICE));
            assertThatThrownBy(() -> mem.unmap(m, 0x101)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("access length 257").hasMessageContaining("0x0");
            assertThatThrownBy(() -> mem.unmap(m, -1)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> other.unmap(m, 0)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("another GuestMemory");
            assertThat(m.isUnmapped()).isFalse();
            mem.unmap(m, 0x100);
            assertThatThrownBy(() -> mem.unmap(m, 0)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("already unmapped");
            assertThat(mem.liveMappings()).isZero();
        }
    }

    @Test
    void aRegionRemovedWhileMappedStaysValidUntilItsLastUnmap() {
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).ram("hotplug", 0x10000, 0x1000).build()) {
            DmaMapping m = mapped(mem.map(0x10000, 0x100, FROM_DEVICE));
            CompletableFuture<Void> gone = mem.removeRegion("hotplug");
            assertThat(mem.regionAt(0x10000)).isEmpty();
            assertThat(mem.readByte(0x10000)).as("new accesses no longer see it").isZero();
            assertThat(gone).as("still mapped").isNotDone();
            m.segment().fill((byte) 3); // still valid memory
            mem.unmap(m, 0x100);
            assertThat(gone).isDone();
            assertThat(mem.removeRegion("ram")).as("nothing mapped: retired at once").isDone();
            assertThatThrownBy(() -> mem.removeRegion("nope")).hasMessageContaining("no region named 'nope'");
        }
    }

    @Test
    void mmioRegionRemovedWhileBounceMappedStillGetsItsWriteBack() {
        RecordingDevice dev = new RecordingDevice(0x100, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x1000, 0x100, dev).build()) {
            DmaMapping m = mapped(mem.map(0x1000, 4, FROM_DEVICE));
            CompletableFuture<Void> gone = mem.removeRegion("dev");
            m.segment().fill((byte) 0x5a);
            mem.unmap(m, 4);
            assertThat(dev.registers[3]).isEqualTo((byte) 0x5a);
            assertThat(gone).isDone();
        }
    }

    @Test
    void addedRegionsAreVisibleAndOverlapsRejectedAtRunTime() {
        try (GuestMemory mem = GuestMemory.builder().backing(RamBacking.anonymous(0x2000)).ram("ram", 0, 0x1000, 0).build()) {
            mem.addRegion(new RamRegion("more", 0x8000, 0x1000, 0x1000));
            mem.writeInt(0x8000, 5);
            assertThat(mem.readInt(0x8000)).isEqualTo(5);
            assertThatThrownBy(() -> mem.addRegion(new RamRegion("clash", 0x8800, 0x1000, 0)))
                    .hasMessageContaining("overlaps");
            assertThatThrownBy(() -> mem.addRegion(new RamRegion("more", 0x20000, 0x10, 0)))
                    .hasMessageContaining("already exists");
        }
    }

    @Test
    void closingWithLiveMappingsDefersFreeingTheBacking() {
        GuestMemory mem = GuestMemory.ofRam(0x1000);
        DmaMapping m = mapped(mem.map(0, 0x100, FROM_DEVICE));
        mem.close();
        assertThat(mem.released()).isNotDone();
        m.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 1); // no use-after-free
        mem.unmap(m, 1);
        assertThat(mem.released()).isDone();
    }
}
