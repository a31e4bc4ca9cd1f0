package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.IoVector;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * FileChannelBackend's vectored path, over buffers that carry no memory session, moves exactly the
 * vector's bytes to and from the image whatever the cut: pieces of any length, read-only sources,
 * reads into another cut of the same bytes. (BlockBackendContractTest covers vectors of more than
 * the 1024 buffers one gathering call takes.)
 */
class FileChannelBackendProperties {
    private static final int IMAGE = 64 * 1024;

    private static MemorySegment pattern(Arena arena, int bytes, int seed) {
        MemorySegment s = arena.allocate(Math.max(bytes, 1)).asSlice(0, bytes);
        for (int i = 0; i < bytes; i++) {
            s.set(ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i));
        }
        return s;
    }

    /** Cuts {@code total} bytes of {@code memory} into pieces of the given lengths (the rest goes last). */
    private static IoVector cut(MemorySegment memory, List<Integer> pieces, boolean readOnly) {
        IoVector iov = new IoVector();
        long at = 0;
        for (int length : pieces) {
            long n = Math.min(length, memory.byteSize() - at);
            MemorySegment piece = memory.asSlice(at, n);
            iov.add(readOnly ? piece.asReadOnly() : piece);
            at += n;
        }
        iov.add(memory.asSlice(at));
        return iov;
    }

    @Property(tries = 60)
    void writesThenReadsInAnotherCutMoveExactlyTheVectorsBytes(
            @ForAll @IntRange(min = 0, max = IMAGE) int offset,
            @ForAll @IntRange(min = 0, max = 20000) int length,
            @ForAll @Size(max = 40) List<@IntRange(min = 0, max = 3000) Integer> writeCut,
            @ForAll @Size(max = 40) List<@IntRange(min = 0, max = 3000) Integer> readCut,
            @ForAll boolean sourceReadOnly,
            @ForAll int seed) throws Exception {
        int n = Math.min(length, IMAGE - offset);
        Path img = Files.createTempFile("filechannel-properties", ".img");
        byte[] initial = new byte[IMAGE];
        new Random(seed).nextBytes(initial);
        Files.write(img, initial);
        byte[] expected = initial.clone();
        try (FileChannelBackend disk = FileChannelBackend.open(img, BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            MemorySegment source = pattern(arena, n, seed);
            byte[] data = source.toArray(ValueLayout.JAVA_BYTE);
            System.arraycopy(data, 0, expected, offset, n);

            disk.writev(offset, cut(source, writeCut, sourceReadOnly));
            assertThat(Files.readAllBytes(img)).isEqualTo(expected);

            MemorySegment back = arena.allocate(Math.max(n, 1)).asSlice(0, n);
            disk.readv(offset, cut(back, readCut, false));
            assertThat(back.toArray(ValueLayout.JAVA_BYTE)).isEqualTo(data);
        } finally {
            Files.delete(img);
        }
    }
}
