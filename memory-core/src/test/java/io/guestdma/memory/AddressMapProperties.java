package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * The bucketed region lookup finds exactly what a linear scan finds, for dense, sparse and
 * top-of-address-space layouts, at region edges, inside gaps and outside the span.
 */
class AddressMapProperties {

    private static final MmioHandler NOTHING = new MmioHandler() {
        @Override
        public long read(long offset, int size) {
            return 0;
        }

        @Override
        public void write(long offset, int size, long value) {
        }
    };

    @Property(tries = 400)
    void findAgreesWithALinearScan(@ForAll long seed, @ForAll @IntRange(min = 0, max = 400) int count,
                                   @ForAll @IntRange(min = 0, max = 3) int style) {
        Random random = new Random(seed);
        List<Region> regions = new ArrayList<>();
        long at = switch (style) {
            case 0 -> 0;
            case 1 -> random.nextLong() >>> 1;
            case 2 -> -((long) count << 16) - 0x10000; // ends just below 2^64
            default -> 0x1000;
        };
        for (int i = 0; i < count; i++) {
            long size = 1 + random.nextInt(style == 3 ? 1 << 20 : 0x4000);
            long gap = style == 3 && random.nextInt(8) == 0 ? random.nextLong() >>> 8 : random.nextInt(3) * (long) random.nextInt(0x4000);
            if (Long.compareUnsigned(at + gap, at) < 0 || Long.compareUnsigned(at + gap + size - 1, at + gap) < 0) {
                break; // would wrap past 2^64
            }
            at += gap;
            regions.add(new MmioRegion("r" + i, at, size, NOTHING));
            if (at + size == 0) {
                break;
            }
            at += size;
        }
        AddressMap map = new AddressMap(regions, backing -> null, false);
        List<Long> probes = new ArrayList<>(List.of(0L, -1L, 1L, Long.MIN_VALUE, Long.MAX_VALUE));
        for (Region r : regions) {
            probes.add(r.base());
            probes.add(r.last());
            probes.add(r.base() - 1);
            probes.add(r.last() + 1);
            probes.add(r.base() + (r.last() - r.base()) / 2);
        }
        for (int i = 0; i < 200; i++) {
            probes.add(random.nextLong());
            if (!regions.isEmpty()) {
                Region r = regions.get(random.nextInt(regions.size()));
                probes.add(r.base() + random.nextInt(0x8000) - 0x4000);
            }
        }
        for (long address : probes) {
            int expected = -1;
            for (int i = 0; i < regions.size(); i++) {
                Region r = regions.get(i);
                if (Long.compareUnsigned(r.base(), address) <= 0 && Long.compareUnsigned(address, r.last()) <= 0) {
                    expected = i;
                }
            }
            assertThat(map.find(address)).as("find(0x%x) in %d regions, style %d", address, regions.size(), style)
                    .isEqualTo(expected);
        }
    }
}
