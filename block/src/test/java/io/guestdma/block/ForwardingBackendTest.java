package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ForwardingBackendTest {

    /** Counts the writes it sees, whichever way they were asked for. */
    private static final class CountingWrites extends ForwardingBackend {
        final List<Long> writes = new ArrayList<>();

        CountingWrites(BlockBackend image) {
            super(image);
        }

        @Override
        public void writev(long offset, IoVector iov) throws IOException {
            writes.add(offset);
            super.writev(offset, iov);
        }
    }

    @Test
    void passesEveryCallThroughAndAnOverrideAlsoCoversTheAsynchronousForm(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[8192]);
        try (CountingWrites counting = new CountingWrites(FileChannelBackend.open(image, BlockOptions.defaults()))) {
            assertThat(counting.size()).isEqualTo(8192);
            assertThat(counting.isReadOnly()).isFalse();
            counting.write(512, ByteBuffer.wrap("forwarded".getBytes()));
            ByteBuffer back = ByteBuffer.allocate(9);
            counting.read(512, back);
            assertThat(new String(back.array())).isEqualTo("forwarded");

            ByteBuffer direct = ByteBuffer.allocateDirect(512);
            direct.put(0, (byte) 0x5a);
            IoVector iov = new IoVector(1);
            iov.add(MemorySegment.ofBuffer(direct));
            counting.writevAsync(1024, iov, Runnable::run).join();
            counting.writev(2048, iov);
            assertThat(counting.writes).containsExactly(1024L, 2048L);
            counting.flushAsync(Runnable::run).join();
            counting.discard(0, 512);
        }
        byte[] bytes = Files.readAllBytes(image);
        assertThat(bytes[1024]).isEqualTo((byte) 0x5a);
        assertThat(bytes[2048]).isEqualTo((byte) 0x5a);
    }

    @Test
    void closeReachesTheWrappedBackend(@TempDir Path dir) throws IOException {
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[512]);
        BlockBackend inner = FileChannelBackend.open(image, BlockOptions.defaults());
        new ForwardingBackend(inner) { }.close();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> inner.read(0, ByteBuffer.allocate(1)))
                .isInstanceOf(IOException.class);
    }
}
