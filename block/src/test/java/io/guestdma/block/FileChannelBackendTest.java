package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * FileChannelBackend's vectored path hands the JDK buffers that carry no memory session (so that
 * NIO allocates nothing per buffer), past FFM's checks: it must refuse memory that FFM would have
 * refused, before touching it. ({@link FileChannelBackendProperties}: the bytes it moves.)
 */
class FileChannelBackendTest {
    private static final int IMAGE = 64 * 1024;

    @TempDir
    Path dir;

    private Path image(long seed) throws IOException {
        Path p = Files.createTempFile(dir, "disk", ".img");
        byte[] content = new byte[IMAGE];
        new Random(seed).nextBytes(content);
        Files.write(p, content);
        return p;
    }

    private static MemorySegment pattern(Arena arena, int bytes, int seed) {
        MemorySegment s = arena.allocate(bytes);
        for (int i = 0; i < bytes; i++) {
            s.set(ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i));
        }
        return s;
    }

    @Test
    void aVectorWhoseMemoryWasReleasedIsRefusedAndTheImageIsUntouched() throws Exception {
        Path img = image(1);
        byte[] before = Files.readAllBytes(img);
        try (FileChannelBackend disk = FileChannelBackend.open(img, BlockOptions.defaults())) {
            Arena guest = Arena.ofShared();
            IoVector iov = new IoVector().add(pattern(guest, 512, 1)).add(pattern(guest, 512, 2));
            disk.writev(0, iov); // builds and caches the buffers over this memory
            before = Files.readAllBytes(img);
            guest.close();

            assertThatThrownBy(() -> disk.writev(4096, iov)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("released");
            assertThatThrownBy(() -> disk.readv(4096, iov)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("released");
            assertThat(Files.readAllBytes(img)).isEqualTo(before);

            try (Arena fresh = Arena.ofConfined()) {
                IoVector ok = new IoVector().add(fresh.allocate(1024));
                disk.readv(0, ok);
                assertThat(ok.toByteArray()).as("the backend still serves other vectors")
                        .isEqualTo(java.util.Arrays.copyOf(before, 1024));
            }
        }
    }

    @Test
    void aReadIntoReadOnlyMemoryIsRefusedBeforeAnythingIsRead() throws Exception {
        Path img = image(2);
        try (FileChannelBackend disk = FileChannelBackend.open(img, BlockOptions.defaults());
             Arena arena = Arena.ofConfined()) {
            MemorySegment writable = arena.allocate(512);
            MemorySegment rom = pattern(arena, 512, 3);
            IoVector iov = new IoVector().add(writable).add(rom.asReadOnly());
            assertThatThrownBy(() -> disk.readv(0, iov)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("segment 1").hasMessageContaining("read-only");
            assertThat(new IoVector().add(writable).isZero()).as("nothing was read").isTrue();
            assertThat(rom.asByteBuffer()).isEqualTo(pattern(arena, 512, 3).asByteBuffer());

            disk.writev(0, iov);
            assertThat(Files.readAllBytes(img)).startsWith(iov.toByteArray());
        }
    }

    @Test
    void memoryConfinedToAnotherThreadIsRefused() throws Exception {
        Path img = image(3);
        byte[] before = Files.readAllBytes(img);
        try (FileChannelBackend disk = FileChannelBackend.open(img, BlockOptions.defaults());
             Arena confined = Arena.ofConfined()) {
            IoVector iov = new IoVector().add(pattern(confined, 4096, 4));
            CompletableFuture<Void> write = CompletableFuture.runAsync(() -> {
                try {
                    disk.writev(0, iov);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            assertThatThrownBy(write::get).isInstanceOf(ExecutionException.class)
                    .hasCauseInstanceOf(WrongThreadException.class);
            assertThat(Files.readAllBytes(img)).isEqualTo(before);
        }
    }
}
