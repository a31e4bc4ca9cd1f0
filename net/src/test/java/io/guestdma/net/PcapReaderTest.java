package io.guestdma.net;

import io.guestdma.memory.IoVector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Capture files are not trusted: every way a pcap file can be wrong gives a clear error. */
class PcapReaderTest {
    @TempDir
    Path dir;

    private Path file(byte[] bytes) throws IOException {
        Path p = dir.resolve("f" + Arrays.hashCode(bytes) + ".pcap");
        Files.write(p, bytes);
        return p;
    }

    private static ByteBuffer header(ByteOrder order, int magic, int linktype, int snaplen) {
        return ByteBuffer.allocate(24).order(order).putInt(magic).putShort((short) 2).putShort((short) 4)
                .putInt(0).putInt(0).putInt(snaplen).putInt(linktype);
    }

    @Test
    void bigEndianAndNanosecondFilesReadToo() throws Exception {
        ByteBuffer b = ByteBuffer.allocate(24 + 16 + 3).order(ByteOrder.BIG_ENDIAN);
        b.put(header(ByteOrder.BIG_ENDIAN, PcapWriter.MAGIC_NANOS, 1, 65535).array());
        b.putInt(1).putInt(2).putInt(3).putInt(3).put(new byte[] {7, 8, 9});
        try (PcapReader r = PcapReader.open(file(b.array()))) {
            assertThat(r.order()).isEqualTo(ByteOrder.BIG_ENDIAN);
            assertThat(r.next().toArray(ValueLayout.JAVA_BYTE)).containsExactly(7, 8, 9);
            assertThat(r.next()).isNull();
        }
    }

    @Test
    void malformedFilesAreRefusedNamingWhatIsWrong() throws Exception {
        assertThatThrownBy(() -> PcapReader.open(file(new byte[10]))).hasMessageContaining("24-byte header");
        assertThatThrownBy(() -> PcapReader.open(file(header(ByteOrder.LITTLE_ENDIAN, 0x0a0d0d0a, 1, 65535).array())))
                .hasMessageContaining("pcapng");
        assertThatThrownBy(() -> PcapReader.open(file(header(ByteOrder.LITTLE_ENDIAN, PcapWriter.MAGIC_MICROS, 105, 65535)
                .array()))).hasMessageContaining("not Ethernet");

        ByteBuffer huge = ByteBuffer.allocate(24 + 16).order(ByteOrder.LITTLE_ENDIAN);
        huge.put(header(ByteOrder.LITTLE_ENDIAN, PcapWriter.MAGIC_MICROS, 1, 65535).array());
        huge.putInt(0).putInt(0).putInt(-1).putInt(-1); // a record of 4 GiB
        try (PcapReader r = PcapReader.open(file(huge.array()))) {
            assertThatThrownBy(r::next).hasMessageContaining("claims 4294967295 bytes");
        }

        ByteBuffer cut = ByteBuffer.allocate(24 + 16 + 5).order(ByteOrder.LITTLE_ENDIAN);
        cut.put(header(ByteOrder.LITTLE_ENDIAN, PcapWriter.MAGIC_MICROS, 1, 65535).array());
        cut.putInt(0).putInt(0).putInt(100).putInt(100).put(new byte[5]);
        try (PcapReader r = PcapReader.open(file(cut.array()))) {
            assertThatThrownBy(r::next).isInstanceOf(EOFException.class).hasMessageContaining("offset 24");
        }

        ByteBuffer snap = ByteBuffer.allocate(24 + 16 + 100).order(ByteOrder.LITTLE_ENDIAN);
        snap.put(header(ByteOrder.LITTLE_ENDIAN, PcapWriter.MAGIC_MICROS, 1, 64).array());
        snap.putInt(0).putInt(0).putInt(100).putInt(100).put(new byte[100]);
        try (PcapReader r = PcapReader.open(file(snap.array()))) {
            assertThatThrownBy(r::next).as("longer than the file's own snapshot length").hasMessageContaining("1..64");
        }
    }

    @Test
    void whatTheWriterWritesTheReaderReadsBack() throws Exception {
        Path p = dir.resolve("round.pcap");
        try (PcapWriter w = PcapWriter.create(p); Arena arena = Arena.ofConfined()) {
            for (int size : new int[] {14, 60, 1514, 65535}) {
                w.write(new IoVector().add(arena.allocate(size).fill((byte) size)));
            }
            assertThatThrownBy(() -> w.write(new IoVector())).isInstanceOf(IllegalArgumentException.class);
        }
        try (PcapReader r = PcapReader.open(p)) {
            for (int size : new int[] {14, 60, 1514, 65535}) {
                assertThat(r.next().toArray(ValueLayout.JAVA_BYTE)).hasSize(size).containsOnly((byte) size);
            }
            assertThat(r.next()).isNull();
        }
    }
}
