package io.guestdma.memory;

import static io.guestdma.memory.DmaDirection.FROM_DEVICE;
import static io.guestdma.memory.DmaDirection.TO_DEVICE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.BitSet;
import org.junit.jupiter.api.Test;

class DirtyLogTest {

    @Test
    void copyPathWritesMarkTheirPagesForEveryClient() {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            DirtyLog.Client migration = mem.dirtyLog().register("migration");
            DirtyLog.Client display = mem.dirtyLog().register("display");
            mem.write(0x1ffe, new byte[4], 0, 4); // straddles pages 1 and 2
            mem.writeInt(0x5000, 1);
            assertThat(migration.getAndClear(0, 0x10000)).isEqualTo(bits(1, 2, 5));
            assertThat(migration.getAndClear(0, 0x10000)).as("cleared").isEqualTo(new BitSet());
            assertThat(display.getAndClear(0x2000, 0x4000)).as("independent, and relative to the range").isEqualTo(bits(0, 3));
            assertThat(display.isDirty(0x1000)).isTrue();
            assertThat(display.dirtyPages()).isEqualTo(1);
        }
    }

    @Test
    void unmapMarksExactlyAccessLenOfFromDeviceRamMappings() {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            DirtyLog.Client log = mem.dirtyLog().register("migration");
            DmaMapping m = (DmaMapping) mem.map(0x1000, 0x4000, FROM_DEVICE);
            mem.unmap(m, 0x1001); // pages 1 and 2 touched, 3 and 4 not
            assertThat(log.getAndClear(0, 0x10000)).isEqualTo(bits(1, 2));
            DmaMapping none = (DmaMapping) mem.map(0x1000, 0x4000, FROM_DEVICE);
            mem.unmap(none, 0);
            DmaMapping read = (DmaMapping) mem.map(0x1000, 0x4000, TO_DEVICE);
            mem.unmap(read, 0x4000);
            assertThat(log.getAndClear(0, 0x10000)).as("nothing written").isEqualTo(new BitSet());
        }
    }

    @Test
    void pagesAreBackingPagesSoAliasesShareThem() {
        try (GuestMemory mem = GuestMemory.builder().backing(RamBacking.anonymous(0x4000))
                .ram("a", 0, 0x4000, 0).ram("alias", 0x100000, 0x1000, 0x2000).build()) {
            DirtyLog.Client log = mem.dirtyLog().register("code");
            mem.writeByte(0x100010, (byte) 1);
            assertThat(mem.backingOffsetOf(0x100010)).hasValue(0x2010);
            assertThat(log.getAndClear(0, 0x4000)).isEqualTo(bits(2));
            assertThat(mem.readByte(0x2010)).isEqualTo((byte) 1);
        }
    }

    @Test
    void badRangesAndUnregisteredClientsFailClearly() {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            DirtyLog.Client log = mem.dirtyLog().register("x");
            assertThatThrownBy(() -> log.getAndClear(0x8000, 0x10000)).isInstanceOf(IndexOutOfBoundsException.class)
                    .hasMessageContaining("outside");
            log.unregister();
            assertThatThrownBy(() -> log.getAndClear(0, 1)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("unregistered");
        }
    }

    @Test
    void getAndClearOverManyWordsReportsEveryPage() {
        try (GuestMemory mem = GuestMemory.ofRam(0x1000L * 300)) {
            DirtyLog.Client log = mem.dirtyLog().register("m");
            for (int p = 0; p < 300; p += 3) {
                mem.writeByte(p * 0x1000L + 7, (byte) 1);
            }
            BitSet got = log.getAndClear(0x1000L * 5, 0x1000L * 200);
            BitSet want = new BitSet();
            for (int p = 5; p < 205; p++) {
                if (p % 3 == 0) {
                    want.set(p - 5);
                }
            }
            assertThat(got).isEqualTo(want);
            assertThat(log.dirtyPages()).as("pages outside the range stay dirty").isEqualTo(100 - want.cardinality());
        }
    }

    private static BitSet bits(int... set) {
        BitSet b = new BitSet();
        for (int i : set) {
            b.set(i);
        }
        return b;
    }
}
