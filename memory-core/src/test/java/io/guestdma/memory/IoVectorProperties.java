package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * An IoVector behaves like the flat byte array it cuts into segments, whatever the cut: every
 * operation is checked against the same operation on a plain array.
 */
class IoVectorProperties {

    /** Cuts {@code data} into segments at the given cut lengths (the remainder goes last). */
    private static IoVector cut(Arena arena, byte[] data, List<@IntRange(min = 0, max = 64) Integer> cuts) {
        IoVector v = new IoVector();
        int at = 0;
        for (int length : cuts) {
            int n = Math.min(length, data.length - at);
            MemorySegment s = arena.allocate(Math.max(1, n));
            MemorySegment.copy(MemorySegment.ofArray(data), at, s, 0, n);
            v.add(s.asSlice(0, n));
            at += n;
        }
        MemorySegment rest = arena.allocate(Math.max(1, data.length - at));
        MemorySegment.copy(MemorySegment.ofArray(data), at, rest, 0, data.length - at);
        v.add(rest.asSlice(0, data.length - at));
        return v;
    }

    @Property(tries = 300)
    void flattenSliceAndDiscardMatchTheArray(@ForAll @Size(max = 300) byte[] data,
                                            @ForAll @Size(max = 12) List<@IntRange(min = 0, max = 64) Integer> cuts,
                                            @ForAll @IntRange(min = 0, max = 300) int a,
                                            @ForAll @IntRange(min = 0, max = 300) int b) {
        try (Arena arena = Arena.ofConfined()) {
            IoVector v = cut(arena, data, cuts);
            assertThat(v.size()).isEqualTo(data.length);
            assertThat(v.toByteArray()).isEqualTo(data);
            int from = Math.min(a, data.length);
            int length = Math.min(b, data.length - from);
            assertThat(v.slice(from, length).toByteArray()).isEqualTo(Arrays.copyOfRange(data, from, from + length));
            byte[] out = new byte[length];
            assertThat(v.copyTo(from, out, 0, length)).isEqualTo(length);
            assertThat(out).isEqualTo(Arrays.copyOfRange(data, from, from + length));

            IoVector trimmed = v.slice(0, data.length);
            trimmed.discardFront(from);
            trimmed.discardBack(Math.min(b, data.length - from));
            assertThat(trimmed.toByteArray())
                    .isEqualTo(Arrays.copyOfRange(data, from, data.length - Math.min(b, data.length - from)));
        }
    }

    @Property(tries = 300)
    void writesLandWhereTheArraySaysAndCompareIgnoresCuts(@ForAll @Size(min = 1, max = 300) byte[] data,
                                                        @ForAll @Size(max = 12) List<@IntRange(min = 0, max = 64) Integer> cutsA,
                                                        @ForAll @Size(max = 12) List<@IntRange(min = 0, max = 64) Integer> cutsB,
                                                        @ForAll @IntRange(min = 0, max = 299) int at,
                                                        @ForAll byte value) {
        try (Arena arena = Arena.ofConfined()) {
            IoVector x = cut(arena, data, cutsA);
            IoVector y = cut(arena, data, cutsB);
            assertThat(x.compare(y)).isEqualTo(-1);
            int pos = at % data.length;
            byte[] expected = data.clone();
            int n = Math.min(7, data.length - pos);
            Arrays.fill(expected, pos, pos + n, value);
            assertThat(y.fill(pos, value, 7)).isEqualTo(n);
            assertThat(y.toByteArray()).isEqualTo(expected);
            long firstDiff = -1;
            for (int i = 0; i < data.length; i++) {
                if (data[i] != expected[i]) {
                    firstDiff = i;
                    break;
                }
            }
            assertThat(x.compare(y)).isEqualTo(firstDiff);
            boolean zero = true;
            for (byte e : expected) {
                zero &= e == 0;
            }
            assertThat(y.isZero()).isEqualTo(zero);
        }
    }
}
