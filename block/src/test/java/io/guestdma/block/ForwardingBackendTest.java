package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.testing.NbdServer;
import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
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

    /**
     * A subclass that overrides nothing lets the wrapped NBD backend's own asynchronous path
     * run (writes return before the server's 1 s delay); one that overrides writev or discard
     * keeps the defaults for those, so its override is never gone around (the write is counted,
     * the discard ignored), while its reads still take the NBD path.
     */
    @Test
    void asynchronousFormsGoToTheWrappedBackendUnlessTheSynchronousFormIsOverridden(@TempDir Path dir) throws Exception {
        try (NbdServer server = NbdServer.nbdkit(dir, "forwarded", "--exit-with-parent", "--filter=delay", "memory",
                "size=1M", "delay-write=1", "delay-zero=1");
             NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
             Arena arena = Arena.ofShared()) {
            AtomicInteger calls = new AtomicInteger();
            BlockCompletion counted = new BlockCompletion() {
                @Override
                public void completed() {
                    calls.incrementAndGet();
                }

                @Override
                public void failed(IOException e) {
                    throw new AssertionError(e);
                }
            };
            IoVector iov = new IoVector().add(arena.allocate(4096).fill((byte) 9));
            BlockBackend plain = new ForwardingBackend(nbd) { };
            long start = System.nanoTime();
            plain.submitWritev(0, iov, counted);
            CompletableFuture<Void> future = plain.writevAsync(8192, iov, Runnable::run);
            assertThat(System.nanoTime() - start).as("sent, not waited for").isLessThan(TimeUnit.SECONDS.toNanos(1));
            assertThat(calls.get()).isZero();
            assertThat(future).isNotDone();
            future.get(1, TimeUnit.MINUTES);

            CountingWrites counting = new CountingWrites(nbd);
            counting.submitWritev(4096, iov, counted);
            assertThat(counting.writes).containsExactly(4096L);
            counting.writevAsync(12288, iov, Runnable::run).get(1, TimeUnit.MINUTES);
            assertThat(counting.writes).containsExactly(4096L, 12288L);

            BlockBackend ignoring = new ForwardingBackend(nbd) {
                @Override
                public void discard(long offset, long length) {
                    // ignored, as a drive with discard=ignore does
                }
            };
            ignoring.submitDiscard(0, 4096, counted);
            ignoring.discardAsync(4096, 4096, Runnable::run).get(1, TimeUnit.MINUTES);
            IoVector back = new IoVector().add(arena.allocate(16384));
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
            while (calls.get() < 3) {
                assertThat(System.nanoTime()).isLessThan(deadline);
                Thread.sleep(10);
            }
            ignoring.readvAsync(0, back, Runnable::run).get(1, TimeUnit.MINUTES);
            assertThat(back.toByteArray()).as("written, and no discard reached the server").containsOnly((byte) 9);
        }
    }
}
