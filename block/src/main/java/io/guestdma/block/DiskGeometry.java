package io.guestdma.block;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A disk's cylinders/heads/sectors as IDE's IDENTIFY and virtio-blk's configuration report them,
 * guessed the way QEMU's {@code hd_geometry_guess} does when no geometry is configured: from the
 * partition table in sector 0 if it has one, else 16 heads and 63 sectors with as many cylinders
 * as fit (2..16383).
 *
 * @param cylinders cylinders
 * @param heads     heads
 * @param sectors   sectors per track
 */
public record DiskGeometry(int cylinders, int heads, int sectors) {
    private static final int SECTOR_SIZE = 512;

    /**
     * Guesses the geometry of a disk.
     *
     * @param backend      the image (sector 0 is read)
     * @param totalSectors the disk's size in 512-byte sectors
     * @return the geometry
     * @throws IOException if sector 0 cannot be read
     */
    public static DiskGeometry guess(BlockBackend backend, long totalSectors) throws IOException {
        DiskGeometry fromTable = fromPartitionTable(backend, totalSectors);
        if (fromTable == null || fromTable.heads > 16) {
            // heads > 16 means the table was written under BIOS LBA translation: the standard
            // physical geometry is right then.
            return standard(totalSectors);
        }
        return fromTable;
    }

    private static DiskGeometry standard(long totalSectors) {
        long cylinders = totalSectors / (16 * 63);
        cylinders = Math.clamp(cylinders, 2, 16383);
        return new DiskGeometry((int) cylinders, 16, 63);
    }

    private static DiskGeometry fromPartitionTable(BlockBackend backend, long totalSectors)
            throws IOException {
        if (totalSectors < 1) {
            return null;
        }
        ByteBuffer mbr = ByteBuffer.allocate(SECTOR_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        backend.read(0, mbr);
        if ((mbr.get(510) & 0xff) != 0x55 || (mbr.get(511) & 0xff) != 0xaa) {
            return null;
        }
        for (int i = 0; i < 4; i++) {
            int entry = 0x1be + 16 * i;
            int endHead = mbr.get(entry + 5) & 0xff;
            int endSector = mbr.get(entry + 6) & 63;
            long sectorCount = Integer.toUnsignedLong(mbr.getInt(entry + 12));
            if (sectorCount == 0 || endHead == 0) {
                continue;
            }
            // The partition is assumed to end on a cylinder boundary.
            int heads = endHead + 1;
            if (endSector == 0) {
                continue;
            }
            long cylinders = totalSectors / ((long) heads * endSector);
            if (cylinders < 1 || cylinders > 16383) {
                continue;
            }
            return new DiskGeometry((int) cylinders, heads, endSector);
        }
        return null;
    }
}
