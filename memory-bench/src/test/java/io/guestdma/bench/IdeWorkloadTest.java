package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The benchmarked commands really move the bytes, on every path: a benchmark must not time a no-op. */
class IdeWorkloadTest {

    @ParameterizedTest
    @CsvSource({"4k,COPY", "64k,COPY", "1m,COPY", "64k,MAP_FILECHANNEL", "1m,MAP_FILECHANNEL",
            "4k,MAP_NATIVE", "64k,MAP_NATIVE", "1m,MAP_NATIVE"})
    void writeAndReadMoveTheScatteredGuestBytes(String size, DataPath path) throws IOException {
        TransferShape shape = TransferShape.of(size);
        try (IdeWorkload ide = IdeWorkload.create(shape, path)) {
            GuestBuffers buffers = ide.buffers();
            assertThat(buffers.count()).isEqualTo(shape.pieces());
            Random random = new Random(7);
            byte[] expected = new byte[shape.bytes()];
            random.nextBytes(expected);
            for (int i = 0; i < buffers.count(); i++) {
                ide.memory().write(buffers.address(i), expected, i * buffers.pieceBytes(), buffers.pieceBytes());
            }
            long writeOffset = ide.nextImageOffset();
            ide.write();
            assertThat(readImage(ide, writeOffset, shape.bytes())).isEqualTo(expected);

            long readOffset = ide.nextImageOffset();
            assertThat(readOffset).as("commands rotate over image slots").isNotEqualTo(writeOffset);
            byte[] onDisk = readImage(ide, readOffset, shape.bytes());
            ide.read();
            byte[] inGuest = new byte[shape.bytes()];
            for (int i = 0; i < buffers.count(); i++) {
                ide.memory().read(buffers.address(i), inGuest, i * buffers.pieceBytes(), buffers.pieceBytes());
            }
            assertThat(inGuest).isEqualTo(onDisk);
            assertThat(Arrays.equals(onDisk, expected)).as("the read slot held other bytes").isFalse();
        }
    }

    private static byte[] readImage(IdeWorkload ide, long offset, int length) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(length);
        try (FileChannel ch = FileChannel.open(ide.imagePath(), StandardOpenOption.READ)) {
            while (buf.hasRemaining()) {
                ch.read(buf, offset + buf.position());
            }
        }
        return buf.array();
    }

    @org.junit.jupiter.api.Test
    void overANullDiskTheCommandsStillCompleteAndTheImageIsNeverTouched() throws IOException {
        try (IdeWorkload ide = IdeWorkload.over(TransferShape.of("64k"), io.guestdma.ide.DmaMode.MAP,
                new NullBackend(IdeWorkload.IMAGE_BYTES))) {
            assertThat(ide.imagePath()).isNull();
            assertThat(ide.write() & 0x07).as("bus master done, no error").isEqualTo(0x04);
            assertThat(ide.read() & 0x07).isEqualTo(0x04);
        }
    }
}
