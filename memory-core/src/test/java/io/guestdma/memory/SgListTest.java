package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class SgListTest {

    private static List<Long> bytes(SgList list) {
        List<Long> out = new ArrayList<>();
        for (int i = 0; i < list.count(); i++) {
            for (long b = 0; b < list.length(i); b++) {
                out.add(list.address(i) + b);
            }
        }
        return out;
    }

    @Test
    void aPartIsTheRangesThatHoldItsBytes() {
        SgList request = new SgList().add(0x1000, 16).add(0x8000, 100).add(0x20000, 1);
        SgList payload = new SgList().addPart(request, 16, 100);
        assertThat(payload.count()).isEqualTo(1);
        assertThat(payload.address(0)).isEqualTo(0x8000);
        assertThat(payload.length(0)).isEqualTo(100);
        SgList across = new SgList().addPart(request, 10, 20);
        assertThat(across.count()).isEqualTo(2);
        assertThat(across.address(0)).isEqualTo(0x100a);
        assertThat(across.length(0)).isEqualTo(6);
        assertThat(across.address(1)).isEqualTo(0x8000);
        assertThat(across.length(1)).isEqualTo(14);
        assertThat(new SgList().addPart(request, 110, 1000).size()).as("cut short at the end").isEqualTo(7);
    }

    @Property(tries = 200)
    void aPartHoldsExactlyThoseBytesOfTheSource(@ForAll @IntRange(max = 40) int from,
                                                @ForAll @IntRange(max = 40) int length) {
        SgList source = new SgList().add(100, 7).add(500, 1).add(900, 13).add(2000, 9);
        List<Long> all = bytes(source);
        List<Long> expected = all.subList(Math.min(from, all.size()), Math.min(from + length, all.size()));
        assertThat(bytes(new SgList().add(1, 2).addPart(source, from, length)))
                .as("after what the list held").startsWith(1L, 2L).endsWith(expected.toArray(Long[]::new))
                .hasSize(2 + expected.size());
    }

    @Test
    void refusesNegativePartsAndItself() {
        SgList list = new SgList().add(0, 8);
        assertThatThrownBy(() -> new SgList().addPart(list, -1, 2)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new SgList().addPart(list, 0, -2)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> list.addPart(list, 0, 2)).isInstanceOf(IllegalArgumentException.class);
    }
}
