package io.guestdma.block;

import io.guestdma.memory.IoVector;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The behaviour every {@link BlockBackend} promises, run against every implementation: the two
 * local ones, and NBD to a qemu-nbd serving the same kind of image file. Tests about local files
 * only (missing files, locks, truncation under the backend) leave NBD out.
 */
class BlockBackendContractTest {
    enum Kind {
        FILE_CHANNEL, NATIVE, NBD;

        BlockBackend open(Path image, BlockOptions options) throws IOException {
            return switch (this) {
                case FILE_CHANNEL -> FileChannelBackend.open(image, options);
                case NATIVE -> NativeBackend.open(image, options);
                case NBD -> ServedImage.open(image, options);
            };
        }
    }

    @TempDir
    Path dir;

    private Path image(int bytes, long seed) throws IOException {
        Path p = dir.resolve("disk-" + seed + ".img");
        byte[] content = new byte[bytes];
        new Random(seed).nextBytes(content);
        Files.write(p, content);
        return p;
    }

    /** Cuts {@code bytes} of native memory into randomly sized pieces, as a PRD table does. */
    private static IoVector scattered(Arena arena, int bytes, Random random, int maxPiece) {
        IoVector iov = new IoVector();
        int at = 0;
        while (at < bytes) {
            int n = Math.min(bytes - at, 1 + random.nextInt(maxPiece));
            iov.add(arena.allocate(n, 1 << random.nextInt(4)));
            at += n;
        }
        return iov;
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void vectoredWritesAndReadsRoundTripAtArbitraryOffsets(Kind kind) throws Exception {
        Path img = image(1 << 20, 1);
        byte[] expected = Files.readAllBytes(img);
        Random random = new Random(42);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            assertThat(disk.size()).isEqualTo(1 << 20);
            for (int round = 0; round < 50; round++) {
                int len = 1 + random.nextInt(40_000);
                long offset = random.nextInt((1 << 20) - len);
                IoVector out = scattered(arena, len, random, 3000);
                byte[] data = new byte[len];
                random.nextBytes(data);
                out.copyFrom(0, data, 0, len);
                disk.writev(offset, out);
                System.arraycopy(data, 0, expected, (int) offset, len);

                IoVector in = scattered(arena, len, random, 5000);
                disk.readv(offset, in);
                assertThat(in.toByteArray()).isEqualTo(data);
            }
        }
        assertThat(Files.readAllBytes(img)).isEqualTo(expected);
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void vectorsOfMoreThan1024SegmentsMoveEveryByte(Kind kind) throws Exception {
        Path img = image(1 << 20, 2);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            IoVector out = new IoVector();
            byte[] data = new byte[3000 * 100];
            new Random(3).nextBytes(data);
            for (int i = 0; i < 3000; i++) {
                out.add(arena.allocate(100).copyFrom(MemorySegment.ofArray(data).asSlice(i * 100L, 100)));
            }
            disk.writev(4096, out);
            IoVector in = new IoVector();
            for (int i = 0; i < 2500; i++) {
                in.add(arena.allocate(120));
            }
            disk.readv(4096, in);
            assertThat(in.toByteArray()).isEqualTo(data);
        }
        byte[] onDisk = Files.readAllBytes(img);
        byte[] written = Arrays.copyOfRange(onDisk, 4096, 4096 + 300_000);
        byte[] data = new byte[300_000];
        new Random(3).nextBytes(data);
        assertThat(written).isEqualTo(data);
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void contiguousBufferCallsMoveEveryByteIncludingHeapBuffers(Kind kind) throws Exception {
        Path img = image(256 * 1024, 4);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults())) {
            byte[] data = new byte[100_000];
            new Random(5).nextBytes(data);
            ByteBuffer heap = ByteBuffer.wrap(data);
            disk.write(777, heap);
            assertThat(heap.hasRemaining()).isFalse();
            ByteBuffer direct = ByteBuffer.allocateDirect(100_000);
            disk.read(777, direct);
            assertThat(direct.position()).isEqualTo(100_000);
            byte[] back = new byte[100_000];
            direct.flip().get(back);
            assertThat(back).isEqualTo(data);
            ByteBuffer heapIn = ByteBuffer.allocate(100_000);
            disk.read(777, heapIn);
            assertThat(heapIn.array()).isEqualTo(data);
        }
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void requestsOutsideTheImageFailBeforeTouchingIt(Kind kind) throws Exception {
        Path img = image(8192, 6);
        byte[] before = Files.readAllBytes(img);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            IoVector iov = new IoVector().add(arena.allocate(1024));
            assertThatThrownBy(() -> disk.writev(8192 - 512, iov))
                    .isInstanceOf(IOException.class).hasMessageContaining("outside image").hasMessageContaining("8192 bytes");
            assertThatThrownBy(() -> disk.readv(-512, iov)).hasMessageContaining("outside image");
            assertThatThrownBy(() -> disk.readv(Long.MAX_VALUE - 10, iov)).hasMessageContaining("outside image");
            assertThatThrownBy(() -> disk.discard(4096, 8192)).hasMessageContaining("outside image");
            assertThatThrownBy(() -> disk.write(9000, ByteBuffer.allocate(1))).hasMessageContaining("outside image");
        }
        assertThat(Files.size(img)).as("the image never grows").isEqualTo(8192);
        assertThat(Files.readAllBytes(img)).isEqualTo(before);
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void readOnlyImagesRefuseWritesAndDiscards(Kind kind) throws Exception {
        Path img = image(8192, 7);
        byte[] before = Files.readAllBytes(img);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults().withReadOnly(true)); Arena arena = Arena.ofConfined()) {
            assertThat(disk.isReadOnly()).isTrue();
            IoVector iov = new IoVector().add(arena.allocate(512));
            assertThatThrownBy(() -> disk.writev(0, iov)).isInstanceOf(ReadOnlyImageException.class)
                    .hasMessageContaining("read-only").hasMessageContaining(img.toString());
            assertThatThrownBy(() -> disk.write(0, ByteBuffer.allocate(1))).isInstanceOf(ReadOnlyImageException.class);
            assertThatThrownBy(() -> disk.discard(0, 512)).isInstanceOf(ReadOnlyImageException.class);
            disk.flush();
            disk.readv(512, iov);
            assertThat(iov.toByteArray()).isEqualTo(Arrays.copyOfRange(before, 512, 1024));
        }
        assertThat(Files.readAllBytes(img)).isEqualTo(before);
    }

    @ParameterizedTest
    @EnumSource(value = Kind.class, names = {"FILE_CHANNEL", "NATIVE"})
    void missingFilesAndDirectoriesAreNamedClearly(Kind kind) {
        assertThatThrownBy(() -> kind.open(dir.resolve("nope.img"), BlockOptions.defaults()))
                .isInstanceOf(NoSuchFileException.class).hasMessageContaining("nope.img").hasMessageContaining("does not exist");
        assertThatThrownBy(() -> kind.open(dir, BlockOptions.defaults()))
                .isInstanceOf(IOException.class).hasMessageContaining("is a directory");
    }

    @ParameterizedTest
    @EnumSource(value = Kind.class, names = {"FILE_CHANNEL", "NATIVE"})
    void aLockedImageCannotBeOpenedForWritingTwice(Kind kind) throws Exception {
        Path img = image(4096, 8);
        try (BlockBackend first = kind.open(img, BlockOptions.defaults())) {
            for (Kind other : new Kind[] {Kind.FILE_CHANNEL, Kind.NATIVE}) {
                assertThatThrownBy(() -> other.open(img, BlockOptions.defaults()))
                        .isInstanceOf(ImageLockedException.class).hasMessageContaining(img.toString());
                assertThatThrownBy(() -> other.open(img, BlockOptions.defaults().withReadOnly(true)))
                        .isInstanceOf(ImageLockedException.class);
            }
            try (BlockBackend unlocked = kind.open(img, BlockOptions.defaults().withLock(false))) {
                assertThat(unlocked.size()).isEqualTo(first.size());
            }
        }
        try (BlockBackend reader1 = kind.open(img, BlockOptions.defaults().withReadOnly(true));
             BlockBackend reader2 = kind.open(img, BlockOptions.defaults().withReadOnly(true))) {
            assertThat(reader1.size()).isEqualTo(reader2.size());
            assertThatThrownBy(() -> kind.open(img, BlockOptions.defaults())).isInstanceOf(ImageLockedException.class);
        }
        try (BlockBackend again = kind.open(img, BlockOptions.defaults())) {
            assertThat(again.isReadOnly()).as("closing released the lock").isFalse();
        }
    }

    @ParameterizedTest
    @EnumSource(value = Kind.class, names = {"FILE_CHANNEL", "NATIVE"})
    void anImageTruncatedWhileOpenGivesAClearErrorNotZeroes(Kind kind) throws Exception {
        Path img = image(8192, 9);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
                ch.truncate(4096);
            }
            IoVector iov = new IoVector().add(arena.allocate(1024)).add(arena.allocate(1024));
            assertThatThrownBy(() -> disk.readv(4096 - 1024, iov))
                    .isInstanceOf(IOException.class).hasMessageContaining("ended at byte 4096").hasMessageContaining("truncated");
            assertThatThrownBy(() -> disk.read(6000, ByteBuffer.allocate(10))).hasMessageContaining("ended at byte");
        }
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void discardedRangesReadAsZeroAndTheRestIsUntouched(Kind kind) throws Exception {
        Path img = image(1 << 20, 10);
        byte[] before = Files.readAllBytes(img);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults())) {
            disk.discard(8192, 200_000);
            disk.discard(0, 0);
            disk.flush();
        }
        byte[] after = Files.readAllBytes(img);
        assertThat(after).hasSize(1 << 20);
        assertThat(Arrays.copyOfRange(after, 8192, 208_192)).containsOnly((byte) 0);
        assertThat(Arrays.copyOfRange(after, 0, 8192)).isEqualTo(Arrays.copyOfRange(before, 0, 8192));
        assertThat(Arrays.copyOfRange(after, 208_192, 1 << 20)).isEqualTo(Arrays.copyOfRange(before, 208_192, 1 << 20));
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void concurrentVectoredWritersAndReadersDoNotInterfere(Kind kind) throws Exception {
        int threads = 6;
        int slot = 64 * 1024;
        Path img = image(threads * slot, 11);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults())) {
            List<Future<byte[]>> results = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int me = t;
                results.add(pool.submit(() -> {
                    Random random = new Random(me);
                    byte[] last = null;
                    try (Arena arena = Arena.ofConfined()) {
                        for (int round = 0; round < 200; round++) {
                            byte[] data = new byte[slot];
                            random.nextBytes(data);
                            IoVector out = scattered(arena, slot, random, 8000);
                            out.copyFrom(0, data, 0, slot);
                            disk.writev((long) me * slot, out);
                            IoVector in = scattered(arena, slot, random, 8000);
                            disk.readv((long) me * slot, in);
                            assertThat(in.toByteArray()).as("thread %d round %d reads back its own write", me, round).isEqualTo(data);
                            last = data;
                        }
                    }
                    return last;
                }));
            }
            byte[] onDisk;
            List<byte[]> finals = new ArrayList<>();
            for (Future<byte[]> f : results) {
                finals.add(f.get(2, TimeUnit.MINUTES));
            }
            disk.flush();
            onDisk = Files.readAllBytes(img);
            for (int t = 0; t < threads; t++) {
                assertThat(Arrays.copyOfRange(onDisk, t * slot, (t + 1) * slot)).isEqualTo(finals.get(t));
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void asyncRequestsCompleteOnTheExecutorAndCancelledOnesNeverRun(Kind kind) throws Exception {
        Path img = image(65536, 12);
        byte[] before = Files.readAllBytes(img);
        ExecutorService single = Executors.newSingleThreadExecutor();
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults()); Arena arena = Arena.ofShared()) {
            CompletableFuture<Void> gate = new CompletableFuture<>();
            single.execute(gate::join);
            IoVector cancelled = new IoVector().add(arena.allocate(4096).fill((byte) 0x55));
            CompletableFuture<Void> doomed = disk.writevAsync(0, cancelled, single);
            assertThat(doomed.cancel(false)).isTrue();
            IoVector kept = new IoVector().add(arena.allocate(4096).fill((byte) 0x66));
            CompletableFuture<Void> write = disk.writevAsync(8192, kept, single);
            gate.complete(null);
            write.get(1, TimeUnit.MINUTES);
            disk.flushAsync(single).get(1, TimeUnit.MINUTES);
            assertThatThrownBy(doomed::join).isInstanceOf(CancellationException.class);

            IoVector in = new IoVector().add(arena.allocate(4096));
            disk.readvAsync(8192, in, single).get(1, TimeUnit.MINUTES);
            assertThat(in.toByteArray()).containsOnly((byte) 0x66);

            CompletableFuture<Void> bad = disk.readvAsync(65536, in, single);
            assertThatThrownBy(() -> bad.get(1, TimeUnit.MINUTES)).isInstanceOf(ExecutionException.class)
                    .hasCauseInstanceOf(IOException.class);
            disk.discardAsync(16384, 4096, single).get(1, TimeUnit.MINUTES);
        } finally {
            single.shutdownNow();
        }
        byte[] after = Files.readAllBytes(img);
        if (kind == Kind.NBD) {
            // NbdBackend sends a request at once (ServedImage forwards to it): cancelling the
            // future never withdraws what was sent, as NbdBackend documents.
            assertThat(Arrays.copyOfRange(after, 0, 4096)).as("the cancelled write was sent").containsOnly((byte) 0x55);
        } else {
            assertThat(Arrays.copyOfRange(after, 0, 4096)).as("the cancelled write never ran").isEqualTo(Arrays.copyOfRange(before, 0, 4096));
        }
        assertThat(Arrays.copyOfRange(after, 16384, 20480)).containsOnly((byte) 0);
    }

    @ParameterizedTest
    @EnumSource(Kind.class)
    void closedBackendsRefuseRequestsAndCloseIsIdempotent(Kind kind) throws Exception {
        Path img = image(4096, 13);
        BlockBackend disk = kind.open(img, BlockOptions.defaults());
        disk.close();
        disk.close();
        try (Arena arena = Arena.ofConfined()) {
            IoVector iov = new IoVector().add(arena.allocate(512));
            assertThatThrownBy(() -> disk.readv(0, iov)).isInstanceOf(IOException.class);
            assertThatThrownBy(() -> disk.writev(0, iov)).isInstanceOf(IOException.class);
        }
    }
}
