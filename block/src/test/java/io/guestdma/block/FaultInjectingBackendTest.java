package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.block.FaultInjectingBackend.Fault;
import io.guestdma.block.FaultInjectingBackend.Operation;
import io.guestdma.memory.IoVector;
import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The decorator fails exactly the requests it was armed for, the way it says. */
class FaultInjectingBackendTest {
    @TempDir
    Path dir;

    private FaultInjectingBackend open() throws IOException {
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[16 * 512]);
        return new FaultInjectingBackend(FileChannelBackend.open(image, BlockOptions.defaults()));
    }

    private byte[] image() throws IOException {
        return Files.readAllBytes(dir.resolve("disk.img"));
    }

    @Test
    void aShortVectoredWriteMovesHalfTheSectorsThenFailsWithEio() throws IOException {
        try (FaultInjectingBackend disk = open(); Arena arena = Arena.ofConfined()) {
            disk.failAt(Operation.WRITE, 2, Fault.SHORT_TRANSFER);
            MemorySegment data = arena.allocate(4 * 512);
            data.fill((byte) 7);
            IoVector iov = new IoVector().add(data.asSlice(0, 1024)).add(data.asSlice(1024, 1024));
            disk.writev(0, iov); // request 1 passes
            data.fill((byte) 9);
            assertThatThrownBy(() -> disk.writev(4096, iov))
                    .isInstanceOfSatisfying(PosixException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EIO))
                    .hasMessageContaining("injected write #2");
            byte[] bytes = image();
            assertThat(Arrays.copyOfRange(bytes, 0, 2048)).containsOnly(7);
            assertThat(Arrays.copyOfRange(bytes, 4096, 5120)).as("the first half arrived").containsOnly(9);
            assertThat(Arrays.copyOfRange(bytes, 5120, 6144)).as("the second half did not").containsOnly(0);
            assertThat(disk.requests(Operation.WRITE)).isEqualTo(2);
            assertThat(disk.injected()).containsExactly(
                    new FaultInjectingBackend.Injected(Operation.WRITE, 2, Fault.SHORT_TRANSFER, 4096, 2048));
            disk.writev(4096, iov);
            assertThat(Arrays.copyOfRange(image(), 4096, 6144)).as("one-shot: the retry passes").containsOnly(9);
        }
    }

    @Test
    void aShortBufferReadFillsHalfAndAdvancesTheBufferThatFar() throws IOException {
        try (FaultInjectingBackend disk = open()) {
            disk.write(0, ByteBuffer.wrap(filled(2048, 5)));
            disk.failAt(Operation.READ, 1, Fault.SHORT_TRANSFER);
            ByteBuffer dst = ByteBuffer.allocate(2048);
            assertThatThrownBy(() -> disk.read(0, dst)).isInstanceOf(PosixException.class);
            assertThat(dst.position()).isEqualTo(1024);
            assertThat(Arrays.copyOfRange(dst.array(), 0, 1024)).containsOnly(5);
            assertThat(Arrays.copyOfRange(dst.array(), 1024, 2048)).containsOnly(0);
        }
    }

    @Test
    void enospcFromARequestOnRepeatsUntilHealedAndMovesNothing() throws IOException {
        try (FaultInjectingBackend disk = open()) {
            disk.failFrom(Operation.WRITE, 1, Fault.ENOSPC).failAt(Operation.FLUSH, 1, Fault.EIO);
            for (int i = 0; i < 3; i++) {
                assertThatThrownBy(() -> disk.write(0, ByteBuffer.wrap(filled(512, 1))))
                        .isInstanceOfSatisfying(PosixException.class, e -> assertThat(e.errnoName()).isEqualTo("ENOSPC"));
            }
            assertThat(image()).containsOnly(0);
            assertThatThrownBy(disk::flush).hasMessageContaining("injected flush #1").hasMessageContaining("EIO");
            disk.heal();
            disk.write(0, ByteBuffer.wrap(filled(512, 1)));
            disk.flush();
            assertThat(image()[0]).isEqualTo((byte) 1);
            assertThat(disk.injected()).hasSize(4);
        }
    }

    @Test
    void requestNumbersStartAtOne() throws IOException {
        try (FaultInjectingBackend disk = open()) {
            assertThatThrownBy(() -> disk.failAt(Operation.READ, 0, Fault.EIO)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    private static byte[] filled(int length, int value) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) value);
        return b;
    }
}
