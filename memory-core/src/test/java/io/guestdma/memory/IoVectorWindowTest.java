package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A vector of windows ({@link IoVector#addWindow}, what {@link DmaPacket} builds) behaves exactly
 * as the same vector of slices, in every operation, and reads and writes only its windows.
 */
class IoVectorWindowTest {
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment backing = arena.allocate(64 * 1024);
    private final MemorySegment twin = arena.allocate(64 * 1024);
    private static final long[][] PIECES = {{100, 1000}, {5000, 7}, {20_000, 4096}, {40_000, 1}};

    @AfterEach
    void close() {
        arena.close();
    }

    private IoVector windows(MemorySegment memory) {
        IoVector v = new IoVector(1); // grows as windows are added
        for (long[] p : PIECES) {
            v.addWindow(memory, p[0], p[1]);
        }
        return v;
    }

    private IoVector slices(MemorySegment memory) {
        IoVector v = new IoVector();
        for (long[] p : PIECES) {
            v.add(memory.asSlice(p[0], p[1]));
        }
        return v;
    }

    private void randomize() {
        byte[] bytes = new byte[(int) backing.byteSize()];
        new Random(3).nextBytes(bytes);
        backing.copyFrom(MemorySegment.ofArray(bytes));
        twin.copyFrom(MemorySegment.ofArray(bytes));
    }

    @Test
    void copiesFillsAndCompareActOnTheWindowsOnly() {
        randomize();
        IoVector w = windows(backing);
        IoVector s = slices(twin);
        assertThat(w.size()).isEqualTo(s.size()).isEqualTo(5104);
        assertThat(w.compare(s)).isEqualTo(-1);
        byte[] a = new byte[5104];
        byte[] b = new byte[5104];
        w.copyTo(0, MemorySegment.ofArray(a));
        s.copyTo(0, MemorySegment.ofArray(b));
        assertThat(a).isEqualTo(b);

        byte[] fresh = new byte[3000];
        new Random(4).nextBytes(fresh);
        MemorySegment src = MemorySegment.ofArray(fresh);
        w.copyFrom(990, src, 17, 2000);
        s.copyFrom(990, src.asSlice(17, 2000));
        w.fill(5, (byte) 0x5a, 1200);
        s.fill(5, (byte) 0x5a, 1200);
        assertThat(backing.mismatch(twin)).as("the same bytes changed, none outside the windows").isEqualTo(-1);
        assertThat(w.isZero(1100, 7)).isEqualTo(s.isZero(1100, 7));

        MemorySegment out = arena.allocate(100);
        w.copyTo(1003, out, 10, 90); // the end of the second window, then the third
        byte[] expected = new byte[90];
        s.copyTo(1003, MemorySegment.ofArray(expected));
        assertThat(out.asSlice(10, 90).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(expected);
        assertThatThrownBy(() -> w.copyTo(5100, out, 0, 5)).isInstanceOf(IndexOutOfBoundsException.class);
    }

    @Test
    void segmentsDiscardsAndConcatSeeTheSameBytes() {
        randomize();
        IoVector w = windows(backing);
        for (int i = 0; i < PIECES.length; i++) {
            assertThat(w.segment(i).byteSize()).isEqualTo(PIECES[i][1]);
            assertThat(w.segment(i).address()).isEqualTo(backing.address() + PIECES[i][0]);
            assertThat(w.segment(i)).as("cut once, then kept").isSameAs(w.segment(i));
        }
        IoVector w2 = windows(backing);
        IoVector s2 = slices(twin);
        w2.discardFront(1003);
        s2.discardFront(1003);
        w2.discardBack(4098);
        s2.discardBack(4098);
        assertThat(w2.size()).isEqualTo(3);
        assertThat(w2.compare(s2)).isEqualTo(-1);
        assertThat(new IoVector().concat(windows(backing), 999, 3000).compare(new IoVector().concat(slices(twin), 999, 3000)))
                .isEqualTo(-1);
        assertThat(new IoVector().addAll(windows(backing)).compare(slices(twin))).isEqualTo(-1);
    }

    @Test
    void theNativeAndBufferViewsPointIntoTheWindows() {
        IoVector w = windows(backing);
        MemorySegment iovecs = w.nativeIovecs();
        for (int i = 0; i < PIECES.length; i++) {
            assertThat(iovecs.get(ValueLayout.JAVA_LONG, 16L * i)).isEqualTo(backing.address() + PIECES[i][0]);
            assertThat(iovecs.get(ValueLayout.JAVA_LONG, 16L * i + 8)).isEqualTo(PIECES[i][1]);
        }
        ByteBuffer[] buffers = windows(backing).byteBuffers();
        assertThat(buffers[2].remaining()).isEqualTo(4096);
    }
}
