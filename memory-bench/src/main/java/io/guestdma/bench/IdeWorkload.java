package io.guestdma.bench;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.block.NativeBackend;
import io.guestdma.ide.DmaMode;
import io.guestdma.ide.DriveConfig;
import io.guestdma.ide.PiixIde;
import io.guestdma.memory.GuestMemory;
import java.io.IOException;
import java.nio.file.Path;

/**
 * One PIIX IDE disk driven the way a guest driver drives it: PRD table in guest RAM, task file
 * and bus-master registers written through port I/O, completion seen in the bus-master status.
 * Only the {@link DataPath} differs between instances; the register sequence is identical.
 *
 * <p>The I/O executor is {@code Runnable::run}, so a command completes inside the register write
 * that starts the engine and one call of {@link #write()} or {@link #read()} is one whole command.
 * Not thread-safe: one benchmark thread per workload, as one vCPU owns one IDE channel.
 */
public final class IdeWorkload implements AutoCloseable {
    /** Guest RAM size. */
    public static final long RAM_BYTES = 64L << 20;
    /** Disk image size. */
    public static final long IMAGE_BYTES = 64L << 20;

    private static final int DATA = 0x1f0;
    private static final int NSECTORS = 0x1f2;
    private static final int LBA_LOW = 0x1f3;
    private static final int LBA_MID = 0x1f4;
    private static final int LBA_HIGH = 0x1f5;
    private static final int DEVICE = 0x1f6;
    private static final int COMMAND = 0x1f7;
    private static final int BM_COMMAND = 0;
    private static final int BM_STATUS = 2;
    private static final int BM_PRDT = 4;
    private static final int BM_START = 0x01;
    private static final int BM_TO_MEMORY = 0x08;
    private static final int BM_ACTIVE = 0x01;
    private static final int BM_ERROR = 0x02;
    private static final int BM_INTR = 0x04;
    private static final int ATA_ERR = 0x01;
    private static final int ATA_DRQ = 0x08;
    private static final int ATA_BSY = 0x80;
    private static final long PRDT_ADDRESS = 0x1000;
    private static final long BUFFER_WINDOW = 16L << 20;

    private final TransferShape shape;
    private final GuestMemory memory;
    private final ImageFile image;
    private final BlockBackend backend;
    private final PiixIde ide;
    private final GuestBuffers buffers;
    private final int slots;
    private int nextSlot;

    /**
     * Builds guest RAM, a filled image, the backend the path needs and the controller, and writes
     * the PRD table.
     *
     * @param shape the transfer every command moves
     * @param path  the data path
     * @return the workload
     * @throws IOException if the image cannot be created or opened (no image file is left behind)
     */
    public static IdeWorkload create(TransferShape shape, DataPath path) throws IOException {
        ImageFile image = ImageFile.create(IMAGE_BYTES);
        BlockBackend backend;
        try {
            backend = switch (path) {
                case COPY, MAP_FILECHANNEL -> FileChannelBackend.open(image.path(), BlockOptions.defaults());
                case MAP_NATIVE -> NativeBackend.open(image.path(), BlockOptions.defaults());
            };
        } catch (IOException | RuntimeException e) {
            image.close();
            throw e;
        }
        return new IdeWorkload(shape, path == DataPath.COPY ? DmaMode.COPY : DmaMode.MAP, image, backend);
    }

    /**
     * A workload over a backend of the caller's choice and no image file, for example a
     * {@link NullBackend} to measure what the device itself costs.
     *
     * @param shape   the transfer every command moves
     * @param mode    how the engine moves data
     * @param backend the disk; closed with the workload
     * @return the workload
     */
    public static IdeWorkload over(TransferShape shape, DmaMode mode, BlockBackend backend) {
        return new IdeWorkload(shape, mode, null, backend);
    }

    private IdeWorkload(TransferShape shape, DmaMode mode, ImageFile image, BlockBackend backend) {
        this.shape = shape;
        this.memory = GuestMemory.ofRam(RAM_BYTES);
        this.image = image;
        this.backend = backend;
        this.ide = new PiixIde(memory, Runnable::run, mode, level -> { }, level -> { });
        ide.attach(0, 0, DriveConfig.of(backend));
        this.slots = imageSlots(shape, backend.size());
        this.buffers = guestBuffers(shape);
        for (int i = 0; i < buffers.count(); i++) {
            long entry = PRDT_ADDRESS + 8L * i;
            boolean last = i == buffers.count() - 1;
            memory.writeInt(entry, (int) buffers.address(i));
            // Byte count 0 means 64 KiB in a PRD.
            memory.writeInt(entry + 4, (buffers.pieceBytes() & 0xffff) | (last ? 0x8000_0000 : 0));
        }
    }

