package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * The copy path and the map path are two views of one address space: for random region layouts
 * (RAM, ROM, MMIO, gaps, some near 2^64) and random ranges, reading through either gives the same
 * bytes, and writing through a FROM_DEVICE mapping has the same effect as a copy-path write.
 */
class CopyAndMapAgreeProperties {

    record Layout(long seed, boolean nearTop) {
    }

    record Range(long offset, int length) {
    }

    @Provide
    Arbitrary<Layout> layouts() {
        return Combinators.combine(Arbitraries.longs(), Arbitraries.of(false, true)).as(Layout::new);
    }

    @Provide
    Arbitrary<Range> ranges() {
        return Combinators.combine(Arbitraries.longs().between(0, 0x9000), Arbitraries.integers().between(1, 0x3000))
                .as(Range::new);
    }

    /** Builds regions over a 0x8000-byte window starting at base: RAM, ROM, MMIO and gaps. */
    private static GuestMemory build(Layout layout, long base) {
        Random random = new Random(layout.seed());
        GuestMemory.Builder b = GuestMemory.builder().bouncePoolBytes(1 + random.nextInt(8192));
        long at = 0;
        int n = 0;
        while (at < 0x8000) {
            long size = 0x100L * (1 + random.nextInt(16));
            size = Math.min(size, 0x8000 - at);
            String name = "r" + n++;
            switch (random.nextInt(4)) {
                case 0 -> b.ram(name, base + at, size);
                case 1 -> b.rom(name, base + at, size);
                case 2 -> {
                    int min = 1 << random.nextInt(4);
                    int max = Math.max(min, 1 << random.nextInt(4));
                    RecordingDevice dev = new RecordingDevice((int) size, min, max);
                    random.nextBytes(dev.registers);
                    b.mmio(name, base + at, size, dev);
                }
                default -> { /* a gap: unassigned */ }
            }
            at += size;
        }
        GuestMemory mem = b.build();
        if (mem.regions().stream().anyMatch(r -> r instanceof RamRegion || r instanceof RomRegion)) {
            byte[] fill = new byte[(int) mem.backing().size()];
            random.nextBytes(fill);
            MemorySegment.copy(MemorySegment.ofArray(fill), 0, mem.backing().segment(), 0, fill.length);
        }
        return mem;
    }

    private static long baseOf(Layout layout) {
        return layout.nearTop() ? -0x8000L : 0x10000L;
    }

    @Property(tries = 300)
    void readingThroughMapsEqualsTheCopyPath(@ForAll("layouts") Layout layout, @ForAll("ranges") Range range) {
        long base = baseOf(layout);
        try (GuestMemory mem = build(layout, base)) {
            long address = base + range.offset();
            // what the copy path sees, treating bytes past 2^64 as absent
            long reachable = layout.nearTop() ? Math.min(range.length(), 0x8000 - range.offset()) : range.length();
            if (reachable <= 0) {
                return;
            }
            byte[] viaCopy = new byte[(int) reachable];
            mem.read(address, viaCopy, 0, viaCopy.length);
            ByteArrayOutputStream viaMap = new ByteArrayOutputStream();
            long done = 0;
            while (done < reachable) {
                DmaMapping m = (DmaMapping) mem.map(address + done, reachable - done, DmaDirection.TO_DEVICE);
                viaMap.writeBytes(m.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                done += m.length();
                mem.unmap(m, m.length());
            }
            assertThat(viaMap.toByteArray()).isEqualTo(viaCopy);
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
        }
    }

    @Property(tries = 300)
    void writingThroughMapsEqualsTheCopyPath(@ForAll("layouts") Layout layout, @ForAll("ranges") Range range) {
        long base = baseOf(layout);
        long reachable = layout.nearTop() ? Math.min(range.length(), 0x8000 - range.offset()) : range.length();
        if (reachable <= 0) {
            return;
        }
        byte[] data = new byte[(int) reachable];
        new Random(layout.seed() ^ range.offset()).nextBytes(data);
        byte[] expected = new byte[0xa000];
        byte[] actual = new byte[0xa000];
        try (GuestMemory copy = build(layout, base)) {
            copy.write(base + range.offset(), data, 0, data.length);
            copy.read(base, expected, 0, layout.nearTop() ? 0x8000 : expected.length);
        }
        try (GuestMemory mapped = build(layout, base)) {
            long done = 0;
            List<DmaMapping> live = new ArrayList<>();
            while (done < reachable) {
                MapResult r = mapped.map(base + range.offset() + done, reachable - done, DmaDirection.FROM_DEVICE);
                if (r instanceof BounceExhausted) {
                    // release what we hold and continue: the pool frees
                    for (DmaMapping m : live) {
                        mapped.unmap(m, m.length());
                    }
                    live.clear();
                    continue;
                }
                DmaMapping m = (DmaMapping) r;
                MemorySegment.copy(MemorySegment.ofArray(data), done, m.segment(), 0, m.length());
                live.add(m);
                done += m.length();
            }
            for (DmaMapping m : live) {
                mapped.unmap(m, m.length());
            }
            mapped.read(base, actual, 0, layout.nearTop() ? 0x8000 : actual.length);
        }
        assertThat(actual).isEqualTo(expected);
    }
}
