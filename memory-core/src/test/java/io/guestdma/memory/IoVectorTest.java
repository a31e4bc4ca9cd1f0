package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.memory.internal.Posix;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IoVectorTest {

    private static MemorySegment bytes(Arena arena, String text) {
        return arena.allocateFrom(ValueLayout.JAVA_BYTE, text.getBytes());
    }

    private static String text(IoVector v) {
        return new String(v.toByteArray());
    }

    @Test
    void addCountsOnlySegmentsThatCarryBytes() {
        try (Arena arena = Arena.ofConfined()) {
            IoVector v = new IoVector(1);
            v.add(bytes(arena, "abc")).add(MemorySegment.NULL).add(bytes(arena, "defgh"));
            assertThat(v.count()).isEqualTo(2);
            assertThat(v.size()).isEqualTo(8);
            assertThat(text(v)).isEqualTo("abcdefgh");
            v.addAll(v);
            assertThat(v.count()).isEqualTo(4);
            assertThat(text(v)).isEqualTo("abcdefghabcdefgh");
            assertThatThrownBy(() -> v.add(null)).isInstanceOf(NullPointerException.class);
        }
    }

    @Test
    void concatAndSliceShareMemoryInsteadOfCopying() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = bytes(arena, "0123");
            MemorySegment b = bytes(arena, "4567");
            IoVector source = new IoVector().add(a).add(b);
            IoVector middle = new IoVector().concat(source, 2, 4);
            assertThat(text(middle)).isEqualTo("2345");
            assertThat(middle.count()).isEqualTo(2);
            a.set(ValueLayout.JAVA_BYTE, 3, (byte) 'X');
            assertThat(text(middle)).as("a view, not a copy").isEqualTo("2X45");
            assertThat(text(source.slice(3, 5))).isEqualTo("X4567");
            assertThat(source.slice(8, 0).isEmpty()).isTrue();
            assertThatThrownBy(() -> source.slice(5, 4)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> source.concat(source, 0, 1)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> middle.concat(source, -1, 1)).isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void flattenAndUnflattenCrossSegmentBoundaries() {
        try (Arena arena = Arena.ofConfined()) {
            IoVector v = new IoVector().add(arena.allocate(3)).add(arena.allocate(1)).add(arena.allocate(6));
            assertThat(v.copyFrom(2, "abcdefgh".getBytes(), 0, 8)).isEqualTo(8);
            byte[] out = new byte[10];
            assertThat(v.copyTo(0, out, 0, 10)).isEqualTo(10);
            assertThat(new String(out, 2, 8)).isEqualTo("abcdefgh");
            MemorySegment flat = arena.allocate(20);
            assertThat(v.copyTo(4, flat)).as("limited by what the vector holds").isEqualTo(6);
            assertThat(flat.asSlice(0, 6).toArray(ValueLayout.JAVA_BYTE)).isEqualTo("cdefgh".getBytes());
            assertThat(v.copyFrom(9, bytes(arena, "XYZ"))).as("limited by the vector's end").isEqualTo(1);
            assertThat(v.copyTo(10, out, 0, 5)).as("at the end").isZero();
            assertThatThrownBy(() -> v.copyTo(11, out, 0, 1)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> v.copyTo(0, out, 8, 5)).isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void fillAndIsZero() {
        try (Arena arena = Arena.ofConfined()) {
            IoVector v = new IoVector().add(arena.allocate(5)).add(arena.allocate(5));
            assertThat(v.isZero()).isTrue();
            assertThat(v.fill(3, (byte) 7, 4)).isEqualTo(4);
            assertThat(v.toByteArray()).containsExactly(0, 0, 0, 7, 7, 7, 7, 0, 0, 0);
            assertThat(v.isZero()).isFalse();
            assertThat(v.isZero(0, 3)).isTrue();
            assertThat(v.isZero(7, 3)).isTrue();
            assertThat(v.isZero(2, 2)).isFalse();
            assertThat(v.fill(8, (byte) 1, 100)).isEqualTo(2);
            assertThatThrownBy(() -> v.isZero(5, 6)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> v.fill(0, (byte) 1, -1)).isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void readOnlySegmentsRefuseToBeWritten() {
        try (Arena arena = Arena.ofConfined()) {
            IoVector v = new IoVector().add(bytes(arena, "rw")).add(bytes(arena, "ro").asReadOnly());
            assertThat(v.copyFrom(0, "RW".getBytes(), 0, 2)).isEqualTo(2);
            assertThatThrownBy(() -> v.fill(0, (byte) 0, 4)).isInstanceOf(UnsupportedOperationException.class)
                    .hasMessageContaining("segment 1");
            assertThat(text(v)).as("refused before anything was written").isEqualTo("RWro");
            assertThat(v.fill(0, (byte) 'x', 2)).as("the writable part alone is fine").isEqualTo(2);
            assertThat(v.byteBuffers()[1].isReadOnly()).isTrue();
        }
    }

    @Test
    void discardFrontAndBackTrimWholeAndPartialSegments() {
        try (Arena arena = Arena.ofConfined()) {
            IoVector v = new IoVector().add(bytes(arena, "ab")).add(bytes(arena, "cdef")).add(bytes(arena, "gh"));
            assertThat(v.discardFront(3)).isEqualTo(3);
            assertThat(text(v)).isEqualTo("defgh");
            assertThat(v.count()).isEqualTo(2);
            assertThat(v.discardBack(3)).isEqualTo(3);
            assertThat(text(v)).isEqualTo("de");
            assertThat(v.count()).isEqualTo(1);
            assertThat(v.discardBack(10)).isEqualTo(2);
            assertThat(v.isEmpty()).isTrue();
            assertThat(v.discardFront(1)).isZero();
            assertThatThrownBy(() -> v.discardFront(-1)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void compareIgnoresHowTheBytesAreCut() {
        try (Arena arena = Arena.ofConfined()) {
            IoVector a = new IoVector().add(bytes(arena, "abc")).add(bytes(arena, "def"));
            IoVector b = new IoVector().add(bytes(arena, "a")).add(bytes(arena, "bcde")).add(bytes(arena, "f"));
            assertThat(a.compare(b)).isEqualTo(-1);
            IoVector c = new IoVector().add(bytes(arena, "abcdXf"));
            assertThat(a.compare(c)).isEqualTo(4);
            IoVector prefix = new IoVector().add(bytes(arena, "abcd"));
            assertThat(a.compare(prefix)).isEqualTo(4);
            assertThat(prefix.compare(a)).isEqualTo(4);
        }
    }

    @Test
    void resetKeepsCapacityAndDropsReferences() {
        try (Arena arena = Arena.ofConfined()) {
            IoVector v = new IoVector();
            for (int i = 0; i < 100; i++) {
                v.add(arena.allocate(8));
            }
            v.reset();
            assertThat(v.count()).isZero();
            assertThat(v.size()).isZero();
            assertThat(v.isEmpty()).isTrue();
            assertThatThrownBy(() -> v.segment(0)).isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void byteBufferViewIsCachedWhenTheSameMemoryComesBack() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(1 << 16);
            IoVector v = new IoVector();
            v.add(ram.asSlice(0, 4096)).add(ram.asSlice(8192, 512));
            ByteBuffer[] first = v.byteBuffers();
            ByteBuffer b0 = first[0];
            ByteBuffer b1 = first[1];
            assertThat(v.byteBufferCount()).isEqualTo(2);
            b0.position(4096); // as a gathering write leaves it
            v.reset();
            // A device re-maps the same guest pages: fresh slice objects, same memory.
            v.add(ram.asSlice(0, 4096)).add(ram.asSlice(8192, 512));
            ByteBuffer[] second = v.byteBuffers();
            assertThat(second).isSameAs(first);
            assertThat(second[0]).isSameAs(b0);
            assertThat(second[1]).isSameAs(b1);
            assertThat(second[0].position()).as("rewound").isZero();
            assertThat(second[0].limit()).isEqualTo(4096);
            v.reset();
            v.add(ram.asSlice(100, 10));
            assertThat(v.byteBuffers()[0]).isNotSameAs(b0);
            assertThat(v.byteBufferCount()).isEqualTo(1);
        }
    }

    @Test
    void segmentsOverOneGibAreSplitIntoSeveralBuffers() {
        // Reserved memory: nothing is touched, so 3 GiB costs nothing.
        try (RamBacking backing = RamBacking.reserved(3L << 30)) {
            IoVector v = new IoVector().add(backing.segment());
            ByteBuffer[] buffers = v.byteBuffers();
            assertThat(v.byteBufferCount()).isEqualTo(3);
            long total = 0;
            for (int i = 0; i < v.byteBufferCount(); i++) {
                assertThat(buffers[i].remaining()).isLessThanOrEqualTo(IoVector.MAX_BUFFER_BYTES);
                total += buffers[i].remaining();
            }
            assertThat(total).isEqualTo(3L << 30);
            assertThat(v.nativeIovecCount()).as("the kernel takes any size_t").isEqualTo(1);
        }
    }

    @Test
    void nativeIovecsDescribeTheSegmentsAndAreRewrittenOnlyOnChange() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(100);
            MemorySegment b = arena.allocate(300);
            IoVector v = new IoVector().add(a).add(b);
            MemorySegment iov = v.nativeIovecs();
            assertThat(v.nativeIovecCount()).isEqualTo(2);
            assertThat(iov.get(ValueLayout.JAVA_LONG, 0)).isEqualTo(a.address());
            assertThat(iov.get(ValueLayout.JAVA_LONG, 8)).isEqualTo(100);
            assertThat(iov.get(ValueLayout.JAVA_LONG, 16)).isEqualTo(b.address());
            assertThat(iov.get(ValueLayout.JAVA_LONG, 24)).isEqualTo(300);
            assertThat(IoVector.IOVEC.byteSize()).isEqualTo(16);
            v.discardFront(10);
            MemorySegment again = v.nativeIovecs();
            assertThat(again.get(ValueLayout.JAVA_LONG, 0)).isEqualTo(a.address() + 10);
            assertThat(again.get(ValueLayout.JAVA_LONG, 8)).isEqualTo(90);
        }
    }

    @Test
    void aWindowAnswersTheBackendsQuestionsWithoutASlice() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = bytes(arena, "0123456789");
            IoVector v = new IoVector(1).addWindow(ram, 2, 5).addWindow(ram, 9, 0).addWindow(ram.asReadOnly(), 8, 2);
            assertThat(v.count()).as("the empty range is ignored").isEqualTo(2);
            assertThat(text(v)).isEqualTo("2345689");
            assertThat(v.length(0)).isEqualTo(5);
            assertThat(v.address(0)).isEqualTo(ram.address() + 2);
            assertThat(v.isNative(0)).isTrue();
            assertThat(v.isReadOnly(0)).isFalse();
            assertThat(v.isReadOnly(1)).isTrue();
            assertThat(v.isAlive(1)).isTrue();
            MemorySegment slice = v.segment(0);
            assertThat(slice.address()).isEqualTo(ram.address() + 2);
            assertThat(slice.byteSize()).isEqualTo(5);
            assertThat(v.segment(0)).as("made once").isSameAs(slice);
            assertThat(v.segment(1).isReadOnly()).isTrue();

            MemorySegment iov = v.nativeIovecs();
            assertThat(iov.get(ValueLayout.JAVA_LONG, 0)).isEqualTo(ram.address() + 2);
            assertThat(iov.get(ValueLayout.JAVA_LONG, 8)).isEqualTo(5);
            assertThat(iov.get(ValueLayout.JAVA_LONG, 16)).isEqualTo(ram.address() + 8);
            assertThatThrownBy(v::writableNativeIovecs).isInstanceOf(UnsupportedOperationException.class);

            v.discardFront(1);
            v.discardBack(1);
            assertThat(text(v)).isEqualTo("34568");
            assertThat(v.segment(0).address()).as("a discard re-cuts the range").isEqualTo(ram.address() + 3);
            assertThatThrownBy(() -> v.fill(0, (byte) 'x', 5)).isInstanceOf(UnsupportedOperationException.class);
            assertThat(v.fill(0, (byte) 'x', 4)).isEqualTo(4);
            assertThat(new String(ram.toArray(ValueLayout.JAVA_BYTE))).as("only the range is written")
                    .isEqualTo("012xxxx789");

            assertThatThrownBy(() -> v.addWindow(ram, 8, 3)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> v.addWindow(ram, -1, 1)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> v.addWindow(null, 0, 0)).isInstanceOf(NullPointerException.class);
            assertThatThrownBy(() -> v.length(2)).isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void theSameWindowAgainReusesItsCachedBuffer() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(8192);
            IoVector v = new IoVector().addWindow(ram, 4096, 512);
            ByteBuffer first = v.byteBuffers()[0];
            assertThat(first.remaining()).isEqualTo(512);
            v.reset();
            v.addWindow(ram, 4096, 512);
            assertThat(v.byteBuffers()[0]).as("same memory, same buffer").isSameAs(first);
            v.reset();
            v.addWindow(ram, 0, 512);
            assertThat(v.byteBuffers()[0]).as("other memory, a new buffer").isNotSameAs(first);
            v.reset();
            v.add(ram.asSlice(4096, 512));
            assertThat(v.byteBuffers()[0]).as("a slice of the same memory is the same memory").isNotNull();
            v.reset();
            v.addWindow(ram.asReadOnly(), 4096, 512);
            assertThat(v.byteBuffers()[0].isReadOnly()).as("read-only is not the same access").isTrue();
        }
    }

    @Test
    void heapSegmentsCannotBecomeNativeIovecs() {
        IoVector v = new IoVector().add(MemorySegment.ofArray(new byte[16]));
        assertThatThrownBy(v::nativeIovecs).isInstanceOf(IllegalStateException.class).hasMessageContaining("heap");
        assertThat(v.byteBuffers()[0].remaining()).as("heap segments still work for FileChannel").isEqualTo(16);
    }

    @Test
    void releasedMemoryIsRefusedRatherThanHandedToTheKernel() {
        Arena arena = Arena.ofConfined();
        IoVector v = new IoVector().add(arena.allocate(64));
        arena.close();
        assertThatThrownBy(v::nativeIovecs).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void bothViewsDriveRealGatheringWrites(@TempDir Path dir) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            IoVector v = new IoVector().add(bytes(arena, "gather ")).add(bytes(arena, "me"));
            Path viaChannel = dir.resolve("channel");
            try (FileChannel ch = FileChannel.open(viaChannel, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
                ch.write(v.byteBuffers(), 0, v.byteBufferCount());
            }
            Path viaNative = dir.resolve("native");
            int fd = Posix.open(viaNative, Posix.O_RDWR | Posix.O_CREAT, 0600);
            try {
                assertThat(Posix.pwritev(fd, v.nativeIovecs(), v.nativeIovecCount(), 0)).isEqualTo(9);
            } finally {
                Posix.close(fd);
            }
            assertThat(Files.readString(viaChannel)).isEqualTo("gather me");
            assertThat(Files.readString(viaNative)).isEqualTo("gather me");
        }
    }
}
