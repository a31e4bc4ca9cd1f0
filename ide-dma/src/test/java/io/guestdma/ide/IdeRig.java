package io.guestdma.ide;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.memory.GuestMemory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.Executor;
import java.util.function.Function;
import java.util.function.UnaryOperator;

/**
 * A PIIX IDE controller on guest RAM with one disk image in a temp file, driven by port accesses
 * the way QEMU's ide-test drives it.
 */
final class IdeRig implements AutoCloseable {
    static final int BASE = 0x1f0;
    static final int CONTROL = 0x3f6;

    static final int REG_DATA = 0;
    static final int REG_FEATURE = 1;
    static final int REG_ERROR = 1;
    static final int REG_NSECTORS = 2;
    static final int REG_LBA_LOW = 3;
    static final int REG_LBA_MID = 4;
    static final int REG_LBA_HIGH = 5;
    static final int REG_DEVICE = 6;
    static final int REG_STATUS = 7;
    static final int REG_COMMAND = 7;

    static final int BSY = 0x80;
    static final int DRDY = 0x40;
    static final int DF = 0x20;
    static final int DSC = 0x10;
    static final int DRQ = 0x08;
    static final int ERR = 0x01;
    static final int ABRT = 0x04;
    static final int DEV = 0x10;
    static final int LBA = 0x40;

    static final int BM_CMD = 0;
    static final int BM_STATUS = 2;
    static final int BM_PRDT = 4;
    static final int BM_START = 0x1;
    static final int BM_TO_MEMORY = 0x8;
    static final int BM_ACTIVE = 0x1;
    static final int BM_ERROR = 0x2;
    static final int BM_INTR = 0x4;
    static final int PRD_EOT = 0x80000000;

    static final int CMD_DSM = 0x06;
    static final int CMD_READ_PIO = 0x20;
    static final int CMD_READ_PIO_EXT = 0x24;
    static final int CMD_READ_DMA_EXT = 0x25;
    static final int CMD_WRITE_PIO = 0x30;
    static final int CMD_WRITE_PIO_EXT = 0x34;
    static final int CMD_WRITE_DMA_EXT = 0x35;
    static final int CMD_DIAGNOSE = 0x90;
    static final int CMD_READ_MULTIPLE = 0xc4;
    static final int CMD_WRITE_MULTIPLE = 0xc5;
    static final int CMD_READ_DMA = 0xc8;
    static final int CMD_WRITE_DMA = 0xca;
    static final int CMD_FLUSH_CACHE = 0xe7;
    static final int CMD_FLUSH_CACHE_EXT = 0xea;
    static final int CMD_IDENTIFY = 0xec;
    static final int CMD_SET_FEATURES = 0xef;

    /** Where tests put PRD tables and buffers in guest RAM. */
    static final long PRDT_ADDR = 0x10000;
    static final long BUF_ADDR = 0x100000;

    final GuestMemory memory;
    final PiixIde ide;
    final IrqRecorder irq14 = new IrqRecorder();
    final IrqRecorder irq15 = new IrqRecorder();
    final Path image;
    final BlockBackend backend;
    final BlockBackend disk;
    final long sectors;

