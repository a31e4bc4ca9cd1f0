package io.guestdma.net;

import io.guestdma.memory.IoVector;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Writes Ethernet frames to a capture file in the classic pcap format (the one tcpdump and
 * Wireshark open, and QEMU's {@code filter-dump} writes): a 24-byte file header (microsecond
 * timestamps, version 2.4, link type 1 = Ethernet, snapshot length 65 535) and per frame a 16-byte
 * record header and the bytes. Little-endian, as pcap writers on x86 are.
 *
 * <p>Thread-safe; records are written whole, one at a time.
 */
public final class PcapWriter implements AutoCloseable {
    /** The classic pcap magic number, microsecond timestamps. */
    static final int MAGIC_MICROS = 0xa1b2c3d4;
    /** The same with nanosecond timestamps. */
    static final int MAGIC_NANOS = 0xa1b23c4d;
    /** LINKTYPE_ETHERNET. */
    static final int LINKTYPE_ETHERNET = 1;
    static final int SNAPLEN = 65535;
    static final int FILE_HEADER = 24;
    static final int RECORD_HEADER = 16;

    private final FileChannel file;
    private final ByteBuffer record = ByteBuffer.allocateDirect(RECORD_HEADER + SNAPLEN).order(ByteOrder.LITTLE_ENDIAN);
    /** The whole of {@link #record}, made while its position is 0 (a buffer's segment starts there). */
    private final java.lang.foreign.MemorySegment recordSegment = java.lang.foreign.MemorySegment.ofBuffer(record);
    private long frames;

    private PcapWriter(FileChannel file) {
        this.file = file;
    }

    /**
     * Creates (or truncates) a capture file and writes its header.
     *
     * @param path the file
     * @return the writer
     * @throws IOException if the file cannot be created or written
     */
    public static PcapWriter create(Path path) throws IOException {
        FileChannel f = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING);
        try {
            ByteBuffer h = ByteBuffer.allocate(FILE_HEADER).order(ByteOrder.LITTLE_ENDIAN);
            h.putInt(MAGIC_MICROS).putShort((short) 2).putShort((short) 4).putInt(0).putInt(0)
                    .putInt(SNAPLEN).putInt(LINKTYPE_ETHERNET).flip();
            while (h.hasRemaining()) {
                f.write(h);
            }
            return new PcapWriter(f);
        } catch (IOException | RuntimeException e) {
            f.close();
            throw e;
        }
    }

    /**
     * Appends one frame with the current time.
     *
     * @param frame the frame's bytes, 1 to 65 535 of them
     * @throws IOException              if the file cannot be written
     * @throws IllegalArgumentException if the frame is empty or larger than 65 535 bytes
     */
    public synchronized void write(IoVector frame) throws IOException {
        long length = frame.size();
        if (length < 1 || length > SNAPLEN) {
            throw new IllegalArgumentException("a frame of " + length + " bytes (1.." + SNAPLEN + " allowed)");
        }
        java.time.Instant now = java.time.Instant.now();
        record.clear();
        record.putInt((int) now.getEpochSecond()).putInt(now.getNano() / 1000)
                .putInt((int) length).putInt((int) length);
        frame.copyTo(0, recordSegment.asSlice(RECORD_HEADER, length));
        record.position(0).limit(RECORD_HEADER + (int) length);
        while (record.hasRemaining()) {
            file.write(record);
        }
        frames++;
    }

    /** {@return frames written so far} */
    public synchronized long frames() {
        return frames;
    }

    /**
     * Closes the file.
     *
     * @throws IOException if closing fails
     */
    @Override
    public synchronized void close() throws IOException {
        file.close();
    }
}
