package io.guestdma.memory.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** {@link IovecWindow#consume}: what a short {@code writev} or {@code readv} leaves for the next call. */
class IovecWindowTest {

    private static MemorySegment iovecs(Arena arena, long... lengths) {
        MemorySegment iov = arena.allocate(lengths.length * IovecWindow.ENTRY, 8);
        for (int i = 0; i < lengths.length; i++) {
            iov.set(ValueLayout.JAVA_LONG, i * IovecWindow.ENTRY, 0x1000L * (i + 1));
            iov.set(ValueLayout.JAVA_LONG, i * IovecWindow.ENTRY + 8, lengths[i]);
        }
        return iov;
    }

    private static long base(MemorySegment iov, int i) {
        return iov.get(ValueLayout.JAVA_LONG, i * IovecWindow.ENTRY);
    }

    private static long length(MemorySegment iov, int i) {
        return iov.get(ValueLayout.JAVA_LONG, i * IovecWindow.ENTRY + 8);
    }

    @Test
    void theEntriesLeftMoveToTheFrontTheFirstTrimmed() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment iov = iovecs(arena, 100, 200, 300);
            assertThat(IovecWindow.consume(iov, 3, 150)).isEqualTo(2);
            assertThat(base(iov, 0)).isEqualTo(0x2000 + 50);
            assertThat(length(iov, 0)).isEqualTo(150);
            assertThat(base(iov, 1)).isEqualTo(0x3000);
            assertThat(length(iov, 1)).isEqualTo(300);
            assertThat(IovecWindow.consume(iov, 2, 10)).as("within the first entry: trimmed in place").isEqualTo(2);
            assertThat(base(iov, 0)).isEqualTo(0x2000 + 60);
            assertThat(length(iov, 0)).isEqualTo(140);
            assertThat(IovecWindow.consume(iov, 2, 440)).as("everything").isZero();
        }
    }
}
