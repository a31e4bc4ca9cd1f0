package io.guestdma.net;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Reads Ethernet frames from a classic pcap capture file: either byte order, microsecond or
 * nanosecond timestamps, link type Ethernet. Files written by tcpdump, Wireshark (as pcap, not
 * pcapng), QEMU's {@code filter-dump} and {@link PcapWriter} all qualify.
 *
 * <p>The file is not trusted: a bad magic number, another link type, a record longer than the
 * file's snapshot length or than 65 535 bytes, or a file that ends inside a record gives an
 * {@link IOException} naming the offset, never a huge allocation. Not thread-safe.
 */
public final class PcapReader implements AutoCloseable {
    private final Path path;
    private final FileChannel file;
    private final ByteOrder order;
    private final long snaplen;
    private final ByteBuffer header = ByteBuffer.allocate(PcapWriter.RECORD_HEADER);
    private final ByteBuffer frame = ByteBuffer.allocateDirect(PcapWriter.SNAPLEN);
    private final MemorySegment frameSegment = MemorySegment.ofBuffer(frame);
    private long offset;

    private PcapReader(Path path, FileChannel file, ByteOrder order, long snaplen) {
        this.path = path;
        this.file = file;
        this.order = order;
        this.snaplen = snaplen;
        this.header.order(order);
        this.offset = PcapWriter.FILE_HEADER;
    }

    /**
     * Opens a capture file and checks its header.
     *
     * @param path the file
     * @return a reader positioned at the first frame
     * @throws IOException if the file cannot be read or is not an Ethernet pcap file
     */
    public static PcapReader open(Path path) throws IOException {
        FileChannel f = FileChannel.open(path, StandardOpenOption.READ);
        try {
            ByteBuffer h = ByteBuffer.allocate(PcapWriter.FILE_HEADER);
            if (!readFully(f, h)) {
                throw new IOException(path + " is not a pcap file: shorter than its 24-byte header");
            }
            h.flip();
            ByteOrder order;
            int magic = h.order(ByteOrder.LITTLE_ENDIAN).getInt(0);
            if (magic == PcapWriter.MAGIC_MICROS || magic == PcapWriter.MAGIC_NANOS) {
                order = ByteOrder.LITTLE_ENDIAN;
            } else {
                magic = h.order(ByteOrder.BIG_ENDIAN).getInt(0);
                if (magic != PcapWriter.MAGIC_MICROS && magic != PcapWriter.MAGIC_NANOS) {
                    throw new IOException(path + " is not a classic pcap file (magic 0x"
                            + Integer.toHexString(magic) + "; pcapng is not supported)");
                }
                order = ByteOrder.BIG_ENDIAN;
            }
            h.order(order);
            int major = h.getShort(4) & 0xffff;
            if (major != 2) {
                throw new IOException(path + ": pcap version " + major + " (2 expected)");
            }
            long snaplen = Integer.toUnsignedLong(h.getInt(16));
            int linktype = h.getInt(20) & 0x0fff_ffff;
            if (linktype != PcapWriter.LINKTYPE_ETHERNET) {
                throw new IOException(path + ": link type " + linktype + " is not Ethernet (1)");
            }
            return new PcapReader(path, f, order, snaplen == 0 ? PcapWriter.SNAPLEN : snaplen);
        } catch (IOException | RuntimeException e) {
            f.close();
            throw e;
        }
    }

    /**
     * Reads the next frame.
     *
     * @return the frame's bytes, valid until the next call; or null at the end of the file
     * @throws IOException if the file cannot be read, ends inside a record, or a record is malformed
     */
    public MemorySegment next() throws IOException {
        header.clear();
        int got = readUpTo(file, header);
        if (got == 0) {
            return null;
        }
        if (got < PcapWriter.RECORD_HEADER) {
            throw new EOFException(path + ": ends inside the record header at offset " + offset);
        }
        long included = Integer.toUnsignedLong(header.getInt(8));
        if (included == 0 || included > PcapWriter.SNAPLEN || included > snaplen) {
            throw new IOException(path + ": record at offset " + offset + " claims " + included
                    + " bytes (1.." + Math.min(snaplen, PcapWriter.SNAPLEN) + " allowed)");
        }
        frame.clear().limit((int) included);
        if (!readFully(file, frame)) {
            throw new EOFException(path + ": ends inside the " + included + "-byte record at offset " + offset);
        }
        offset += PcapWriter.RECORD_HEADER + included;
        return frameSegment.asSlice(0, included);
    }

    private static boolean readFully(FileChannel f, ByteBuffer b) throws IOException {
        return readUpTo(f, b) == b.limit();
    }

    private static int readUpTo(FileChannel f, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (f.read(b) < 0) {
                break;
            }
        }
        return b.position();
    }

    /** {@return the byte order the file was written in} */
    public ByteOrder order() {
        return order;
    }

    /**
     * Closes the file.
     *
     * @throws IOException if closing fails
     */
    @Override
    public void close() throws IOException {
        file.close();
    }
}
