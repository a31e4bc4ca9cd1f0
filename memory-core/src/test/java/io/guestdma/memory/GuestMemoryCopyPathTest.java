package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

class GuestMemoryCopyPathTest {

    @Test
    void readsAndWritesAcrossAdjacentRamRegions() {
        try (GuestMemory mem = GuestMemory.builder()
                .ram("low", 0, 0x1000).ram("high", 0x1000, 0x1000).build()) {
            byte[] data = new byte[0x200];
            for (int i = 0; i < data.length; i++) {
                data[i] = (byte) i;
            }
            assertThat(mem.write(0xf00, data, 0, data.length)).isEqualTo(AccessResult.OK);
            byte[] back = new byte[0x200];
            assertThat(mem.read(0xf00, back, 0, back.length)).isEqualTo(AccessResult.OK);
            assertThat(back).isEqualTo(data);
        }
    }

    @Test
    void unassignedReadsZeroWritesAreDroppedAndTheCallerIsTold() {
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).ram("ram2", 0x3000, 0x1000).build()) {
            mem.write(0xff0, new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 0, 16);
            byte[] buf = new byte[32];
            java.util.Arrays.fill(buf, (byte) 0x55);
            // 16 bytes of RAM, then 16 unassigned bytes that must come back as 0.
            assertThat(mem.read(0xff0, buf, 0, 32)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(buf[15]).isEqualTo((byte) 16);
            assertThat(buf[16]).isZero();
            assertThat(buf[31]).isZero();
            assertThat(mem.write(0x1000, new byte[] {9}, 0, 1)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(mem.readByte(0x1000)).isZero();
            assertThat(mem.readInt(0x2000_0000L)).isZero();
            // a gap between two RAM regions is crossed correctly
            mem.writeByte(0x3000, (byte) 7);
            byte[] span = new byte[0x2002];
            assertThat(mem.read(0xfff, span, 0, span.length)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(span[0]).isEqualTo((byte) 16);
            assertThat(span[0x2001]).isEqualTo((byte) 7);
        }
    }

    @Test
    void accessesPastTheTopOfTheAddressSpaceAreUnassignedNotWrapped() {
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).ram("top", -0x1000L, 0x1000).build()) {
            mem.writeByte(0, (byte) 0x42);
            byte[] buf = new byte[16];
            assertThat(mem.read(-8L, buf, 0, 16)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(buf[8]).as("byte 0 of the space must not be read through a wrap").isZero();
            assertThat(mem.write(-8L, new byte[16], 0, 16)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(mem.readByte(0)).isEqualTo((byte) 0x42);
            // a typed access straddling 2^64 does not wrap either
            mem.writeLong(-4L, -1L);
            assertThat(mem.readByte(0)).isEqualTo((byte) 0x42);
            assertThat(mem.readInt(-4L)).isEqualTo(-1);
        }
    }

    @Test
    void typedAccessesAreLittleEndian() {
        try (GuestMemory mem = GuestMemory.ofRam(0x1000)) {
            mem.writeLong(0x10, 0x0807060504030201L);
            assertThat(mem.readByte(0x10)).isEqualTo((byte) 1);
            assertThat(mem.readShort(0x10)).isEqualTo((short) 0x0201);
            assertThat(mem.readInt(0x11)).isEqualTo(0x05040302);
            assertThat(mem.readLong(0x10)).isEqualTo(0x0807060504030201L);
            mem.writeShort(0x20, (short) 0xbeef);
            mem.writeInt(0x22, 0xcafef00d);
            byte[] raw = new byte[6];
            mem.read(0x20, raw, 0, 6);
            assertThat(raw).containsExactly(0xef, 0xbe, 0x0d, 0xf0, 0xfe, 0xca);
        }
    }

    @Test
    void typedAccessStraddlingRamAndMmioIsSplitCorrectly() {
        RecordingDevice dev = new RecordingDevice(0x100, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).mmio("dev", 0x1000, 0x100, dev).build()) {
            mem.writeInt(0xffe, 0x44332211);
            assertThat(mem.readShort(0xffe)).isEqualTo((short) 0x2211);
            assertThat(dev.registers[0]).isEqualTo((byte) 0x33);
            assertThat(dev.registers[1]).isEqualTo((byte) 0x44);
            assertThat(mem.readInt(0xffe)).isEqualTo(0x44332211);
        }
    }

    @Test
    void mmioAccessesAreSplitIntoWhatTheHandlerAccepts() {
        RecordingDevice dev = new RecordingDevice(0x100, 1, 4);
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x1000, 0x100, dev).build()) {
            // an 8-byte access on a 4-byte-max device: two aligned 4-byte accesses
            mem.writeLong(0x1000, 0x1122334455667788L);
            assertThat(dev.drain()).containsExactly(
                    new RecordingDevice.Access(true, 0, 4, 0x55667788L),
                    new RecordingDevice.Access(true, 4, 4, 0x11223344L));
            // unaligned 4-byte read at offset 1: byte, halfword, byte
            assertThat(mem.readInt(0x1001)).isEqualTo(0x44556677);
            assertThat(dev.drain()).extracting(RecordingDevice.Access::offset, RecordingDevice.Access::size)
                    .containsExactly(org.assertj.core.groups.Tuple.tuple(1L, 1), org.assertj.core.groups.Tuple.tuple(2L, 2),
                            org.assertj.core.groups.Tuple.tuple(4L, 1));
            // a 7-byte buffer write crossing the register window ends up byte-exact
            byte[] seven = {1, 2, 3, 4, 5, 6, 7};
            mem.write(0x1003, seven, 0, 7);
            for (int i = 0; i < 7; i++) {
                assertThat(dev.registers[3 + i]).isEqualTo((byte) (i + 1));
            }
        }
    }

    @Test
    void narrowAccessesToAWideOnlyDeviceAreWidenedWithReadModifyWrite() {
        RecordingDevice dev = new RecordingDevice(0x10, 4, 4);
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x2000, 0x10, dev).build()) {
            mem.writeInt(0x2004, 0xaabbccdd);
            dev.drain();
            mem.writeByte(0x2005, (byte) 0x11);
            assertThat(dev.drain()).containsExactly(
                    new RecordingDevice.Access(false, 4, 4, 0xaabbccddL),
                    new RecordingDevice.Access(true, 4, 4, 0xaabb11ddL));
            assertThat(mem.readByte(0x2007)).isEqualTo((byte) 0xaa);
            assertThat(dev.drain()).containsExactly(new RecordingDevice.Access(false, 4, 4, 0xaabb11ddL));
        }
    }

    @Test
    void romIgnoresWritesButIsReadable() {
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).rom("bios", 0xf000, 0x1000).build()) {
            long at = mem.backingOffsetOf(0xf000).orElseThrow();
            mem.backing().segment().set(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, at, 0x12345678);
            assertThat(mem.write(0xf000, new byte[] {0, 0, 0, 0}, 0, 4)).isEqualTo(AccessResult.OK);
            mem.writeInt(0xf000, 0);
            assertThat(mem.readInt(0xf000)).isEqualTo(0x12345678);
        }
    }

    @Test
    void smallRamAccessesAreNeverTorn() throws Exception {
        try (GuestMemory mem = GuestMemory.ofRam(0x1000)) {
            AtomicBoolean stop = new AtomicBoolean();
            Thread writer = new Thread(() -> {
                long v = 0;
                while (!stop.get()) {
                    v = ~v;
                    mem.writeLong(0x40, v);
                    mem.write(0x80, new byte[] {(byte) v, (byte) v, (byte) v, (byte) v}, 0, 4);
                }
            });
            writer.start();
            try {
                byte[] eight = new byte[8];
                byte[] four = new byte[4];
                for (int i = 0; i < 200_000; i++) {
                    long v = mem.readLong(0x40);
                    assertThat(v == 0 || v == -1).as("torn 8-byte load %x", v).isTrue();
                    mem.read(0x40, eight, 0, 8);
                    assertThat(allSame(eight)).as("torn 8-byte copy").isTrue();
                    mem.read(0x80, four, 0, 4);
                    assertThat(allSame(four)).as("torn 4-byte copy").isTrue();
                }
            } finally {
                stop.set(true);
                writer.join();
            }
        }
    }

    private static boolean allSame(byte[] b) {
        for (byte x : b) {
            if (x != b[0]) {
                return false;
            }
        }
        return b[0] == 0 || b[0] == -1;
    }

    @Test
    void overlappingRegionsAreRejectedWithBothNames() {
        assertThatThrownBy(() -> GuestMemory.builder().ram("a", 0, 0x2000).ram("b", 0x1000, 0x1000).build())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'b'").hasMessageContaining("'a'").hasMessageContaining("overlaps");
        assertThatThrownBy(() -> GuestMemory.builder().ram("a", 0, 0x1000).ram("a", 0x1000, 0x1000).build())
                .hasMessageContaining("already exists");
        assertThatThrownBy(() -> new RamRegion("x", -0x1000L, 0x2000, 0))
                .hasMessageContaining("wraps");
        assertThatThrownBy(() -> GuestMemory.builder().backing(RamBacking.anonymous(0x1000))
                .ram("big", 0, 0x2000, 0).build())
                .hasMessageContaining("backing");
    }

    @Test
    void lookupFindsEveryRegionAmongThousands() {
        GuestMemory.Builder b = GuestMemory.builder();
        for (int i = 0; i < 10_000; i++) {
            b.ram("r" + i, (long) i * 0x2000, 0x1000);
        }
        try (GuestMemory mem = b.build()) {
            for (int i = 0; i < 10_000; i += 7) {
                mem.writeInt((long) i * 0x2000 + 0xffc, i);
                assertThat(mem.regionAt((long) i * 0x2000 + 5)).map(Region::name).hasValue("r" + i);
                assertThat(mem.regionAt((long) i * 0x2000 + 0x1000)).isEmpty();
            }
            for (int i = 0; i < 10_000; i += 7) {
                assertThat(mem.readInt((long) i * 0x2000 + 0xffc)).isEqualTo(i);
            }
        }
    }

    @Test
    void closedMemoryRefusesAccess() {
        GuestMemory mem = GuestMemory.ofRam(0x1000);
        mem.close();
        mem.close();
        assertThatThrownBy(() -> mem.readInt(0)).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(() -> mem.map(0, 1, DmaDirection.TO_DEVICE)).isInstanceOf(IllegalStateException.class);
        assertThat(mem.released()).isDone();
    }
}
