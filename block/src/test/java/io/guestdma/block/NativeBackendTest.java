package io.guestdma.block;

import io.guestdma.memory.IoVector;
import io.guestdma.memory.posix.PosixException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

/** What only the FFM backend does: O_DIRECT with bouncing, errno by name, no allocation per request. */
class NativeBackendTest {
    @TempDir
    Path dir;

    private Path image(int bytes) throws IOException {
        Path p = dir.resolve("disk.img");
        byte[] content = new byte[bytes];
        new Random(1).nextBytes(content);
        Files.write(p, content);
        return p;
    }

    @Test
    void directIoMovesAlignedVectorsStraightAndBouncesMisalignedOnes() throws Exception {
        Path img = image(1 << 20);
        NativeBackend disk;
        try {
            disk = NativeBackend.open(img, BlockOptions.defaults().withDirect(true));
        } catch (PosixException e) {
            assumeThat(e.errnoName()).as("this file system has no O_DIRECT").isNotEqualTo("EINVAL");
            throw e;
        }
        byte[] expected = Files.readAllBytes(img);
        try (disk; Arena arena = Arena.ofConfined()) {
            assertThat(disk.isDirect()).isTrue();
            byte[] data = new byte[8192];
            new Random(2).nextBytes(data);
            IoVector aligned = new IoVector().add(arena.allocate(4096, 4096)).add(arena.allocate(4096, 4096));
            aligned.copyFrom(0, data, 0, data.length);
            disk.writev(4096, aligned);
            System.arraycopy(data, 0, expected, 4096, data.length);

            // A guest buffer at an odd address: the kernel would say EINVAL; the backend bounces.
            MemorySegment odd = arena.allocate(3000 + 7, 4096).asSlice(7, 3000);
            IoVector misaligned = new IoVector().add(odd).add(arena.allocate(72, 8));
            byte[] more = new byte[3072];
            new Random(3).nextBytes(more);
            misaligned.copyFrom(0, more, 0, more.length);
            disk.writev(65536, misaligned);
            System.arraycopy(more, 0, expected, 65536, more.length);

            IoVector back = new IoVector().add(arena.allocate(1000, 8)).add(arena.allocate(2072, 8));
            disk.readv(65536, back);
            assertThat(back.toByteArray()).isEqualTo(more);
            ByteBuffer heap = ByteBuffer.allocate(8192);
            disk.read(4096, heap);
            assertThat(heap.array()).isEqualTo(data);

            assertThatThrownBy(() -> disk.writev(100, new IoVector().add(arena.allocate(512))))
                    .hasMessageContaining("O_DIRECT").hasMessageContaining("aligned to 512");
            disk.flush();
        }
        assertThat(Files.readAllBytes(img)).isEqualTo(expected);
    }

    @Test
    void fileChannelBackendRefusesDirectIoWithAPointerToTheNativeOne() throws Exception {
        Path img = image(4096);
        assertThatThrownBy(() -> FileChannelBackend.open(img, BlockOptions.defaults().withDirect(true)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("NativeBackend");
    }

    @Test
    void vectoredWritesAllocateNothingOnceWarm() throws Exception {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        Path img = image(1 << 20);
        try (NativeBackend disk = NativeBackend.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(1 << 20, 4096);
            IoVector iov = new IoVector();
            // The pieces a device mapped: slicing is the memory layer's business, not the backend's.
            MemorySegment[] pieces = new MemorySegment[16];
            for (int piece = 0; piece < 16; piece++) {
                pieces[piece] = ram.asSlice(piece * 8192L, 4096);
            }
            long id = Thread.currentThread().threadId();
            long allocated = 0;
            for (int round = 0; round < 3; round++) {
                long before = threads.getThreadAllocatedBytes(id);
                for (int i = 0; i < 20_000; i++) {
                    iov.reset();
                    for (MemorySegment piece : pieces) {
                        iov.add(piece);
                    }
                    disk.writev((i % 16) * 65536L, iov);
                }
                allocated = threads.getThreadAllocatedBytes(id) - before;
            }
            // Warm: the iovec array is rewritten in place and pwritev takes it as is; stray bytes are noise.
            assertThat(allocated / 20_000.0).as("bytes allocated per 16-piece writev").isLessThan(1.0);
        }
    }

    @Test
    void shortWritesAndReadsAcrossManySegmentsStillMoveEveryByte() throws Exception {
        // 1500 segments forces two pwritev batches (IOV_MAX is 1024) with a segment split between them.
        Path img = image(1 << 20);
        try (NativeBackend disk = NativeBackend.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            byte[] data = new byte[1500 * 333];
            new Random(9).nextBytes(data);
            IoVector out = new IoVector();
            for (int i = 0; i < 1500; i++) {
                out.add(arena.allocate(333));
            }
            out.copyFrom(0, data, 0, data.length);
            disk.writev(12345, out);
            IoVector in = new IoVector().add(arena.allocate(data.length));
            disk.readv(12345, in);
            assertThat(in.toByteArray()).isEqualTo(data);
        }
        assertThat(Arrays.copyOfRange(Files.readAllBytes(img), 12345, 12345 + 1500 * 333)).hasSize(1500 * 333);
    }

    @Test
    void aShortReadContinuesMidSegmentAndNamesWhereTheImageEnded() throws Exception {
        // The image shrinks under the open backend: preadv stops inside segment 5 of 16, the tail
        // read of that segment then finds the end, and the error names the byte where it did.
        Path img = image(1 << 20);
        byte[] original = Files.readAllBytes(img);
        try (NativeBackend disk = NativeBackend.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            IoVector iov = new IoVector();
            for (int i = 0; i < 16; i++) {
                iov.add(arena.allocate(4096));
            }
            long offset = 65536;
            long end = offset + 5 * 4096 + 1000;
            try (var channel = java.nio.channels.FileChannel.open(img, java.nio.file.StandardOpenOption.WRITE)) {
                channel.truncate(end);
            }
            assertThatThrownBy(() -> disk.readv(offset, iov))
                    .isInstanceOf(IOException.class)
                    .hasMessageContaining("ended at byte " + end);
            byte[] got = iov.toByteArray();
            assertThat(Arrays.copyOfRange(got, 0, (int) (end - offset)))
                    .isEqualTo(Arrays.copyOfRange(original, (int) offset, (int) end));
        }
    }
}