    private IdeRig(GuestMemory memory, Path image, long sectors, DmaMode mode, Executor executor,
                   UnaryOperator<BlockBackend> decorate, UnaryOperator<DriveConfig> configure,
                   io.guestdma.memory.Iommu iommu, Function<Path, BlockBackend> remote) {
        this.memory = memory;
        this.image = image;
        this.sectors = sectors;
        try {
            this.backend = FileChannelBackend.open(image, BlockOptions.defaults());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        this.disk = decorate.apply(remote != null ? remote.apply(image) : backend);
        this.ide = iommu == null ? new PiixIde(memory, executor, mode, irq14, irq15)
                : new PiixIde(memory.deviceSpace("piix-ide", 0, -1L, 0, iommu), executor, mode, irq14, irq15);
        ide.attach(0, 0, configure.apply(DriveConfig.of(disk)));
    }

    static Builder builder() {
        return new Builder();
    }

    static final class Builder {
        private DmaMode mode = DmaMode.MAP;
        private long sectors = 16384; // 8 MiB
        private GuestMemory memory;
        private Executor executor = Runnable::run;
        private UnaryOperator<BlockBackend> decorate = b -> b;
        private UnaryOperator<DriveConfig> configure = c -> c;
        private byte[] sectorZero;
        private io.guestdma.memory.Iommu iommu;

        Builder iommu(io.guestdma.memory.Iommu i) {
            iommu = i;
            return this;
        }
        private Function<Path, BlockBackend> remote;

        Builder mode(DmaMode m) {
            mode = m;
            return this;
        }

        Builder sectors(long n) {
            sectors = n;
            return this;
        }

        Builder memory(GuestMemory m) {
            memory = m;
            return this;
        }

        Builder executor(Executor e) {
            executor = e;
            return this;
        }

        Builder decorate(UnaryOperator<BlockBackend> d) {
            decorate = d;
            return this;
        }

        Builder configure(UnaryOperator<DriveConfig> c) {
            configure = c;
            return this;
        }

        /** The drive reaches the rig's image through the backend {@code open} makes for its path. */
        Builder remote(Function<Path, BlockBackend> open) {
            remote = open;
            return this;
        }

        Builder sectorZero(byte[] contents) {
            sectorZero = contents;
            return this;
        }

        IdeRig build() {
            try {
                Path image = Files.createTempFile("ide-test", ".img");
                try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
                    ch.truncate(0);
                    if (sectorZero != null) {
                        ch.write(ByteBuffer.wrap(sectorZero), 0);
                    }
                    // Sparse: set the size by writing the last byte.
                    ch.write(ByteBuffer.wrap(new byte[1]), sectors * 512 - 1);
                }
                GuestMemory mem = memory != null ? memory : GuestMemory.ofRam(16L << 20);
                return new IdeRig(mem, image, sectors, mode, executor, decorate, configure, iommu, remote);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    // ------------------------------------------------------------------ port access

    int inb(int reg) {
        return ide.ioRead(BASE + reg, 1);
    }

    int inw(int reg) {
        return ide.ioRead(BASE + reg, 2);
    }

    int inl(int reg) {
        return ide.ioRead(BASE + reg, 4);
    }

    void outb(int reg, int value) {
        ide.ioWrite(BASE + reg, 1, value);
    }

    void outw(int reg, int value) {
        ide.ioWrite(BASE + reg, 2, value);
    }

    void outl(int reg, int value) {
        ide.ioWrite(BASE + reg, 4, value);
    }

    int altStatus() {
        return ide.ioRead(CONTROL, 1);
    }

    void control(int value) {
        ide.ioWrite(CONTROL, 1, value);
    }

    int bmRead(int reg) {
        return ide.busMasterRead(reg, 1);
    }

    void bmWrite(int reg, int value) {
        ide.busMasterWrite(reg, 1, value);
    }

    /** Writes PRD entries {address, byte count | flags} at {@code table}. */
    void writePrdt(long table, long[][] entries) {
        for (int i = 0; i < entries.length; i++) {
            memory.writeInt(table + 8L * i, (int) entries[i][0]);
            memory.writeInt(table + 8L * i + 4, (int) entries[i][1]);
        }
    }

    /** What one {@link #sendDma} observed. */
    record DmaResult(int bmStatus, boolean irqBeforeStatusRead, int ataStatus, int error,
                     boolean irqAfterStatusRead) {
    }

    /**
     * QEMU's ide-test send_dma_request: select device 0, stop the engine and clear INTR, point it
     * at the PRD table, program the task file, issue the command, set START (and clear it again if
     * {@code abort}), poll until ACTIVE falls or INTR rises, read the ATA status, stop the engine
     * if still active.
     */
    DmaResult sendDma(int cmd, long sector, int nsectors, long prdt, boolean abort) {
        boolean toMemory = cmd == CMD_READ_DMA || cmd == CMD_READ_DMA_EXT;
        outb(REG_DEVICE, LBA);
        bmWrite(BM_CMD, 0);
        bmWrite(BM_STATUS, BM_INTR);
        ide.busMasterWrite(BM_PRDT, 4, (int) prdt);
        if (cmd == CMD_DSM) {
            outb(REG_FEATURE, 0x01);
        }
        if (cmd == CMD_READ_DMA_EXT || cmd == CMD_WRITE_DMA_EXT) {
            outb(REG_NSECTORS, (nsectors >> 8) & 0xff);
            outb(REG_LBA_LOW, (int) (sector >>> 24) & 0xff);
            outb(REG_LBA_MID, (int) (sector >>> 32) & 0xff);
            outb(REG_LBA_HIGH, (int) (sector >>> 40) & 0xff);
        }
        outb(REG_NSECTORS, nsectors & 0xff);
        outb(REG_LBA_LOW, (int) sector & 0xff);
        outb(REG_LBA_MID, (int) (sector >>> 8) & 0xff);
        outb(REG_LBA_HIGH, (int) (sector >>> 16) & 0xff);
        outb(REG_COMMAND, cmd);
        bmWrite(BM_CMD, BM_START | (toMemory ? BM_TO_MEMORY : 0));
        if (abort) {
            bmWrite(BM_CMD, 0);
        }
        int status;
        long deadline = System.nanoTime() + 10_000_000_000L;
        do {
            status = bmRead(BM_STATUS);
            if (System.nanoTime() > deadline) {
                throw new AssertionError("DMA did not finish, bm status " + status);
            }
        } while ((status & (BM_ACTIVE | BM_INTR)) == BM_ACTIVE);
        boolean irq = irq14.level();
        int ata = inb(REG_STATUS);
        int error = inb(REG_ERROR);
        boolean irqAfter = irq14.level();
        if ((status & BM_ACTIVE) != 0) {
            bmWrite(BM_CMD, 0);
        }
        return new DmaResult(status, irq, ata, error, irqAfter);
    }

    /** Issues a non-data or PIO command on device 0 with an LBA28 address. */
    void command(int cmd, long sector, int nsectors) {
        outb(REG_DEVICE, LBA | (int) ((sector >>> 24) & 0x0f));
        outb(REG_NSECTORS, nsectors & 0xff);
        outb(REG_LBA_LOW, (int) sector & 0xff);
        outb(REG_LBA_MID, (int) (sector >>> 8) & 0xff);
        outb(REG_LBA_HIGH, (int) (sector >>> 16) & 0xff);
        outb(REG_COMMAND, cmd);
    }

    /** Spins until BSY is clear (commands complete inline with a direct executor). */
    int waitNotBusy() {
        long deadline = System.nanoTime() + 10_000_000_000L;
        int status;
        while (((status = altStatus()) & BSY) != 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("still busy: status " + Integer.toHexString(status));
            }
            Thread.onSpinWait();
        }
        return status;
    }

    // ------------------------------------------------------------------ disk and RAM

    byte[] diskBytes(long offset, int length) {
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.READ)) {
            ByteBuffer buf = ByteBuffer.allocate(length);
            while (buf.hasRemaining()) {
                int n = ch.read(buf, offset + buf.position());
                if (n < 0) {
                    break;
                }
            }
            return buf.array();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    void writeDisk(long offset, byte[] data) {
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
            ByteBuffer buf = ByteBuffer.wrap(data);
            while (buf.hasRemaining()) {
                ch.write(buf, offset + buf.position());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    byte[] ram(long address, int length) {
        byte[] b = new byte[length];
        memory.read(address, b, 0, length);
        return b;
    }

    void fillRam(long address, int length, int value) {
        byte[] b = new byte[length];
        java.util.Arrays.fill(b, (byte) value);
        memory.write(address, b, 0, length);
    }

    static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (i * 31 + seed * 7 + (i >>> 9));
        }
        return b;
    }

    @Override
    public void close() {
        ide.close();
        // The controller is stopped: whatever it mapped must be unmapped by now. In DMA debug mode
        // a leak is reported with the stack that mapped it.
        memory.checkNoOutstandingMappings();
        try {
            backend.close();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
        memory.close();
        try {
            Files.deleteIfExists(image);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
