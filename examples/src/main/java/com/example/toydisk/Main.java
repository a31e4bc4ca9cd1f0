package com.example.toydisk;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.NativeBackend;
import io.guestdma.memory.GuestMemory;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

/**
 * Plays the guest: writes scattered buffers to a {@link ToyDisk} through its registers, reads them
 * back into other buffers and checks every byte, in guest memory and in the image file. Exits with
 * status 1 and says why if anything differs.
 */
public final class Main {
    private static final long DISK_BASE = 0xfe00_0000L;
    private static final long REQUEST = 0x1000;

    private Main() {
    }

    /**
     * Runs the example.
     *
     * @param args ignored
     * @throws IOException if the temporary image cannot be created or opened
     */
    public static void main(String[] args) throws IOException {
        Path image = Files.createTempFile("toy-disk", ".img");
        try {
            try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw")) {
                file.setLength(1 << 20);
            }
            try (GuestMemory memory = GuestMemory.ofRam(16 << 20);
                 BlockBackend disk = NativeBackend.open(image, BlockOptions.defaults())) {
                memory.addRegion(new ToyDisk(memory, disk).registers("toy-disk", DISK_BASE));
                run(memory, image);
            }
        } finally {
            Files.deleteIfExists(image);
        }
    }

    private static void run(GuestMemory memory, Path image) throws IOException {
        byte[] data = new byte[12 * 1024];
        new Random(16).nextBytes(data);
        long sector = 8;

        // WRITE from two buffers: 4 KiB at 0x10000, 8 KiB at 0x23000.
        memory.write(0x10000, data, 0, 4096);
        memory.write(0x23000, data, 4096, 8192);
        int status = request(memory, ToyDisk.OP_WRITE, sector, 0x10000, 4096, 0x23000, 8192);
        check(status == ToyDisk.STATUS_OK, "write status " + status);

        byte[] onDisk = Arrays.copyOfRange(Files.readAllBytes(image), (int) sector * ToyDisk.SECTOR,
                (int) sector * ToyDisk.SECTOR + data.length);
        check(Arrays.equals(onDisk, data), "the image does not hold what the guest wrote");

        // READ into three other buffers of 4 KiB.
        status = request(memory, ToyDisk.OP_READ, sector, 0x40000, 4096, 0x50000, 4096, 0x61000, 4096);
        check(status == ToyDisk.STATUS_OK, "read status " + status);
        byte[] back = new byte[data.length];
        memory.read(0x40000, back, 0, 4096);
        memory.read(0x50000, back, 4096, 4096);
        memory.read(0x61000, back, 8192, 4096);
        check(Arrays.equals(back, data), "guest memory does not hold what the disk returned");

        // A request past the end of the disk is refused, and nothing moves.
        status = request(memory, ToyDisk.OP_READ, (1 << 20) / ToyDisk.SECTOR - 1, 0x40000, 4096);
        check(status == ToyDisk.STATUS_BAD_REQUEST, "out-of-range read status " + status);

        System.out.println("toy-disk: wrote " + data.length + " bytes from 2 guest buffers to sector " + sector
                + ", read them back into 3 buffers: identical, and the image file agrees; an out-of-range"
                + " request was refused");
    }

    /** Builds a request at {@link #REQUEST}, rings the doorbell and returns the status register. */
    private static int request(GuestMemory memory, int op, long sector, long... addressLengthPairs) {
        int count = addressLengthPairs.length / 2;
        memory.writeByte(REQUEST, (byte) op);
        memory.writeShort(REQUEST + 2, (short) count);
        memory.writeLong(REQUEST + 8, sector);
        for (int i = 0; i < count; i++) {
            memory.writeLong(REQUEST + 16 + 16L * i, addressLengthPairs[2 * i]);
            memory.writeInt(REQUEST + 24 + 16L * i, (int) addressLengthPairs[2 * i + 1]);
        }
        memory.writeInt(DISK_BASE + ToyDisk.REG_REQUEST_LOW, (int) REQUEST);
        memory.writeInt(DISK_BASE + ToyDisk.REG_REQUEST_HIGH, (int) (REQUEST >>> 32));
        memory.writeInt(DISK_BASE + ToyDisk.REG_DOORBELL, 1);
        return memory.readInt(DISK_BASE + ToyDisk.REG_STATUS);
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("toy-disk: FAILED: " + what);
            System.exit(1);
        }
    }
}