    /**
     * @param shape the transfer
     * @return where the transfer's pieces sit in guest RAM: scattered over everything above the
     *         first 16 MiB (which holds the PRD table)
     */
    static GuestBuffers guestBuffers(TransferShape shape) {
        return new GuestBuffers(shape, BUFFER_WINDOW, RAM_BYTES - BUFFER_WINDOW);
    }

    /**
     * @param shape      the transfer
     * @param imageBytes the image size
     * @return how many transfer-sized image slots commands rotate over: up to 16
     */
    static int imageSlots(TransferShape shape, long imageBytes) {
        return (int) Math.min(16, imageBytes / shape.bytes());
    }

    /**
     * Commands go to {@code min(16, image / transfer)} transfer-sized slots of the image in turn,
     * starting with slot 0 (LBA 0), so writes revisit page-cache pages as a guest's would without
     * always hitting the same ones.
     *
     * @return the byte offset in the image of the slot the next command uses
     */
    public long nextImageOffset() {
        return (long) nextSlot * shape.bytes();
    }

    /**
     * Issues one WRITE DMA (WRITE DMA EXT above 256 sectors): guest RAM to the image.
     *
     * @return the bus-master status at completion
     * @throws IllegalStateException if the command did not complete cleanly (a benchmark must never
     *                               time a failure)
     */
    public int write() {
        return command(false);
    }

    /**
     * Issues one READ DMA (READ DMA EXT above 256 sectors): image to guest RAM.
     *
     * @return the bus-master status at completion
     * @throws IllegalStateException if the command did not complete cleanly
     */
    public int read() {
        return command(true);
    }

    private int command(boolean toMemory) {
        long lba = (long) nextSlot * shape.sectors();
        nextSlot = nextSlot + 1 == slots ? 0 : nextSlot + 1;
        int sectors = shape.sectors();
        boolean ext = sectors > 256;
        ide.ioWrite(DEVICE, 1, 0xe0);
        ide.busMasterWrite(BM_COMMAND, 1, 0);
        ide.busMasterWrite(BM_STATUS, 1, BM_INTR | BM_ERROR);
        ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDRESS);
        if (ext) {
            ide.ioWrite(NSECTORS, 1, sectors >>> 8);
            ide.ioWrite(LBA_LOW, 1, (int) (lba >>> 24) & 0xff);
            ide.ioWrite(LBA_MID, 1, (int) (lba >>> 32) & 0xff);
            ide.ioWrite(LBA_HIGH, 1, (int) (lba >>> 40) & 0xff);
        }
        ide.ioWrite(NSECTORS, 1, sectors & 0xff);
        ide.ioWrite(LBA_LOW, 1, (int) lba & 0xff);
        ide.ioWrite(LBA_MID, 1, (int) (lba >>> 8) & 0xff);
        ide.ioWrite(LBA_HIGH, 1, (int) (lba >>> 16) & 0xff);
        ide.ioWrite(COMMAND, 1, toMemory ? (ext ? 0x25 : 0xc8) : (ext ? 0x35 : 0xca));
        ide.busMasterWrite(BM_COMMAND, 1, BM_START | (toMemory ? BM_TO_MEMORY : 0));
        int bmStatus = ide.busMasterRead(BM_STATUS, 1);
        int ataStatus = ide.ioRead(COMMAND, 1); // acknowledges the interrupt
        ide.busMasterWrite(BM_COMMAND, 1, 0);
        if ((bmStatus & (BM_ACTIVE | BM_ERROR | BM_INTR)) != BM_INTR
                || (ataStatus & (ATA_BSY | ATA_DRQ | ATA_ERR)) != 0) {
            throw new IllegalStateException(String.format(
                    "%s DMA of %s did not complete cleanly: bus-master status 0x%02x, ATA status 0x%02x",
                    toMemory ? "READ" : "WRITE", shape.label(), bmStatus, ataStatus));
        }
        return bmStatus;
    }

    /** @return the guest memory, for checks */
    public GuestMemory memory() {
        return memory;
    }

    /** @return where in guest RAM the PRD table points, in PRD order */
    public GuestBuffers buffers() {
        return buffers;
    }

    /** @return the image file, for checks; null for a workload made with {@link #over} */
    public Path imagePath() {
        return image == null ? null : image.path();
    }

    /** Closes the controller, the backend and guest memory, and deletes the image. */
    @Override
    public void close() throws IOException {
        try {
            ide.close();
            backend.close();
        } finally {
            memory.close();
            if (image != null) {
                image.close();
            }
        }
    }
}
