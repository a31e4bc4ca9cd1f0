package io.guestdma.migration;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.zip.CRC32C;

/** The constants of the stream layout that FORMAT.md describes, shared by both sides. */
final class StreamFormat {
    static final byte[] MAGIC = "GDMIGRAT".getBytes(StandardCharsets.US_ASCII);
    static final int VERSION = 1;
    static final int PAGE_SIZE = 4096;
    static final int MAX_BLOCKS = 1024;
    static final int MAX_NAME = 255;
    /** The largest device section the destination accepts: device state is registers, not RAM. */
    static final int MAX_SECTION = 16 << 20;
    static final int RECORD = 8;

    static final int PAGE = 0x01;
    static final int PASS = 0x02;
    static final int DEVICE = 0x03;
    static final int END = 0x04;

    static final int FLAG_ZERO = 0x01;

    /** What the destination sends back on a socket once it has loaded everything. */
    static final byte ACK = 0x06;

    private StreamFormat() {
    }

    /** The header: magic, version, page size, the RAM block table and its CRC32C. */
    static ByteBuffer header(List<RamBlock> blocks) {
        int size = 8 + 4 + 4 + 4 + 4;
        for (RamBlock b : blocks) {
            size += 1 + b.name().getBytes(StandardCharsets.UTF_8).length + 8;
        }
        ByteBuffer out = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC).putInt(VERSION).putInt(PAGE_SIZE).putInt(blocks.size());
        for (RamBlock b : blocks) {
            byte[] name = b.name().getBytes(StandardCharsets.UTF_8);
            if (name.length > MAX_NAME) {
                throw new IllegalStateException("RAM region name longer than " + MAX_NAME + " bytes: " + b.name());
            }
            out.put((byte) name.length).put(name).putLong(b.size());
        }
        out.putInt(crc(out.array(), 0, out.position()));
        return out.flip();
    }

    static int crc(byte[] bytes, int offset, int length) {
        CRC32C crc = new CRC32C();
        crc.update(bytes, offset, length);
        return (int) crc.getValue();
    }
}
