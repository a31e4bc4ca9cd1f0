package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PortBusTest {

    /** Remembers every piece it is handed and answers reads with 0xA0 + offset per byte. */
    private static final class Recorder implements PortHandler {
        final List<String> pieces = new ArrayList<>();
        final boolean unaligned;

        Recorder(boolean unaligned) {
            this.unaligned = unaligned;
        }

        @Override
        public int read(int offset, int size) {
            pieces.add("r" + offset + "/" + size);
            int value = 0;
            for (int i = 0; i < size; i++) {
                value |= (0xa0 + offset + i) << (8 * i);
            }
            return value;
        }

        @Override
        public void write(int offset, int size, int value) {
            pieces.add("w" + offset + "/" + size + "=" + Integer.toHexString(value));
        }

        @Override
        public boolean acceptsUnaligned() {
            return unaligned;
        }
    }

    @Test
    void unassignedPortsReadAllOnesAndIgnoreWrites() {
        PortBus bus = new PortBus();
        bus.write(0x80, 4, 0x12345678);
        assertThat(bus.read(0x80, 1)).isEqualTo(0xff);
        assertThat(bus.read(0x80, 2)).isEqualTo(0xffff);
        assertThat(bus.read(0x81, 4)).isEqualTo(0xffffffff);
    }

    @Test
    void bytesPastTheTopOfThePortSpaceReadZero() {
        PortBus bus = new PortBus();
        assertThat(bus.read(0xffff, 2)).isEqualTo(0x00ff);
        assertThat(bus.read(0xfffe, 4)).isEqualTo(0x0000ffff);
    }

    @Test
    void alignedHandlersGetNaturallyAlignedPieces() {
        PortBus bus = new PortBus();
        Recorder r = new Recorder(false);
        bus.map(0xcfc, 4, r);
        assertThat(bus.read(0xcfd, 4)).isEqualTo(0xffa3a2a1);
        assertThat(r.pieces).containsExactly("r1/1", "r2/2");
        r.pieces.clear();
        bus.write(0xcfe, 2, 0xbeef);
        assertThat(r.pieces).containsExactly("w2/2=beef");
    }

    @Test
    void unalignedHandlersTakeTheWholeAccessEvenPastTheirWindow() {
        PortBus bus = new PortBus();
        Recorder r = new Recorder(true);
        bus.map(0x3f6, 1, r);
        assertThat(bus.read(0x3f6, 4)).isEqualTo(0xa3a2a1a0);
        assertThat(r.pieces).containsExactly("r0/4");
    }

    @Test
    void anAccessStartingInAGapSplitsByPortAlignmentAndContinuesIntoTheNextWindow() {
        PortBus bus = new PortBus();
        Recorder r = new Recorder(true);
        bus.map(0x1f0, 8, r);
        // 0x1ef: one unassigned byte; then 3 bytes left at 0x1f0: a 2-byte piece, then 1 byte.
        assertThat(bus.read(0x1ef, 4)).isEqualTo(0xa2a1a0ff);
        assertThat(r.pieces).containsExactly("r0/2", "r2/1");
    }

    @Test
    void laterMappingsWinAndUnmappingUncoversWhatWasBelow() {
        PortBus bus = new PortBus();
        Recorder legacy = new Recorder(true);
        Recorder bar = new Recorder(false);
        bus.map(0x1f0, 8, legacy);
        PortBus.Mapping window = bus.map(0x1f0, 16, bar);
        bus.read(0x1f2, 1);
        bus.read(0x1fa, 1);
        assertThat(bar.pieces).containsExactly("r2/1", "r10/1");
        assertThat(legacy.pieces).isEmpty();

        window.unmap();
        window.unmap(); // idempotent
        bus.read(0x1f2, 1);
        assertThat(legacy.pieces).containsExactly("r2/1");
        assertThat(bus.read(0x1fa, 1)).isEqualTo(0xff);
    }

    @Test
    void rejectsBadAccessesAndWindows() {
        PortBus bus = new PortBus();
        assertThatThrownBy(() -> bus.read(0x10000, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("0x10000");
        assertThatThrownBy(() -> bus.write(-1, 1, 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> bus.read(0x80, 3)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("1, 2 or 4");
        assertThatThrownBy(() -> bus.map(0xfff0, 0x20, new Recorder(false)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("does not fit");
        assertThatThrownBy(() -> bus.map(0x10, 0, new Recorder(false)))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
