package io.guestdma.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The guest side of QEMU's tests/qtest/ide-test.c, written against a {@link QtestClient}: PCI
 * setup of the PIIX IDE function (00:01.1), the task-file and bus-master registers, and
 * {@link #sendDmaRequest}. Everything a target shows the guest goes into {@link #log}.
 */
final class IdeDriver {
    static final int IDE_DEVFN = 1 << 3 | 1;
    static final int IDE_BASE = 0x1f0;
    static final int IDE_CONTROL = 0x3f6;
    /** Where the driver places BAR4, as libqos's PC allocator does for the first I/O BAR. */
    static final int BMDMA_BASE = 0xc000;
    static final int IDE_PRIMARY_IRQ = 14;

    static final int REG_DATA = 0;
    static final int REG_FEATURE = 1;
    static final int REG_ERROR = 1;
    static final int REG_NSECTORS = 2;
    static final int REG_LBA_LOW = 3;
    static final int REG_LBA_MIDDLE = 4;
    static final int REG_LBA_HIGH = 5;
    static final int REG_DEVICE = 6;
    static final int REG_STATUS = 7;
    static final int REG_COMMAND = 7;

    static final int BSY = 0x80;
    static final int DRDY = 0x40;
    static final int DF = 0x20;
    static final int DRQ = 0x08;
    static final int ERR = 0x01;
    static final int ABRT = 0x04;
    static final int DEV = 0x10;
    static final int LBA = 0x40;

    static final int BM_CMD = 0;
    static final int BM_STATUS = 2;
    static final int BM_PRDT = 4;
    static final int BM_START = 0x1;
    static final int BM_WRITE = 0x8; // to memory
    static final int BM_ACTIVE = 0x1;
    static final int BM_INTR = 0x4;
    static final int PRDT_EOT = 0x80000000;

    static final int CMD_DSM = 0x06;
    static final int CMD_READ_DMA_EXT = 0x25;
    static final int CMD_WRITE_DMA_EXT = 0x35;
    static final int CMD_READ_DMA = 0xc8;
    static final int CMD_WRITE_DMA = 0xca;
    static final int CMD_FLUSH_CACHE = 0xe7;
    static final int CMD_FLUSH_CACHE_EXT = 0xea;
    static final int CMD_IDENTIFY = 0xec;
    static final int CMDF_ABORT = 0x100;
    static final int CMDF_NO_BM = 0x200;

    /** Where the driver writes PRD tables unless told otherwise (libqos allocates from 1 MiB). */
    static final long PRDT_ADDR = 0x100000;

    final QtestClient qts;
    final Observations log;

    IdeDriver(QtestClient qts, Observations log) {
        this.qts = qts;
        this.log = log;
    }

    // ------------------------------------------------------------------ PCI

    int configRead(int devfn, int register, int size) {
        qts.outl(0xcf8, 0x80000000 | devfn << 8 | (register & 0xfc));
        int port = 0xcfc + (register & 3);
        return switch (size) {
            case 1 -> qts.inb(port);
            case 2 -> qts.inw(port);
            default -> qts.inl(port);
        };
    }

    void configWrite(int devfn, int register, int size, int value) {
        qts.outl(0xcf8, 0x80000000 | devfn << 8 | (register & 0xfc));
        int port = 0xcfc + (register & 3);
        switch (size) {
            case 1 -> qts.outb(port, value);
            case 2 -> qts.outw(port, value);
            default -> qts.outl(port, value);
        }
    }

    /**
     * ide-test's get_pci_device once per machine: check the IDs, size BAR4 by writing all ones,
     * place it at {@link #BMDMA_BASE}, and enable I/O, memory and bus mastering. Also starts
     * intercepting the IOAPIC's inputs, as test_bmdma_setup does.
     */
    void setUp() {
        qts.irqInterceptIn("ioapic");
        log.hex("vendor", configRead(IDE_DEVFN, 0x00, 2));
        log.hex("device", configRead(IDE_DEVFN, 0x02, 2));
        configWrite(IDE_DEVFN, 0x20, 4, 0xffffffff);
        log.hex("bar4 after all-ones", configRead(IDE_DEVFN, 0x20, 4));
        configWrite(IDE_DEVFN, 0x20, 4, BMDMA_BASE);
        log.hex("bar4", configRead(IDE_DEVFN, 0x20, 4));
        enable();
    }

    /** libqos's qpci_device_enable: set I/O, memory and bus master in the command register. */
    void enable() {
        int command = configRead(IDE_DEVFN, 0x04, 2);
        configWrite(IDE_DEVFN, 0x04, 2, command | 0x7);
        int now = configRead(IDE_DEVFN, 0x04, 2);
        assertThat(now & 0x7).as("command register after enable").isEqualTo(0x7);
    }

    // ------------------------------------------------------------------ registers

    int ideIn(int register) {
        return qts.inb(IDE_BASE + register);
    }

    void ideOut(int register, int value) {
        qts.outb(IDE_BASE + register, value);
    }

    int bmIn(int register) {
        return qts.inb(BMDMA_BASE + register);
    }

    void bmOut(int register, int value) {
        qts.outb(BMDMA_BASE + register, value);
    }

    /** Writes PRD entries, each {address, byte count | flags}, little-endian, at {@code table}. */
    void writePrdt(long table, int[][] entries) {
        ByteBuffer b = ByteBuffer.allocate(entries.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (int[] e : entries) {
            b.putInt(e[0]).putInt(e[1]);
        }
        qts.memwrite(table, b.array());
    }

    /**
     * ide-test's send_dma_request, recording what it observes: select device 0, stop the engine
     * and clear INTR, load the PRD table at {@link #PRDT_ADDR}, program the task file (LBA28, or
     * LBA48 for the EXT commands), issue the command, start the engine (and stop it at once with
     * {@link #CMDF_ABORT}), poll until ACTIVE falls or INTR rises, then read the interrupt line,
     * status, error and the line again, and stop the engine if still active.
     *
     * @return the bus-master status that ended the poll
     */
    int sendDmaRequest(String label, int cmd, long sector, int nsectors, int[][] prdt) {
        writePrdt(PRDT_ADDR, prdt);
        return sendDmaRequest(label, cmd, sector, nsectors, PRDT_ADDR);
    }

    /** {@link #sendDmaRequest(String, int, long, int, int[][])} with a PRD table already in place. */
    int sendDmaRequest(String label, int cmd, long sector, int nsectors, long prdtAddress) {
        int flags = cmd & ~0xff;
        cmd &= 0xff;
        boolean fromDevice = cmd == CMD_READ_DMA || cmd == CMD_READ_DMA_EXT;
        boolean lba48 = cmd == CMD_READ_DMA_EXT || cmd == CMD_WRITE_DMA_EXT;
        if ((flags & CMDF_NO_BM) != 0) {
            configWrite(IDE_DEVFN, 0x04, 2, 0x3); // I/O and memory, no bus master
        }
        ideOut(REG_DEVICE, LBA);
        bmOut(BM_CMD, 0);
        bmOut(BM_STATUS, BM_INTR);
        qts.outl(BMDMA_BASE + BM_PRDT, (int) prdtAddress);
        if (cmd == CMD_DSM) {
            ideOut(REG_FEATURE, 0x01);
        }
        if (lba48) {
            ideOut(REG_NSECTORS, nsectors >> 8);
            ideOut(REG_LBA_LOW, (int) (sector >>> 24));
            ideOut(REG_LBA_MIDDLE, (int) (sector >>> 32));
            ideOut(REG_LBA_HIGH, (int) (sector >>> 40));
        }
        ideOut(REG_NSECTORS, nsectors);
        ideOut(REG_LBA_LOW, (int) sector);
        ideOut(REG_LBA_MIDDLE, (int) (sector >>> 8));
        ideOut(REG_LBA_HIGH, (int) (sector >>> 16));
        if (!lba48 && sector >= 1 << 24) {
            ideOut(REG_DEVICE, LBA | (int) ((sector >>> 24) & 0xf));
        }
        ideOut(REG_COMMAND, cmd);
        bmOut(BM_CMD, BM_START | (fromDevice ? BM_WRITE : 0));
        if ((flags & CMDF_ABORT) != 0) {
            bmOut(BM_CMD, 0);
        }
        int status = waitForBusMaster();
        log.hex(label + " bm status", status);
        log.flag(label + " irq", qts.irq(IDE_PRIMARY_IRQ));
        log.hex(label + " ata status", ideIn(REG_STATUS));
        log.hex(label + " error", ideIn(REG_ERROR));
        log.flag(label + " irq after status read", qts.irq(IDE_PRIMARY_IRQ));
        if ((status & BM_ACTIVE) != 0) {
            bmOut(BM_CMD, 0);
        }
        log.hex(label + " bm status after stop", bmIn(BM_STATUS));
        if ((flags & CMDF_NO_BM) != 0) {
            enable();
        }
        return status;
    }

    /** Polls the bus-master status while ACTIVE is set and INTR is not (QEMU completes I/O asynchronously). */
    int waitForBusMaster() {
        long deadline = System.nanoTime() + 20_000_000_000L;
        int status;
        while (((status = bmIn(BM_STATUS)) & (BM_ACTIVE | BM_INTR)) == BM_ACTIVE) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(qts.name() + ": DMA still active after 20 s, bm status 0x"
                        + Integer.toHexString(status));
            }
        }
        return status;
    }

    /** Polls the alternate status while BSY is set; returns the last value. */
    int waitNotBusy() {
        long deadline = System.nanoTime() + 20_000_000_000L;
        int status;
        while (((status = qts.inb(IDE_CONTROL)) & BSY) != 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(qts.name() + ": still BSY after 20 s, status 0x"
                        + Integer.toHexString(status));
            }
        }
        return status;
    }

    /** Records the task file after a command: status, error, count, LBA, device, interrupt line. */
    void recordTaskFile(String label) {
        log.flag(label + " irq", qts.irq(IDE_PRIMARY_IRQ));
        log.hex(label + " alt status", qts.inb(IDE_CONTROL));
        log.hex(label + " error", ideIn(REG_ERROR));
        log.hex(label + " nsectors", ideIn(REG_NSECTORS));
        log.hex(label + " lba", ideIn(REG_LBA_LOW) | ideIn(REG_LBA_MIDDLE) << 8 | ideIn(REG_LBA_HIGH) << 16);
        log.hex(label + " device", ideIn(REG_DEVICE));
        log.hex(label + " status", ideIn(REG_STATUS));
        log.flag(label + " irq after status read", qts.irq(IDE_PRIMARY_IRQ));
    }

    /** Records guest RAM (CRC per 512 bytes beyond 64 bytes). */
    void recordRam(String label, long address, int length) {
        log.bytes(label, qts.memread(address, length));
    }
}
