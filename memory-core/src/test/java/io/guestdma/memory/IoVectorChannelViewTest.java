package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.memory.internal.FileChannelBuffers;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The FileChannel backend's internal view of an IoVector ({@link FileChannelBuffers}). */
class IoVectorChannelViewTest {

    @TempDir
    Path dir;

    private static MemorySegment filled(Arena arena, int bytes, int seed) {
        MemorySegment s = arena.allocate(bytes);
        for (int i = 0; i < bytes; i++) {
            s.set(ValueLayout.JAVA_BYTE, i, (byte) (seed + i * 7));
        }
        return s;
    }

    private static long gather(FileChannel ch, IoVector v) throws IOException {
        ByteBuffer[] buffers = FileChannelBuffers.toWrite(v);
        FileChannelBuffers.requireUsable(v);
        return ch.write(buffers, 0, FileChannelBuffers.count(v));
    }

    @Test
    void theJdkLetsUsMakeSessionlessBuffers() {
        // Without them the view still works, but allocates 40 bytes per buffer per call again.
        assertThat(SessionlessBuffers.available()).isTrue();
    }

    @Test
    void gatheringWritesAndScatteringReadsMoveTheBytesOfSegmentsWindowsAndHeapMemory() throws IOException {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment ram = filled(arena, 8192, 3);
            IoVector native_ = new IoVector().add(filled(arena, 100, 1)).addWindow(ram, 4000, 300)
                    .add(filled(arena, 1, 9).asReadOnly());
            IoVector mixed = new IoVector().add(MemorySegment.ofArray(new byte[] {1, 2, 3})).add(filled(arena, 50, 5));
            Path file = dir.resolve("img");
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                    StandardOpenOption.WRITE)) {
                assertThat(gather(ch, native_)).isEqualTo(401);
                assertThat(gather(ch, mixed)).isEqualTo(53);
                byte[] expected = new byte[454];
                native_.copyTo(0, MemorySegment.ofArray(expected), 0, 401);
                mixed.copyTo(0, MemorySegment.ofArray(expected), 401, 53);
                assertThat(Files.readAllBytes(file)).isEqualTo(expected);

                MemorySegment back = arena.allocate(454);
                IoVector into = new IoVector().addWindow(back, 0, 7).addWindow(back, 7, 400).add(back.asSlice(407));
                ch.position(0);
                ByteBuffer[] buffers = FileChannelBuffers.toRead(into);
                FileChannelBuffers.requireUsable(into);
                assertThat(ch.read(buffers, 0, FileChannelBuffers.count(into))).isEqualTo(454);
                assertThat(back.toArray(ValueLayout.JAVA_BYTE)).isEqualTo(expected);
            }
        }
    }

    @Test
    void buffersAreCachedPerSlotAndRebuiltOnlyWhenAddressLengthOrAccessChanges() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment ram = arena.allocate(4096);
            IoVector v = new IoVector().addWindow(ram, 0, 512).addWindow(ram, 1024, 512);
            ByteBuffer[] first = FileChannelBuffers.toWrite(v);
            ByteBuffer b0 = first[0];
            ByteBuffer b1 = first[1];
            b0.position(100);

            v.reset();
            v.add(ram.asSlice(0, 512)).addWindow(ram, 1024, 512);
            ByteBuffer[] again = FileChannelBuffers.toWrite(v);
            assertThat(again).isSameAs(first);
            assertThat(again[0]).as("the same bytes as a slice instead of a window").isSameAs(b0);
            assertThat(again[0].position()).as("rewound").isZero();
            assertThat(again[1]).isSameAs(b1);

            v.reset();
            v.addWindow(ram, 8, 512).addWindow(ram, 1024, 256).add(ram.asSlice(2048, 16).asReadOnly());
            ByteBuffer[] moved = FileChannelBuffers.toWrite(v);
            assertThat(FileChannelBuffers.count(v)).isEqualTo(3);
            assertThat(moved[0]).as("other address").isNotSameAs(b0);
            assertThat(moved[1]).as("other length").isNotSameAs(b1);
            assertThat(moved[1].remaining()).isEqualTo(256);
            assertThat(moved[2].isReadOnly()).isTrue();
            assertThatThrownBy(() -> moved[2].put(0, (byte) 1)).isInstanceOf(java.nio.ReadOnlyBufferException.class);

            v.reset();
            v.add(ram.asSlice(2048, 16));
            assertThat(FileChannelBuffers.toWrite(v)[0].isReadOnly()).as("read-write is not the same access").isFalse();
        }
    }

    @Test
    void readOnlySegmentsServeWritesButAreRefusedForReads() {
        try (Arena arena = Arena.ofShared()) {
            IoVector v = new IoVector().add(arena.allocate(16)).add(arena.allocate(16).asReadOnly());
            assertThat(FileChannelBuffers.toWrite(v)[1].isReadOnly()).isTrue();
            assertThatThrownBy(() -> FileChannelBuffers.toRead(v)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("segment 1").hasMessageContaining("read-only");
        }
    }

    @Test
    void releasedMemoryIsRefusedEvenWhenTheCachedBuffersAreReused() {
        Arena arena = Arena.ofShared();
        MemorySegment ram = arena.allocate(4096);
        IoVector v = new IoVector().add(ram.asSlice(0, 64)).add(ram.asSlice(512, 64));
        FileChannelBuffers.toWrite(v);
        FileChannelBuffers.requireUsable(v);
        arena.close();
        ByteBuffer[] stale = FileChannelBuffers.toWrite(v);
        assertThat(stale[0].remaining()).as("the view itself checks nothing").isEqualTo(64);
        assertThatThrownBy(() -> FileChannelBuffers.requireUsable(v)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("segment 0").hasMessageContaining("released");
    }

    @Test
    void memoryConfinedToAnotherThreadIsRefused() throws Exception {
        try (Arena confined = Arena.ofConfined()) {
            IoVector v = new IoVector().add(confined.allocate(64));
            FileChannelBuffers.toWrite(v);
            FileChannelBuffers.requireUsable(v);
            CompletableFuture<Void> elsewhere = CompletableFuture.runAsync(() -> FileChannelBuffers.requireUsable(v));
            assertThatThrownBy(elsewhere::get).isInstanceOf(ExecutionException.class)
                    .hasCauseInstanceOf(WrongThreadException.class);
        }
    }

    @Test
    void segmentsOverOneGibibyteAreSplitIntoBuffersThatFollowEachOther() {
        try (RamBacking big = RamBacking.reserved(IoVector.MAX_BUFFER_BYTES + 4096L)) {
            MemorySegment all = big.segment();
            IoVector v = new IoVector().addWindow(all, 0, all.byteSize());
            ByteBuffer[] buffers = FileChannelBuffers.toWrite(v);
            assertThat(FileChannelBuffers.count(v)).isEqualTo(2);
            assertThat(buffers[0].remaining()).isEqualTo(IoVector.MAX_BUFFER_BYTES);
            assertThat(buffers[1].remaining()).isEqualTo(4096);
            all.set(ValueLayout.JAVA_BYTE, IoVector.MAX_BUFFER_BYTES, (byte) 42);
            assertThat(buffers[1].get(0)).as("the second starts where the first ends").isEqualTo((byte) 42);
        }
    }

    @Test
    void thePublicBuffersStayScopedToTheirMemory() {
        Arena arena = Arena.ofShared();
        IoVector v = new IoVector().add(arena.allocate(64));
        FileChannelBuffers.toWrite(v);
        ByteBuffer published = v.byteBuffers()[0];
        arena.close();
        assertThatThrownBy(() -> published.get(0)).isInstanceOf(IllegalStateException.class);
    }
}
