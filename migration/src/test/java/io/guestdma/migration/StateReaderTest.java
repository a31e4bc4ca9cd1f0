package io.guestdma.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import org.junit.jupiter.api.Test;

class StateReaderTest {

    private static byte[] sample() {
        return new StateWriter().u8(0xab).u16(0xbeef).u32(0xdead_beefL).u64(-2).bool(true)
                .string("ide0").bytes(new byte[] {1, 2, 3}).toByteArray();
    }

    @Test
    void readsBackWhatWasWritten() throws Exception {
        StateReader in = new StateReader("s", sample());
        assertThat(in.u8("a")).isEqualTo(0xab);
        assertThat(in.u16("b")).isEqualTo(0xbeef);
        assertThat(in.u32("c")).isEqualTo(0xdead_beefL);
        assertThat(in.u64("d")).isEqualTo(-2);
        assertThat(in.bool("e")).isTrue();
        assertThat(in.string("f", 16)).isEqualTo("ide0");
        assertThat(in.bytes("g", 3)).containsExactly(1, 2, 3);
        in.expectEnd();
    }

    @Property(tries = 200)
    void everyTruncationIsAFormatErrorNamingTheSection(@ForAll("cut") int cut) {
        byte[] whole = sample();
        StateReader in = new StateReader("virtio-blk@00:04.0", Arrays.copyOf(whole, cut % whole.length));
        assertThatThrownBy(() -> {
            in.u8("a");
            in.u16("b");
            in.u32("c");
            in.u64("d");
            in.bool("e");
            in.string("f", 16);
            in.bytes("g", 3);
        }).isInstanceOf(MigrationFormatException.class).hasMessageContaining("virtio-blk@00:04.0");
    }

    @net.jqwik.api.Provide
    net.jqwik.api.Arbitrary<Integer> cut() {
        return net.jqwik.api.Arbitraries.integers().between(0, 1000);
    }

    @Test
    void refusesOutOfRangeValuesAndLeftovers() throws Exception {
        assertThatThrownBy(() -> new StateReader("s", new byte[] {2}).bool("flag"))
                .hasMessageContaining("flag");
        assertThatThrownBy(() -> new StateReader("s", new StateWriter().u32(9).toByteArray())
                .u32InRange("queue", 0, 7)).hasMessageContaining("9 is outside 0..7");
        assertThatThrownBy(() -> new StateReader("s", new StateWriter().u32(1 << 30).toByteArray())
                .bytes("blob", 4096)).hasMessageContaining("blob");
        assertThatThrownBy(() -> new StateReader("s", new StateWriter().bytes(new byte[] {(byte) 0xff}).toByteArray())
                .string("name", 8)).hasMessageContaining("not UTF-8");
        StateReader leftover = new StateReader("s", new byte[] {0, 0});
        leftover.u8("x");
        assertThatThrownBy(leftover::expectEnd).hasMessageContaining("1 bytes left");
    }
}
