package io.guestdma.block;

import io.guestdma.memory.IoVector;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link BlockBackend}'s default completion form on the file backends: the synchronous call in
 * the submitting thread, then the completion, once, before the submission returns; failures go
 * to the completion, invalid arguments are thrown and the completion is not called.
 */
class BlockCompletionDefaultTest {
    enum Kind {
        FILE_CHANNEL, NATIVE;

        BlockBackend open(Path image, BlockOptions options) throws IOException {
            return this == FILE_CHANNEL ? FileChannelBackend.open(image, options) : NativeBackend.open(image, options);
        }
    }

    /** Records each call with the thread it came on. */
    static final class Calls implements BlockCompletion {
        final List<String> log = new ArrayList<>();
        IOException failure;

        @Override
        public void completed() {
            log.add("completed on " + Thread.currentThread().getName());
        }

        @Override
        public void failed(IOException e) {
            failure = e;
            log.add("failed on " + Thread.currentThread().getName());
        }

        List<String> take() {
            List<String> taken = List.copyOf(log);
            log.clear();
            return taken;
        }
    }

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(Kind.class)
    void theDefaultRunsTheCallThenTheCompletionInTheSubmittingThread(Kind kind) throws Exception {
        Path img = dir.resolve("disk.img");
        Files.write(img, new byte[65536]);
        String me = Thread.currentThread().getName();
        Calls calls = new Calls();
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults()); Arena arena = Arena.ofConfined()) {
            IoVector out = new IoVector().add(arena.allocate(4096).fill((byte) 0x3c)).add(arena.allocate(512).fill((byte) 0x3d));
            disk.submitWritev(8192, out, calls);
            assertThat(calls.take()).containsExactly("completed on " + me);
            IoVector in = new IoVector().add(arena.allocate(4608));
            disk.submitReadv(8192, in, calls);
            assertThat(calls.take()).containsExactly("completed on " + me);
            assertThat(Arrays.copyOfRange(in.toByteArray(), 0, 4096)).containsOnly((byte) 0x3c);
            disk.submitDiscard(8192, 4096, calls);
            disk.submitFlush(calls);
            assertThat(calls.take()).containsExactly("completed on " + me, "completed on " + me);
            assertThat(Arrays.copyOfRange(Files.readAllBytes(img), 8192, 12288)).containsOnly((byte) 0);

            disk.submitReadv(65536 - 512, in, calls);
            assertThat(calls.take()).containsExactly("failed on " + me);
            assertThat(calls.failure).hasMessageContaining("outside");
            IoVector readOnly = new IoVector().add(arena.allocate(512).asReadOnly());
            assertThatThrownBy(() -> disk.submitReadv(0, readOnly, calls)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> disk.submitWritev(0, out, null)).isInstanceOf(NullPointerException.class);
            assertThat(calls.take()).as("no call for a submission that threw").isEmpty();
        }
        try (BlockBackend disk = kind.open(img, BlockOptions.defaults().withReadOnly(true)); Arena arena = Arena.ofConfined()) {
            disk.submitWritev(0, new IoVector().add(arena.allocate(512)), calls);
            assertThat(calls.take()).containsExactly("failed on " + me);
            assertThat(calls.failure).isInstanceOf(ReadOnlyImageException.class);
            disk.submitFlush(calls);
            assertThat(calls.take()).containsExactly("completed on " + me);
        }
    }
}
