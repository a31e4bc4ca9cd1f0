package io.guestdma.ide;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.memory.SgList;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** TRIM entries are read on each PRD's own grid, however the payload is cut when it is fed. */
class TrimPayloadTest {
    private static final ValueLayout.OfLong LONG_LE =
            ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Two PRDs of 21 and 27 bytes: entries at 0, 8 (tail of 5 ignored), then 21, 29, 37 (tail of 3). */
    private static final long[] LENGTHS = {21, 27};

    private static MemorySegment payload() {
        MemorySegment p = MemorySegment.ofArray(new byte[48]);
        p.fill((byte) 0x7f); // the ignored tails: ranges no disk has, were they read
        p.set(LONG_LE, 0, range(1, 2));
        p.set(LONG_LE, 8, range(3, 4));
        p.set(LONG_LE, 21, range(5, 6));
        p.set(LONG_LE, 29, 0); // count 0: skipped
        p.set(LONG_LE, 37, range(7, 8));
        return p;
    }

    private static long range(long sector, int count) {
        return ((long) count << 48) | sector;
    }

    private static SgList list() {
        SgList sg = new SgList(2);
        long address = 0x1000;
        for (long length : LENGTHS) {
            sg.add(address, length);
            address += 0x1000;
        }
        return sg;
    }

    private static List<String> feedCutAt(int... cuts) throws IOException {
        MemorySegment p = payload();
        TrimPayload trim = new TrimPayload();
        trim.start(list());
        List<String> ranges = new ArrayList<>();
        int from = 0;
        int[] ends = java.util.Arrays.copyOf(cuts, cuts.length + 1);
        ends[cuts.length] = (int) p.byteSize();
        for (int end : ends) {
            assertThat(trim.feed(p.asSlice(from, end - from), (s, n) -> ranges.add(s + "+" + n))).isTrue();
            from = end;
        }
        return ranges;
    }

    @Test
    void entriesFollowEachPrdsGridAndTailsAreIgnored() throws IOException {
        assertThat(feedCutAt()).containsExactly("1+2", "3+4", "5+6", "7+8");
    }

    @Test
    void everyCutGivesTheSameRanges() throws IOException {
        List<String> whole = feedCutAt();
        for (int a = 0; a <= 48; a++) {
            for (int b = a; b <= 48; b++) {
                assertThat(feedCutAt(a, b)).as("cut at %d and %d", a, b).isEqualTo(whole);
            }
        }
    }

    @Test
    void aRefusedRangeStopsTheFeed() throws IOException {
        TrimPayload trim = new TrimPayload();
        trim.start(list());
        List<Long> seen = new ArrayList<>();
        assertThat(trim.feed(payload(), (s, n) -> seen.add(s) && s < 3)).isFalse();
        assertThat(seen).containsExactly(1L, 3L);
    }

    @Test
    void morePayloadThanTheListDescribesIsRefused() {
        TrimPayload trim = new TrimPayload();
        trim.start(list());
        assertThatThrownBy(() -> trim.feed(MemorySegment.ofArray(new byte[49]), (s, n) -> true))
                .isInstanceOf(IllegalStateException.class);
    }
}
