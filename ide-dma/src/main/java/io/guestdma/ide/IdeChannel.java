package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import io.guestdma.block.DmaBlockIo;
import io.guestdma.memory.AccessResult;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.SgList;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One ATA channel with its two units and its bus-master engine: QEMU's {@code IDEBus} plus the
 * command logic of {@code hw/ide/core.c} and the bus-master glue of {@code hw/ide/pci.c}, following
 * QEMU 7.2 register for register.
 *
 * <p><b>Locking.</b> One {@link ReentrantLock} per channel guards everything here, the drives and
 * the bus master. Register accesses take it on the vCPU thread; the DMA engine and the drive
 * request take it on the I/O executor to report completions. Nothing slow runs under it: backend
 * I/O, mapping and unmapping happen outside, and work queued while the lock is held is handed to
 * the executor only when the outermost {@link #unlock()} releases it, so even a direct executor
 * ({@code Runnable::run}) never does I/O under the lock. Interrupt transitions are recorded under
 * the lock and delivered after it is released (see {@link IrqQueue}).
 */
final class IdeChannel {
    /**
     * A request held by the STOP error policy until resume (QEMU's bus error_status), or one a
     * pause parked that a migration carries to the destination to be restarted there. The
     * ordinals are part of the migration format: add new ones at the end.
     */
    private enum Held { NONE, DMA_READ, DMA_WRITE, DMA_TRIM, PIO_READ, PIO_WRITE, FLUSH, ATAPI_DMA, CD_READ }

    private static final long IO_WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

    private final PiixIde controller;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition idle = lock.newCondition();
    private final IrqQueue irq;
    private final AtaDrive[] drives = new AtaDrive[2];
    private final BusMasterDma busMaster;
    private final DmaEngine dma;
    private final DriveRequest request;
    private final SgList sg = new SgList(16);
    private final int channelIndex;
    private final DeviceAddressSpace memory;
    private final Atapi.Transfers atapi = new AtapiTransfers();

    /** Selected unit (QEMU's bus->unit). */
    private int unit;
    /** Device control register as last written (QEMU's bus->cmd). */
    private int deviceControl;
    private int retryUnit = -1;
    private long retrySector;
    private int retryNsector;
    private Held held = Held.NONE;
    /** What the backend threw for the request that just completed, for the error report. */
    private Throwable failure;
    /** Error reports made under the lock, handed to the controller by the outermost unlock. */
    private final java.util.ArrayDeque<BackendError> errorReports = new java.util.ArrayDeque<>();

    /** Runner tasks queued under the lock, handed to the executor by the outermost unlock. */
    private final Runnable[] queued = new Runnable[2];
    private int queuedCount;

    IdeChannel(int channelIndex, PiixIde controller, DeviceAddressSpace memory,
               java.util.concurrent.Executor executor, DmaMode mode, IrqLine line) {
        this.channelIndex = channelIndex;
        this.controller = controller;
        this.memory = memory;
        this.irq = new IrqQueue(line);
        this.busMaster = new BusMasterDma(memory, controller);
        this.dma = new DmaEngine(this, memory, executor, mode, controller);
        this.request = new DriveRequest(this, controller);
        for (int u = 0; u < 2; u++) {
            drives[u] = new AtaDrive(u, null, 0, null, defaultSerial(u));
        }
    }

    String defaultSerial(int u) {
        return String.format("QM%05d", 2 * channelIndex + u + 1);
    }

    // ------------------------------------------------------------------ locking

    void lock() {
        lock.lock();
    }

    /** Releases the lock; the outermost release delivers interrupts and starts queued work. */
    void unlock() {
        if (lock.getHoldCount() > 1) {
            lock.unlock();
            return;
        }
        int count = queuedCount;
        Runnable first = queued[0];
        Runnable second = queued[1];
        queued[0] = null;
        queued[1] = null;
        queuedCount = 0;
        BackendError[] reports = errorReports.isEmpty() ? null : errorReports.toArray(BackendError[]::new);
        errorReports.clear();
        lock.unlock();
        irq.deliver();
        if (reports != null) {
            for (BackendError report : reports) {
                controller.reportBackendError(report);
            }
        }
        if (count > 0) {
            dma.execute(first);
        }
        if (count > 1) {
            dma.execute(second);
        }
    }

    /**
     * Queues a runner's task for the executor at the outermost unlock. Under the lock. At most the
     * DMA engine and the drive request are queued at once.
     */
    void submitAfterUnlock(Runnable task) {
        if (queuedCount == 2) {
            throw new IllegalStateException("more than two runner tasks queued on a channel");
        }
        queued[queuedCount++] = task;
    }

    /** Whether work is queued that only this thread's outermost unlock will start. */
    private boolean hasQueuedWork() {
        return queuedCount > 0;
    }

    void signalIdle() {
        idle.signalAll();
    }

    // ------------------------------------------------------------------ drives

    void attach(int u, AtaDrive drive) {
        drives[u] = drive;
    }

    AtaDrive drive(int u) {
        return drives[u];
    }

    private AtaDrive active() {
        return drives[unit];
    }

    private boolean noDrives() {
        return !drives[0].present() && !drives[1].present();
    }

    /** An absent slave selected: its status and error read as 0 and it ignores commands. */
    private boolean absentSlaveSelected() {
        return unit == 1 && !drives[1].present();
    }

    // ------------------------------------------------------------------ interrupts

    /** QEMU's ide_set_irq: raise unless nIEN; the bus master latches INTR on the way. */
    private void raiseIrq() {
        if ((deviceControl & Ata.CTRL_DISABLE_IRQ) == 0) {
            busMaster.status |= BusMasterDma.STATUS_INTR;
            irq.record(true);
        }
    }

    private void lowerIrq() {
        irq.record(false);
    }

    // ------------------------------------------------------------------ task-file registers

    /** A byte read of command-block register 0..7 (QEMU's ide_ioport_read). */
    int readRegister(int reg) {
        AtaDrive s = active();
        boolean hob = (deviceControl & Ata.CTRL_HOB) != 0;
        return switch (reg) {
            // A byte read of the data register consumes a whole word (QEMU 7.0+, for the pre-GRUB
            // Solaris loader, which reads IDENTIFY data with inb).
            case 0 -> readData(2) & 0xff;
            case 1 -> noDrives() || absentSlaveSelected() ? 0 : hob ? s.hobFeature : s.error;
            case 2 -> noDrives() ? 0 : hob ? s.hobNsector : s.nsector & 0xff;
            case 3 -> noDrives() ? 0 : hob ? s.hobSector : s.sector;
            case 4 -> noDrives() ? 0 : hob ? s.hobLcyl : s.lcyl;
            case 5 -> noDrives() ? 0 : hob ? s.hobHcyl : s.hcyl;
            case 6 -> noDrives() ? 0 : s.select;
            default -> {
                int value = noDrives() || absentSlaveSelected() ? 0 : s.status;
                lowerIrq();
                yield value;
            }
        };
    }

    /** A byte write of command-block register 0..7 (QEMU's ide_ioport_write). */
    void writeRegister(int reg, int value) {
        AtaDrive s = active();
        value &= 0xff;
        if (reg != 7 && (s.status & (Ata.BUSY_STAT | Ata.DRQ_STAT)) != 0) {
            return; // the task file is frozen while a command owns it
        }
        if (reg != 0) {
            deviceControl &= ~Ata.CTRL_HOB;
        }
        // Both units latch every write: they share the cable.
        switch (reg) {
            case 0 -> { }
            case 1 -> {
                for (AtaDrive d : drives) {
                    d.hobFeature = d.feature;
                    d.feature = value;
                }
            }
            case 2 -> {
                for (AtaDrive d : drives) {
                    d.hobNsector = d.nsector & 0xff;
                    d.nsector = value;
                }
            }
            case 3 -> {
                for (AtaDrive d : drives) {
                    d.hobSector = d.sector;
                    d.sector = value;
                }
            }
            case 4 -> {
                for (AtaDrive d : drives) {
                    d.hobLcyl = d.lcyl;
                    d.lcyl = value;
                }
            }
            case 5 -> {
                for (AtaDrive d : drives) {
                    d.hobHcyl = d.hcyl;
                    d.hcyl = value;
                }
            }
            case 6 -> {
                for (AtaDrive d : drives) {
                    d.select = value | Ata.DEV_ALWAYS_ON;
                }
                unit = (value & Ata.DEV_SELECT) != 0 ? 1 : 0;
            }
            default -> {
                lowerIrq();
                executeCommand(value);
            }
        }
    }

    /** Alternate status (QEMU's ide_status_read): status without clearing the interrupt. */
    int readAltStatus() {
        return noDrives() || absentSlaveSelected() ? 0 : active().status;
    }

    /** Device control (QEMU's ide_ctrl_write): nIEN, SRST and HOB. */
    void writeDeviceControl(int value) {
        value &= 0xff;
        boolean resetRising = (deviceControl & Ata.CTRL_RESET) == 0 && (value & Ata.CTRL_RESET) != 0;
        deviceControl = value;
        if (resetRising) {
            // QEMU runs the reset in a bottom half right after the write; nothing the guest can
            // do comes between, so it runs here.
            for (AtaDrive d : drives) {
                d.status |= Ata.BUSY_STAT;
            }
            for (AtaDrive d : drives) {
                softReset(d);
            }
            deviceControl &= ~Ata.CTRL_RESET;
        }
    }

    private void softReset(AtaDrive s) {
        s.status |= Ata.BUSY_STAT;
        s.transferHalt();
        cancelDmaSync();
        waitForRequest();
        s.reset();
        executeDeviceDiagnostic(s);
    }

    // ------------------------------------------------------------------ PIO data port

    /** A 16- or 32-bit read of the data register (QEMU's ide_data_readw/readl). */
    int readData(int size) {
        AtaDrive s = active();
        if ((s.status & Ata.DRQ_STAT) == 0 || !s.endTransfer.deviceToGuest()) {
            return 0;
        }
        int p = s.dataPtr;
        if (p + size > s.dataEnd) {
            return 0;
        }
        byte[] b = s.ioBuffer;
        int value = (b[p] & 0xff) | (b[p + 1] & 0xff) << 8;
        if (size == 4) {
            value |= (b[p + 2] & 0xff) << 16 | (b[p + 3] & 0xff) << 24;
        }
        s.dataPtr = p + size;
        if (s.dataPtr >= s.dataEnd) {
            s.status &= ~Ata.DRQ_STAT;
            endTransfer(s);
        }
        return value;
    }

    /** A 16- or 32-bit write of the data register (QEMU's ide_data_writew/writel). */
    void writeData(int size, int value) {
        AtaDrive s = active();
        if ((s.status & Ata.DRQ_STAT) == 0 || s.endTransfer.deviceToGuest()) {
            return;
        }
        int p = s.dataPtr;
        if (p + size > s.dataEnd) {
            return;
        }
        byte[] b = s.ioBuffer;
        b[p] = (byte) value;
        b[p + 1] = (byte) (value >>> 8);
        if (size == 4) {
            b[p + 2] = (byte) (value >>> 16);
            b[p + 3] = (byte) (value >>> 24);
        }
        s.dataPtr = p + size;
        if (s.dataPtr >= s.dataEnd) {
            s.status &= ~Ata.DRQ_STAT;
            endTransfer(s);
        }
    }

    private void endTransfer(AtaDrive s) {
        switch (s.endTransfer) {
            case SECTOR_READ -> sectorRead(s);
            case SECTOR_WRITE -> sectorWrite(s);
            case TRANSFER_STOP -> s.transferHalt();
            case DUMMY_TRANSFER_STOP -> s.dummyTransferStop();
            case ATAPI_COMMAND -> Atapi.execute(s, atapi);
            case ATAPI_REPLY -> atapiReplyEnd(s);
        }
    }

    /** QEMU's ide_transfer_start: remember the position for a retry, then arm the data phase. */
    private void transferStart(AtaDrive s, int size, AtaDrive.EndTransfer then) {
        setRetry(s);
        s.transferStart(size, then);
    }

    // ------------------------------------------------------------------ commands

    /** QEMU's ide_exec_cmd with its table of hard-disk commands. */
    private void executeCommand(int cmd) {
        AtaDrive s = active();
        if (s.unit == 1 && !s.present()) {
            return; // an absent slave ignores commands
        }
        if ((s.status & (Ata.BUSY_STAT | Ata.DRQ_STAT)) != 0
                && !(s.cdrom && cmd == Ata.WIN_DEVICE_RESET)) {
            return; // only DEVICE RESET to an ATAPI device is accepted now
        }
        if (s.cdrom ? !permittedForCdrom(cmd) : !permitted(cmd)) {
            s.abortCommand();
            raiseIrq();
            return;
        }
        s.status = Ata.READY_STAT | Ata.BUSY_STAT;
        s.error = 0;
        boolean complete = runCommand(s, cmd);
        if (complete) {
            s.status &= ~Ata.BUSY_STAT;
            if (setsSeekComplete(cmd) && s.error == 0) {
                s.status |= Ata.SEEK_STAT;
            }
            raiseIrq();
        }
    }

    private static boolean permitted(int cmd) {
        return switch (cmd) {
            case Ata.WIN_DSM, Ata.WIN_RECAL, Ata.WIN_READ, Ata.WIN_READ_ONCE, Ata.WIN_READ_EXT,
                 Ata.WIN_READDMA_EXT, Ata.WIN_READ_NATIVE_MAX_EXT, Ata.WIN_MULTREAD_EXT,
                 Ata.WIN_WRITE, Ata.WIN_WRITE_ONCE, Ata.WIN_WRITE_EXT, Ata.WIN_WRITEDMA_EXT,
                 Ata.WIN_MULTWRITE_EXT, Ata.WIN_WRITE_VERIFY, Ata.WIN_VERIFY, Ata.WIN_VERIFY_ONCE,
                 Ata.WIN_VERIFY_EXT, Ata.WIN_SEEK, Ata.WIN_DIAGNOSE, Ata.WIN_SPECIFY,
                 Ata.WIN_STANDBYNOW2, Ata.WIN_IDLEIMMEDIATE2, Ata.WIN_STANDBY2, Ata.WIN_SETIDLE2,
                 Ata.WIN_CHECKPOWERMODE2, Ata.WIN_SLEEPNOW2, Ata.WIN_SMART, Ata.WIN_MULTREAD,
                 Ata.WIN_MULTWRITE, Ata.WIN_SETMULT, Ata.WIN_READDMA, Ata.WIN_READDMA_ONCE,
                 Ata.WIN_WRITEDMA, Ata.WIN_WRITEDMA_ONCE, Ata.WIN_STANDBYNOW1,
                 Ata.WIN_IDLEIMMEDIATE, Ata.WIN_STANDBY, Ata.WIN_SETIDLE1,
                 Ata.WIN_CHECKPOWERMODE1, Ata.WIN_SLEEPNOW1, Ata.WIN_FLUSH_CACHE,
                 Ata.WIN_FLUSH_CACHE_EXT, Ata.WIN_IDENTIFY, Ata.WIN_SETFEATURES,
                 Ata.CFA_WEAR_LEVEL, Ata.WIN_READ_NATIVE_MAX -> true;
            default -> false;
        };
    }

    /** The commands QEMU's table marks CD_OK. */
    private static boolean permittedForCdrom(int cmd) {
        return switch (cmd) {
            case Ata.WIN_DEVICE_RESET, Ata.WIN_READ, Ata.WIN_DIAGNOSE, Ata.WIN_PACKETCMD,
                 Ata.WIN_PIDENTIFY, Ata.WIN_FLUSH_CACHE, Ata.WIN_IDENTIFY, Ata.WIN_SETFEATURES -> true;
            default -> false;
        };
    }

    /** Commands flagged SET_DSC in QEMU's table report Seek Complete when they succeed. */
    private static boolean setsSeekComplete(int cmd) {
        return switch (cmd) {
            case Ata.WIN_RECAL, Ata.WIN_READ_NATIVE_MAX_EXT, Ata.WIN_VERIFY, Ata.WIN_VERIFY_ONCE,
                 Ata.WIN_VERIFY_EXT, Ata.WIN_SEEK, Ata.WIN_SPECIFY, Ata.WIN_CHECKPOWERMODE2,
                 Ata.WIN_SMART, Ata.WIN_SETMULT, Ata.WIN_CHECKPOWERMODE1, Ata.WIN_SETFEATURES,
                 Ata.CFA_WEAR_LEVEL, Ata.WIN_READ_NATIVE_MAX -> true;
            default -> false;
        };
    }

    /** @return true if the command is complete now (status and interrupt follow) */
    private boolean runCommand(AtaDrive s, int cmd) {
        switch (cmd) {
            case Ata.WIN_DSM -> {
                if (s.feature == Ata.DSM_TRIM && s.present()) {
                    sectorStartDma(s, AtaDrive.DmaCommand.TRIM);
                    return false;
                }
                s.abortCommand();
                return true;
            }
            case Ata.WIN_READ, Ata.WIN_READ_ONCE, Ata.WIN_READ_EXT -> {
                if (s.cdrom) {
                    s.setSignature(); // ATA-4 8.27.5.2: a packet device answers with its signature
                    s.abortCommand();
                    return true;
                }
                if (!s.present()) {
                    s.abortCommand();
                    return true;
                }
                s.applyLba48(cmd == Ata.WIN_READ_EXT);
                s.reqNbSectors = 1;
                sectorRead(s);
                return false;
            }
            case Ata.WIN_MULTREAD, Ata.WIN_MULTREAD_EXT -> {
                if (!s.present() || s.multSectors == 0) {
                    s.abortCommand();
                    return true;
                }
                s.applyLba48(cmd == Ata.WIN_MULTREAD_EXT);
                s.reqNbSectors = s.multSectors;
                sectorRead(s);
                return false;
            }
            case Ata.WIN_WRITE, Ata.WIN_WRITE_ONCE, Ata.WIN_WRITE_EXT, Ata.WIN_WRITE_VERIFY -> {
                if (!s.present()) {
                    s.abortCommand();
                    return true;
                }
                s.applyLba48(cmd == Ata.WIN_WRITE_EXT);
                s.reqNbSectors = 1;
                s.status = Ata.SEEK_STAT | Ata.READY_STAT;
                transferStart(s, Ata.SECTOR_SIZE, AtaDrive.EndTransfer.SECTOR_WRITE);
                return false;
            }
            case Ata.WIN_MULTWRITE, Ata.WIN_MULTWRITE_EXT -> {
                if (!s.present() || s.multSectors == 0) {
                    s.abortCommand();
                    return true;
                }
                s.applyLba48(cmd == Ata.WIN_MULTWRITE_EXT);
                s.reqNbSectors = s.multSectors;
                int n = Math.min(s.nsector, s.reqNbSectors);
                s.status = Ata.SEEK_STAT | Ata.READY_STAT;
                transferStart(s, Ata.SECTOR_SIZE * n, AtaDrive.EndTransfer.SECTOR_WRITE);
                return false;
            }
            case Ata.WIN_READDMA, Ata.WIN_READDMA_ONCE, Ata.WIN_READDMA_EXT,
                 Ata.WIN_WRITEDMA, Ata.WIN_WRITEDMA_ONCE, Ata.WIN_WRITEDMA_EXT -> {
                if (!s.present()) {
                    s.abortCommand();
                    return true;
                }
                s.applyLba48(cmd == Ata.WIN_READDMA_EXT || cmd == Ata.WIN_WRITEDMA_EXT);
                boolean read = cmd == Ata.WIN_READDMA || cmd == Ata.WIN_READDMA_ONCE
                        || cmd == Ata.WIN_READDMA_EXT;
                sectorStartDma(s, read ? AtaDrive.DmaCommand.READ : AtaDrive.DmaCommand.WRITE);
                return false;
            }
            case Ata.WIN_VERIFY, Ata.WIN_VERIFY_ONCE, Ata.WIN_VERIFY_EXT -> {
                s.applyLba48(cmd == Ata.WIN_VERIFY_EXT);
                return true;
            }
            case Ata.WIN_READ_NATIVE_MAX, Ata.WIN_READ_NATIVE_MAX_EXT -> {
                if (s.totalSectors == 0) {
                    s.abortCommand();
                    return true;
                }
                s.applyLba48(cmd == Ata.WIN_READ_NATIVE_MAX_EXT);
                s.setCurrentSector(s.totalSectors - 1);
                return true;
            }
            case Ata.WIN_CHECKPOWERMODE1, Ata.WIN_CHECKPOWERMODE2 -> {
                s.nsector = 0xff; // active or idle
                return true;
            }
            case Ata.WIN_SETMULT -> {
                int count = s.nsector & 0xff;
                if (count != 0 && (count > Ata.MAX_MULT_SECTORS || (s.nsector & (s.nsector - 1)) != 0)) {
                    s.abortCommand();
                } else {
                    s.multSectors = count;
                }
                return true;
            }
            case Ata.WIN_SPECIFY -> {
                if (s.present()) {
                    s.heads = (s.select & Ata.DEV_HEAD) + 1;
                    s.sectorsPerTrack = s.nsector;
                    raiseIrq();
                } else {
                    s.abortCommand();
                }
                return true;
            }
            case Ata.WIN_DIAGNOSE -> {
                // ATA-6: DEV (and LBA) read 0 afterwards; the signature keeps them otherwise.
                s.select = Ata.DEV_ALWAYS_ON;
                executeDeviceDiagnostic(s);
                return false;
            }
            case Ata.WIN_FLUSH_CACHE, Ata.WIN_FLUSH_CACHE_EXT -> {
                flushCache(s);
                return false;
            }
            case Ata.WIN_IDENTIFY -> {
                if (s.cdrom) {
                    s.setSignature(); // tells the driver to use IDENTIFY PACKET DEVICE
                    s.abortCommand();
                    return true;
                }
                if (!s.present()) {
                    s.abortCommand();
                    return true;
                }
                s.identify();
                sendDataBlock(s);
                return false;
            }
            case Ata.WIN_SETFEATURES -> {
                return setFeatures(s);
            }
            case Ata.WIN_PIDENTIFY -> {
                s.identifyPacket();
                sendDataBlock(s);
                return false;
            }
            case Ata.WIN_PACKETCMD -> {
                if ((s.feature & 0x02) != 0) {
                    s.abortCommand(); // overlapped commands are not supported
                    return true;
                }
                s.status = Ata.READY_STAT | Ata.SEEK_STAT;
                s.atapiDma = (s.feature & 1) != 0;
                s.nsector = Atapi.INT_REASON_CD; // the device wants the command packet
                transferStart(s, Atapi.PACKET_SIZE, AtaDrive.EndTransfer.ATAPI_COMMAND);
                return false;
            }
            case Ata.WIN_DEVICE_RESET -> {
                s.transferHalt();
                cancelDmaSync();
                waitForRequest();
                s.reset();
                s.status = 0; // ATA8-ACS: the signature, and no status bits
                return false;
            }
            case Ata.WIN_SMART -> {
                if (AtaSmart.execute(s) == AtaSmart.Result.DONE) {
                    return true;
                }
                sendDataBlock(s);
                return false;
            }
            case Ata.CFA_WEAR_LEVEL -> {
                s.nsector = 0;
                return true;
            }
            default -> {
                // RECAL, SEEK, the power-management commands: accepted, nothing to do
                return true;
            }
        }
    }

    /** A 512-byte block (IDENTIFY, SMART data) from the PIO buffer to the guest, interrupt first. */
    private void sendDataBlock(AtaDrive s) {
        s.status = Ata.READY_STAT | Ata.SEEK_STAT;
        transferStart(s, 512, AtaDrive.EndTransfer.TRANSFER_STOP);
        raiseIrq();
    }

    /** EXECUTE DEVICE DIAGNOSTIC's outputs, also the end of a soft reset. */
    private void executeDeviceDiagnostic(AtaDrive s) {
        s.setSignature();
        if (s.cdrom) {
            // ATAPI: a clear status register, DRDY included, and no interrupt.
            s.status = 0;
            s.error = 0x01;
            return;
        }
        s.status = Ata.READY_STAT | Ata.SEEK_STAT;
        // The error register's diagnostic code, not an error: device 0 passed, device 1 passed or
        // absent.
        s.error = 0x01;
        raiseIrq();
    }

    private boolean setFeatures(AtaDrive s) {
        if (!s.present()) {
            s.abortCommand();
            return true;
        }
        switch (s.feature) {
            case 0x02 -> {
                s.writeCacheEnabled = true;
                s.putIdentifyWord(85, (1 << 14) | (1 << 5) | 1);
                return true;
            }
            case 0x82 -> {
                s.writeCacheEnabled = false;
                s.putIdentifyWord(85, (1 << 14) | 1);
                flushCache(s);
                return false;
            }
            case 0xcc -> {
                s.resetReverts = true;
                return true;
            }
            case 0x66 -> {
                s.resetReverts = false;
                return true;
            }
            case 0xaa, 0x55, 0x05, 0x85, 0x69, 0x67, 0x96, 0x9a, 0x42, 0xc2 -> {
                return true; // look-ahead, APM, AAM and vendor NOPs
            }
            case 0x03 -> {
                int mode = s.nsector & 0x07;
                switch (s.nsector >>> 3) {
                    case 0x00, 0x01 -> setTransferModeWords(s, 0x07, 0x07, 0x3f);
                    case 0x02 -> setTransferModeWords(s, 0x07 | (1 << (mode + 8)), 0x07, 0x3f);
                    case 0x04 -> setTransferModeWords(s, 0x07, 0x07 | (1 << (mode + 8)), 0x3f);
                    case 0x08 -> setTransferModeWords(s, 0x07, 0x07, 0x3f | (1 << (mode + 8)));
                    default -> s.abortCommand();
                }
                return true;
            }
            default -> {
                s.abortCommand();
                return true;
            }
        }
    }

    private static void setTransferModeWords(AtaDrive s, int singleWord, int multiWord, int ultra) {
        s.putIdentifyWord(62, singleWord);
        s.putIdentifyWord(63, multiWord);
        s.putIdentifyWord(88, ultra);
    }

    // ------------------------------------------------------------------ PIO sectors and flush

    /** QEMU's ide_sector_read: the next block of sectors into the PIO buffer. */
    private void sectorRead(AtaDrive s) {
        s.status = Ata.READY_STAT | Ata.SEEK_STAT;
        s.error = 0;
        long sectorNum = s.currentSector();
        int n = s.nsector;
        if (n == 0) {
            s.transferHalt();
            return;
        }
        s.status |= Ata.BUSY_STAT;
        n = Math.min(n, s.reqNbSectors);
        if (!s.sectorRangeOk(sectorNum, n)) {
            rwError(s);
            return;
        }
        request.start(s, DriveRequest.Kind.READ, sectorNum * Ata.SECTOR_SIZE, n * Ata.SECTOR_SIZE);
    }

    /** QEMU's ide_sector_write: the filled PIO buffer to disk. */
    private void sectorWrite(AtaDrive s) {
        s.status = Ata.READY_STAT | Ata.SEEK_STAT | Ata.BUSY_STAT;
        long sectorNum = s.currentSector();
        int n = Math.min(s.nsector, s.reqNbSectors);
        if (!s.sectorRangeOk(sectorNum, n)) {
            rwError(s);
            return;
        }
        request.start(s, DriveRequest.Kind.WRITE, sectorNum * Ata.SECTOR_SIZE, n * Ata.SECTOR_SIZE);
    }

    private void flushCache(AtaDrive s) {
        if (!s.present()) {
            flushDone(s, DmaOutcome.OK);
            return;
        }
        if (s.backend == null) {
            // a CD-ROM drive without a medium: the flush fails with ENOMEDIUM, under werror
            failure = new io.guestdma.memory.posix.PosixException("flush of an empty drive",
                    io.guestdma.memory.posix.Errno.ENOMEDIUM);
            flushDone(s, DmaOutcome.FAILED);
            return;
        }
        s.status |= Ata.BUSY_STAT;
        setRetry(s);
        request.start(s, DriveRequest.Kind.FLUSH, 0, 0);
    }

    /**
     * Waits until every change of this channel's interrupt line recorded so far has reached its
     * {@link IrqLine} (see {@link IrqQueue#awaitDelivered()}).
     *
     * @throws InterruptedException if interrupted while waiting
     */
    void awaitInterruptDelivered() throws InterruptedException {
        irq.awaitDelivered();
    }

    /** Completion of a PIO or flush request, under the lock; cause is what the backend threw, if anything. */
    void driveRequestDone(AtaDrive s, DriveRequest.Kind kind, DmaOutcome outcome, Throwable cause) {
        failure = cause;
        switch (kind) {
            case READ -> sectorReadDone(s, outcome);
            case WRITE -> sectorWriteDone(s, outcome);
            case FLUSH -> flushDone(s, outcome);
            case CD_READ -> cdSectorReadDone(s, outcome);
        }
    }

    private void sectorReadDone(AtaDrive s, DmaOutcome outcome) {
        s.status &= ~Ata.BUSY_STAT;
        if (outcome != DmaOutcome.OK && handleRwError(s, Held.PIO_READ)) {
            return;
        }
        int n = Math.min(s.nsector, s.reqNbSectors);
        s.setCurrentSector(s.currentSector() + n);
        s.nsector -= n;
        transferStart(s, n * Ata.SECTOR_SIZE, AtaDrive.EndTransfer.SECTOR_READ);
        raiseIrq();
    }

    private void sectorWriteDone(AtaDrive s, DmaOutcome outcome) {
        s.status &= ~Ata.BUSY_STAT;
        if (outcome != DmaOutcome.OK && handleRwError(s, Held.PIO_WRITE)) {
            return;
        }
        int n = Math.min(s.nsector, s.reqNbSectors);
        s.nsector -= n;
        s.setCurrentSector(s.currentSector() + n);
        if (s.nsector == 0) {
            s.transferHalt();
        } else {
            int next = Math.min(s.nsector, s.reqNbSectors);
            transferStart(s, next * Ata.SECTOR_SIZE, AtaDrive.EndTransfer.SECTOR_WRITE);
        }
        raiseIrq();
    }

    private void flushDone(AtaDrive s, DmaOutcome outcome) {
        if (outcome != DmaOutcome.OK && handleRwError(s, Held.FLUSH)) {
            return;
        }
        s.status = Ata.READY_STAT | Ata.SEEK_STAT;
        raiseIrq();
    }

    /** QEMU's ide_rw_error: ABRT with an interrupt. */
    private void rwError(AtaDrive s) {
        s.abortCommand();
        raiseIrq();
    }

    /**
     * QEMU's ide_handle_rw_error: applies the drive's rerror/werror policy.
     *
     * @return false if the error is to be ignored and the command completes as if it succeeded
     */
    private boolean handleRwError(AtaDrive s, Held op) {
        boolean isRead = op == Held.DMA_READ || op == Held.PIO_READ;
        Throwable cause = failure != null ? failure : new java.io.IOException("the request failed");
        ErrorPolicy policy = (isRead ? s.config.readPolicy() : s.config.writePolicy()).actionFor(cause);
        errorReports.add(new BackendError(channelIndex, s.unit,
                isRead ? BackendError.Operation.READ : BackendError.Operation.WRITE, policy, cause));
        failure = null;
        switch (policy) {
            case STOP -> {
                held = op;
                controller.stopForError();
                return true;
            }
            case REPORT -> {
                if (op == Held.DMA_READ || op == Held.DMA_WRITE || op == Held.DMA_TRIM) {
                    dmaError(s);
                } else {
                    rwError(s);
                }
                return true;
            }
            default -> {
                return false;
            }
        }
    }

    private void setRetry(AtaDrive s) {
        retryUnit = s.unit;
        retrySector = s.currentSector();
        retryNsector = s.nsector;
    }

    private void clearRetry() {
        retryUnit = -1;
        retrySector = 0;
        retryNsector = 0;
    }

    // ------------------------------------------------------------------ ATAPI data phases

    /** QEMU's ide_cd_change_cb: a new medium (or none, tray open), reported as a change. */
    void changeMedium(AtaDrive s, io.guestdma.block.BlockBackend medium, long sectors) {
        s.backend = medium;
        s.totalSectors = sectors;
        s.trayOpen = medium == null;
        s.cdromChanged = 1;
        s.newMediaEvent = true;
        s.ejectRequestEvent = false;
        raiseIrq();
    }

    /** QEMU's ide_atapi_cmd_ok. */
    private void atapiOk(AtaDrive s) {
        s.error = 0;
        s.status = Ata.READY_STAT | Ata.SEEK_STAT;
        s.nsector = (s.nsector & ~7) | Atapi.INT_REASON_IO | Atapi.INT_REASON_CD;
        s.transferHalt();
        raiseIrq();
    }

    /** QEMU's ide_atapi_cmd_error: CHECK CONDITION with the sense key in the error register. */
    private void atapiError(AtaDrive s, int senseKey, int asc) {
        s.error = senseKey << 4;
        s.status = Ata.READY_STAT | Ata.ERR_STAT;
        s.nsector = (s.nsector & ~7) | Atapi.INT_REASON_IO | Atapi.INT_REASON_CD;
        s.senseKey = senseKey;
        s.asc = asc;
        s.transferHalt();
        raiseIrq();
    }

    /** QEMU's ide_atapi_io_error for a failed read: no medium, or (anything else) LBA out of range. */
    private void atapiIoError(AtaDrive s) {
        if (s.backend == null) {
            atapiError(s, Atapi.NOT_READY, Atapi.ASC_MEDIUM_NOT_PRESENT);
        } else {
            atapiError(s, Atapi.ILLEGAL_REQUEST, Atapi.ASC_LOGICAL_BLOCK_OOR);
        }
    }

    /**
     * QEMU's ide_atapi_cmd_reply_end: the next piece of a PIO reply. A new elementary transfer
     * (one DRQ block) is at most the byte count limit the guest put in the cylinder registers,
     * made even, and never crosses a CD sector; each raises an interrupt with the size in the
     * cylinder registers. A sector that is needed is read first and this runs again after it.
     */
    private void atapiReplyEnd(AtaDrive s) {
        if (s.packetTransferSize <= 0) {
            atapiOk(s);
            setInactive(false);
            return;
        }
        if (s.lba != -1 && s.ioBufferIndex >= s.cdSectorSize) {
            if (s.elementaryTransferSize == 0) {
                // Between DRQ blocks the drive may be busy: read on the I/O executor.
                s.status |= Ata.BUSY_STAT;
                request.start(s, DriveRequest.Kind.CD_READ, s.lba * Atapi.SECTOR_SIZE, Atapi.SECTOR_SIZE,
                        dataOffset(s));
                return;
            }
            // Inside a DRQ block the guest may go on reading without polling: the next sector must
            // be there before this data-port access returns (QEMU's cd_read_sector_sync). One
            // 2 KiB read under the lock.
            if (!readCdSectorNow(s)) {
                atapiIoError(s);
                return;
            }
            s.lba++;
            s.ioBufferIndex = 0;
        }
        int size;
        if (s.elementaryTransferSize > 0) {
            size = Math.min(s.cdSectorSize - s.ioBufferIndex, s.elementaryTransferSize);
        } else {
            s.nsector = (s.nsector & ~7) | Atapi.INT_REASON_IO;
            raiseIrq();
            int limit = Atapi.byteCountLimit(s);
            size = (int) Math.min(s.packetTransferSize, Integer.MAX_VALUE);
            if (size > limit) {
                size = limit & ~1;
            }
            s.lcyl = size & 0xff;
            s.hcyl = (size >>> 8) & 0xff;
            s.elementaryTransferSize = size;
        }
        if (s.lba != -1) {
            size = Math.min(size, s.cdSectorSize - s.ioBufferIndex);
        }
        s.packetTransferSize -= size;
        s.elementaryTransferSize -= size;
        s.ioBufferIndex += size;
        setRetry(s);
        s.transferStart(s.ioBufferIndex - size, size, AtaDrive.EndTransfer.ATAPI_REPLY);
    }

    /** Where a sector's user data goes in the buffer: after the header of a raw sector. */
    private static int dataOffset(AtaDrive s) {
        return s.cdSectorSize == Atapi.RAW_SECTOR_SIZE ? Atapi.RAW_DATA_OFFSET : 0;
    }

    private static boolean readCdSectorNow(AtaDrive s) {
        if (s.backend == null) {
            return false;
        }
        try {
            s.backend.read(s.lba * Atapi.SECTOR_SIZE,
                    java.nio.ByteBuffer.wrap(s.ioBuffer, dataOffset(s), Atapi.SECTOR_SIZE));
            if (s.cdSectorSize == Atapi.RAW_SECTOR_SIZE) {
                Atapi.rawSector(s.ioBuffer, s.lba);
            }
            return true;
        } catch (Exception e) {
            // any backend failure is a read error for the guest (sense data), never an exception
            // out of the register access
            return false;
        }
    }

    /** QEMU's cd_read_sector_cb: the sector is in the buffer, go on with the reply. */
    private void cdSectorReadDone(AtaDrive s, DmaOutcome outcome) {
        if (outcome != DmaOutcome.OK) {
            atapiIoError(s);
            return;
        }
        if (s.cdSectorSize == Atapi.RAW_SECTOR_SIZE) {
            Atapi.rawSector(s.ioBuffer, s.lba);
        }
        s.lba++;
        s.ioBufferIndex = 0;
        s.status &= ~Ata.BUSY_STAT;
        atapiReplyEnd(s);
    }

    /**
     * ATAPI DMA, QEMU's ide_atapi_cmd_read_dma_cb with the whole transfer in one walk of the PRD
     * table: a reply from the buffer is copied to the guest; sectors go from the medium straight
     * into guest memory through the engine. First call: start; second call: the engine is done.
     * A PRD table shorter than the transfer fills all it describes, a tail shorter than 512
     * bytes included, then the bus master stops without an interrupt and the drive stays busy, as
     * QEMU 7.2 leaves it (AtapiConformanceTest.shortPrdTails).
     */
    private void atapiDmaStep(AtaDrive s, DmaOutcome outcome) {
        if (outcome == DmaOutcome.MEMORY_FAULT) {
            memoryFault(s);
            return;
        }
        if (outcome != DmaOutcome.OK) {
            atapiIoError(s);
            setInactive(false);
            return;
        }
        if (s.ioBufferSize > 0) {
            atapiDmaDone(s, s.ioBufferSize);
            return;
        }
        if (s.lba != -1 && s.cdSectorSize == Atapi.RAW_SECTOR_SIZE) {
            rawSectorsByDma(s);
            return;
        }
        long bytes = s.packetTransferSize;
        if (bytes <= 0) {
            atapiDmaDone(s, 0);
            return;
        }
        long described = busMaster.collect(sg, bytes);
        if (described < 0) {
            memoryFault(s);
            return;
        }
        long moved = sg.size();
        // A marker that the transfer has started: the bytes that will have moved.
        s.ioBufferSize = bytes == moved ? bytes : -1 - moved;
        if (s.lba == -1) {
            AccessResult result = AccessResult.OK;
            int done = 0;
            for (int i = 0; i < sg.count(); i++) {
                int piece = (int) sg.length(i);
                result = result.and(memory.write(sg.address(i), s.ioBuffer, done, piece));
                done += piece;
            }
            if (result.failed()) {
                memoryFault(s);
                return;
            }
            atapiDmaDone(s, s.ioBufferSize);
            return;
        }
        if (moved == 0) {
            atapiDmaDone(s, s.ioBufferSize);
            return;
        }
        dma.start(s, sg, DmaDirection.FROM_DEVICE, s.lba * Atapi.SECTOR_SIZE, AtaDrive.DmaCommand.ATAPI);
    }

    /**
     * READ CD of raw sectors by DMA, as QEMU 7.2 moves them: each sector is read into the buffer,
     * wrapped in its sync pattern and header, and copied to where the PRDs point; when the table
     * runs out (mid-sector too) the copy stops there, the bus master stops without an interrupt
     * and the drive stays busy. The sectors are read under the channel lock, like the PIO path's
     * sector within a DRQ block: a raw read is a rare, audio-grabbing command, not the data path.
     */
    private void rawSectorsByDma(AtaDrive s) {
        long bytes = s.packetTransferSize;
        if (busMaster.collect(sg, bytes) < 0) {
            memoryFault(s);
            return;
        }
        int entry = 0;
        long inEntry = 0;
        long copied = 0;
        AccessResult result = AccessResult.OK;
        while (copied < bytes) {
            if (!readCdSectorNow(s)) {
                atapiIoError(s);
                setInactive(false);
                return;
            }
            s.lba++;
            int done = 0;
            while (done < Atapi.RAW_SECTOR_SIZE && entry < sg.count()) {
                int piece = (int) Math.min(Atapi.RAW_SECTOR_SIZE - done, sg.length(entry) - inEntry);
                result = result.and(memory.write(sg.address(entry) + inEntry, s.ioBuffer, done, piece));
                done += piece;
                inEntry += piece;
                if (inEntry == sg.length(entry)) {
                    entry++;
                    inEntry = 0;
                }
            }
            copied += done;
            if (done < Atapi.RAW_SECTOR_SIZE) {
                break;
            }
        }
        if (result.failed()) {
            memoryFault(s);
            return;
        }
        // lba already counts the sectors read: the marker 0 leaves it
        atapiDmaDone(s, copied == bytes ? 0 : -1 - copied);
    }

    private void atapiDmaDone(AtaDrive s, long marker) {
        s.ioBufferSize = 0;
        if (marker < 0) {
            setInactive(false); // PRD underflow
            return;
        }
        if (s.lba != -1) {
            s.lba += marker / Atapi.SECTOR_SIZE;
        }
        s.packetTransferSize = 0;
        s.status = Ata.READY_STAT | Ata.SEEK_STAT;
        s.nsector = (s.nsector & ~7) | Atapi.INT_REASON_IO | Atapi.INT_REASON_CD;
        raiseIrq();
        setInactive(false);
    }

    /** The channel's side of the ATAPI command set. */
    private final class AtapiTransfers implements Atapi.Transfers {
        @Override
        public void ok(AtaDrive s) {
            atapiOk(s);
        }

        @Override
        public void error(AtaDrive s, int senseKey, int asc) {
            atapiError(s, senseKey, asc);
        }

        @Override
        public void checkStatus(AtaDrive s) {
            s.error = 0x20 | (Atapi.UNIT_ATTENTION << 4); // MC | UNIT ATTENTION
            s.status = Ata.ERR_STAT;
            s.nsector = 0;
            raiseIrq();
        }

        @Override
        public void abort(AtaDrive s) {
            s.abortCommand();
        }

        @Override
        public void reply(AtaDrive s, int size, int maxSize) {
            int length = Math.min(size, maxSize);
            s.lba = -1;
            s.packetTransferSize = length;
            s.elementaryTransferSize = 0;
            s.ioBufferIndex = 0;
            if (s.atapiDma) {
                s.status = Ata.READY_STAT | Ata.SEEK_STAT | Ata.DRQ_STAT;
                startAtapiDma(s);
            } else {
                s.status = Ata.READY_STAT | Ata.SEEK_STAT;
                atapiReplyEnd(s);
            }
        }

        @Override
        public void read(AtaDrive s, long lba, long count, int sectorSize) {
            s.lba = lba;
            s.packetTransferSize = count * sectorSize;
            s.cdSectorSize = sectorSize;
            if (s.atapiDma) {
                s.ioBufferIndex = 0;
                s.status = Ata.READY_STAT | Ata.SEEK_STAT | Ata.DRQ_STAT | Ata.BUSY_STAT;
                startAtapiDma(s);
            } else {
                s.elementaryTransferSize = 0;
                s.ioBufferIndex = sectorSize; // nothing buffered yet
                s.status = Ata.READY_STAT | Ata.SEEK_STAT;
                atapiReplyEnd(s);
            }
        }
    }

    private void startAtapiDma(AtaDrive s) {
        s.ioBufferSize = 0;
        s.dmaCommand = AtaDrive.DmaCommand.ATAPI;
        startDma(s);
    }

    // ------------------------------------------------------------------ bus-master DMA

    /** QEMU's ide_sector_start_dma: DRQ up, wait for (or run under) the bus master's START. */
    private void sectorStartDma(AtaDrive s, AtaDrive.DmaCommand command) {
        s.status = Ata.READY_STAT | Ata.SEEK_STAT | Ata.DRQ_STAT;
        s.ioBufferSize = 0;
        s.dmaCommand = command;
        startDma(s);
    }

    /** QEMU's ide_start_dma + bmdma_start_dma. */
    private void startDma(AtaDrive s) {
        setRetry(s);
        busMaster.arm();
        if ((busMaster.status & BusMasterDma.STATUS_ACTIVE) != 0) {
            dmaStep(s, DmaOutcome.OK);
        }
    }

    /** The engine finished a transfer (under the lock); cause is what the backend threw, if it failed. */
    void dmaTransferDone(AtaDrive s, DmaOutcome outcome, Throwable cause) {
        failure = cause;
        dmaStep(s, outcome);
    }

    /**
     * QEMU's ide_dma_cb: account for what the last transfer moved, then either finish the command
     * or walk the PRD table for the rest and start the next transfer. With QEMU's PRD walk the
     * whole command is one transfer, so this runs once to start and once to finish.
     */
    private void dmaStep(AtaDrive s, DmaOutcome outcome) {
        if (s.dmaCommand == AtaDrive.DmaCommand.ATAPI) {
            atapiDmaStep(s, outcome);
            return;
        }
        if (outcome == DmaOutcome.INVALID) {
            dmaError(s);
            return;
        }
        if (outcome == DmaOutcome.MEMORY_FAULT) {
            memoryFault(s);
            return;
        }
        if (outcome == DmaOutcome.FAILED && handleRwError(s, heldFor(s.dmaCommand))) {
            return;
        }
        boolean stayActive = false;
        long n;
        if (s.ioBufferSize > (long) s.nsector * Ata.SECTOR_SIZE) {
            // The PRDs described more than the command moves: ACTIVE stays set (PRD overflow).
            n = s.nsector;
            stayActive = true;
        } else {
            n = s.ioBufferSize >> 9;
        }
        long sectorNum = s.currentSector();
        if (n > 0) {
            sectorNum += n;
            s.setCurrentSector(sectorNum);
            s.nsector -= (int) n;
        }
        if (s.nsector == 0) {
            s.status = Ata.READY_STAT | Ata.SEEK_STAT;
            raiseIrq();
            setInactive(stayActive);
            return;
        }
        long bytes = (long) s.nsector * Ata.SECTOR_SIZE;
        long described = busMaster.collect(sg, bytes);
        if (described < 0) {
            s.ioBufferSize = 0;
            memoryFault(s);
            return;
        }
        s.ioBufferSize = described;
        if (sg.size() < bytes) {
            // PRD underflow: the table ended first. No interrupt, ACTIVE cleared.
            s.status = Ata.READY_STAT | Ata.SEEK_STAT;
            setInactive(stayActive);
            return;
        }
        if (s.dmaCommand != AtaDrive.DmaCommand.TRIM && !s.sectorRangeOk(sectorNum, s.nsector)) {
            dmaError(s);
            return;
        }
        DmaDirection direction = s.dmaCommand == AtaDrive.DmaCommand.READ
                ? DmaDirection.FROM_DEVICE : DmaDirection.TO_DEVICE;
        dma.start(s, sg, direction, sectorNum * Ata.SECTOR_SIZE, s.dmaCommand);
    }

    private static Held heldFor(AtaDrive.DmaCommand command) {
        return switch (command) {
            case READ -> Held.DMA_READ;
            case WRITE -> Held.DMA_WRITE;
            case TRIM -> Held.DMA_TRIM;
            // ATAPI transfers report errors as sense data and are never held
            case ATAPI -> Held.DMA_READ;
        };
    }

    /**
     * The bus master could not read or write guest memory (a PRD table or data in a device whose
     * handler failed): the command ends as QEMU's ide_dma_error ends it (ABRT, bus master
     * inactive, interrupt) with the bus master's ERROR bit set as well, which the PCI IDE
     * bus-master specification defines for "an error transferring data to or from memory". No
     * error policy applies: the disk is fine, and retrying would fail the same way.
     */
    private void memoryFault(AtaDrive s) {
        busMaster.status |= BusMasterDma.STATUS_ERROR;
        dmaError(s);
    }

    /** QEMU's ide_dma_error: ABRT, bus master inactive, interrupt. */
    private void dmaError(AtaDrive s) {
        s.abortCommand();
        setInactive(false);
        raiseIrq();
    }

    /** QEMU's ide_set_inactive: the command no longer owns the bus master. */
    private void setInactive(boolean stayActive) {
        clearRetry();
        busMaster.setInactive(stayActive);
    }

    /** A byte read of the bus master's command/status quad (offsets 0..3). */
    int readBusMasterByte(int offset) {
        return switch (offset) {
            case 0 -> busMaster.command;
            case 2 -> busMaster.status;
            default -> 0xff;
        };
    }

    /** A byte write of the bus master's command/status quad (offsets 0..3). */
    void writeBusMasterByte(int offset, int value) {
        value &= 0xff;
        if (offset == 0) {
            writeBusMasterCommand(value);
        } else if (offset == 2) {
            busMaster.writeStatus(value);
        }
    }

    int readBusMasterAddress(int offset, int size) {
        return busMaster.readAddressBytes(offset, size);
    }

    void writeBusMasterAddress(int offset, int size, int value) {
        busMaster.writeAddressBytes(offset, size, value);
    }

    /** QEMU's bmdma_cmd_writeb. */
    private void writeBusMasterCommand(int value) {
        if ((value & BusMasterDma.CMD_START) != (busMaster.command & BusMasterDma.CMD_START)) {
            if ((value & BusMasterDma.CMD_START) == 0) {
                // Stopping mid-transfer cannot tear a request in half: QEMU waits for it to
                // finish, as if the DMA had completed before the guest cleared START.
                cancelDmaSync();
                busMaster.status &= ~BusMasterDma.STATUS_ACTIVE;
            } else {
                busMaster.rewind();
                if ((busMaster.status & BusMasterDma.STATUS_ACTIVE) == 0) {
                    busMaster.status |= BusMasterDma.STATUS_ACTIVE;
                    if (busMaster.armed && retryUnit >= 0) {
                        dmaStep(drives[retryUnit], DmaOutcome.OK);
                    }
                }
            }
        }
        busMaster.command = value & (BusMasterDma.CMD_START | BusMasterDma.CMD_WRITE_TO_MEMORY);
    }

    /**
     * QEMU's ide_cancel_dma_sync: the transfer finishes before this returns and its completion
     * stands, as if the DMA had completed before the guest cleared START; only one a pause parked
     * is dropped.
     *
     * <p>A transfer waiting for bounce space finishes too, through the copy path, instead of being
     * dropped. Whether a transfer is moving data or waiting for bounce space when the guest clears
     * START depends on what other devices hold in the pool at that instant, not on anything the
     * guest did, and COPY never waits at all; dropping a waiting one made the same guest see
     * "completed" (0x50, interrupt) one time and "still in its data phase, no interrupt" the next.
     * QEMU 7.2 has no answer to copy there: blk_drain has no request to drain and its assertion
     * that the DMA is gone fails. Waiting for the pool instead could hang the vCPU on a mapping
     * only the guest will release, so the rest goes through the copy path, which needs no bounce
     * space and moves the same data.
     */
    private void cancelDmaSync() {
        while (true) {
            switch (dma.phase()) {
                case IDLE -> {
                    return;
                }
                case WAITING_FOR_BOUNCE -> {
                    dma.continueWithoutBounce();
                    startQueuedWork();
                }
                case PARKED -> {
                    // Nothing moves while the controller is paused. Drop the transfer and forget
                    // its PRD walk, so that setting START again repeats the whole command from
                    // the first PRD.
                    dma.cancel();
                    if (retryUnit >= 0) {
                        drives[retryUnit].ioBufferSize = 0;
                        busMaster.arm();
                    }
                    return;
                }
                case RUNNING -> {
                    if (dma.runsOnCurrentThread() || hasQueuedWork()) {
                        // Re-entered from the transfer's own thread, or not handed to the
                        // executor yet: waiting here could never end.
                        return;
                    }
                    awaitIdle();
                }
            }
        }
    }

    /**
     * Hands the work queued under the lock to the executor now, as the outermost unlock would (a
     * direct executor runs it here, without the lock), so that it can be waited for; then takes
     * the lock back as many times as it was held. Under the lock.
     */
    private void startQueuedWork() {
        int holds = lock.getHoldCount();
        for (int i = 1; i < holds; i++) {
            lock.unlock();
        }
        unlock();
        for (int i = 0; i < holds; i++) {
            lock.lock();
        }
    }

    /** Lets a running PIO or flush request finish; drops a parked one. */
    private void waitForRequest() {
        while (true) {
            switch (request.phase()) {
                case IDLE -> {
                    return;
                }
                case RUNNING -> {
                    if (request.runsOnCurrentThread() || hasQueuedWork()) {
                        return;
                    }
                    awaitIdle();
                }
                default -> {
                    request.cancel();
                    return;
                }
            }
        }
    }

    private void awaitIdle() {
        try {
            idle.awaitNanos(IO_WAIT_NANOS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the channel's I/O", e);
        }
    }

    // ------------------------------------------------------------------ pause, resume, reset

    /** Waits until no data moves (running work parks at its next boundary). Under the lock. */
    void quiesce() {
        while (!hasQueuedWork()
                && ((dma.phase() == DmaBlockIo.Phase.RUNNING && !dma.runsOnCurrentThread())
                || (request.phase() == DmaBlockIo.Phase.RUNNING && !request.runsOnCurrentThread()))) {
            awaitIdle();
        }
    }

    /** QEMU's ide_restart_bh plus restarting parked work. Under the lock. */
    void resume() {
        dma.unpark();
        request.unpark();
        if (held == Held.NONE) {
            return;
        }
        Held op = held;
        held = Held.NONE;
        AtaDrive dmaDrive = retryUnit >= 0 ? drives[retryUnit] : active();
        switch (op) {
            case DMA_READ -> restartDma(dmaDrive, AtaDrive.DmaCommand.READ);
            case DMA_WRITE -> restartDma(dmaDrive, AtaDrive.DmaCommand.WRITE);
            case DMA_TRIM -> restartDma(dmaDrive, AtaDrive.DmaCommand.TRIM);
            case PIO_READ -> sectorRead(active());
            case PIO_WRITE -> sectorWrite(active());
            case FLUSH -> flushCache(active());
            case ATAPI_DMA -> {
                // QEMU's ide_atapi_dma_restart: the whole reply again from the first PRD
                dmaDrive.ioBufferSize = 0;
                busMaster.rewind();
                startAtapiDma(dmaDrive);
            }
            case CD_READ -> atapiReplyEnd(active());
            case NONE -> { }
        }
    }

    /** QEMU's ide_restart_dma: the whole command again from its first sector and PRD. */
    private void restartDma(AtaDrive s, AtaDrive.DmaCommand command) {
        s.setCurrentSector(retrySector);
        s.nsector = retryNsector;
        busMaster.rewind();
        s.ioBufferSize = 0;
        s.dmaCommand = command;
        startDma(s);
    }

    boolean holdsRequest() {
        return held != Held.NONE;
    }

    // ------------------------------------------------------------------ migration

    /**
     * Writes the channel (QEMU's vmstate_ide_bus, vmstate_bmdma and both units). Under the lock,
     * with the controller paused. Work a pause parked mid-way is saved as a held request: the
     * destination restarts it from its start, which moves the same bytes again (the guest cannot
     * touch the buffers while the command owns them), as QEMU restarts a DMA the VM stopped.
     *
     * @throws IllegalStateException if a transfer or request is still running
     */
    void save(StateWriter out) {
        Held saved = held;
        if (dma.phase() == DmaBlockIo.Phase.RUNNING || request.phase() == DmaBlockIo.Phase.RUNNING
                || hasQueuedWork()) {
            throw new IllegalStateException("IDE channel " + channelIndex + " still has I/O running: "
                    + "stop the machine and drain it before saving");
        }
        if (saved == Held.NONE && dma.phase() != DmaBlockIo.Phase.IDLE && retryUnit >= 0) {
            saved = switch (drives[retryUnit].dmaCommand) {
                case READ -> Held.DMA_READ;
                case WRITE -> Held.DMA_WRITE;
                case TRIM -> Held.DMA_TRIM;
                case ATAPI -> Held.ATAPI_DMA;
            };
        }
        if (saved == Held.NONE && request.phase() == DmaBlockIo.Phase.PARKED) {
            saved = switch (request.kind()) {
                case READ -> Held.PIO_READ;
                case WRITE -> Held.PIO_WRITE;
                case FLUSH -> Held.FLUSH;
                case CD_READ -> Held.CD_READ;
            };
        }
        out.u8(unit).u8(deviceControl).bool(irq.level());
        out.u8(saved.ordinal()).u8(retryUnit & 0xff).u64(retrySector).u32(retryNsector);
        busMaster.save(out);
        drives[0].save(out);
        drives[1].save(out);
    }

    /**
     * Replaces the channel's state with a saved one, on a destination that is not running: the
     * channel is reset first, and again if the section is refused. A held request waits for
     * {@link #resume()}; the interrupt line is driven to the saved level.
     *
     * @return whether a request is held (the controller must stay paused until it resumes)
     */
    boolean load(StateReader in) throws MigrationFormatException {
        reset();
        String where = "ide." + channelIndex;
        try {
            unit = in.u8(where + ".unit");
            if (unit > 1) {
                throw in.failure(where + ".unit", "unit " + unit + " is neither 0 nor 1");
            }
            deviceControl = in.u8(where + ".deviceControl") & ~Ata.CTRL_RESET;
            boolean level = in.bool(where + ".irq");
            int heldOrdinal = in.u8(where + ".held");
            if (heldOrdinal >= Held.values().length) {
                throw in.failure(where + ".held", heldOrdinal + " names no held request");
            }
            Held loadedHeld = Held.values()[heldOrdinal];
            int loadedRetryUnit = in.u8(where + ".retryUnit");
            if (loadedRetryUnit > 1 && loadedRetryUnit != 0xff) {
                throw in.failure(where + ".retryUnit", loadedRetryUnit + " is neither a unit nor none");
            }
            retryUnit = loadedRetryUnit == 0xff ? -1 : loadedRetryUnit;
            retrySector = in.u64(where + ".retrySector");
            retryNsector = (int) in.u32InRange(where + ".retryNsector", 0, 65536);
            busMaster.load(in, where + ".bmdma");
            drives[0].load(in, where + ".unit0");
            drives[1].load(in, where + ".unit1");
            if (loadedHeld != Held.NONE && !heldDriveOk(loadedHeld)) {
                throw in.failure(where + ".held", "a held " + loadedHeld + " names no drive that could run it");
            }
            held = loadedHeld;
            irq.record(level);
            return held != Held.NONE;
        } catch (MigrationFormatException | RuntimeException e) {
            reset();
            throw e;
        }
    }

    /** A restarted request must reach a drive with a medium, as the command that started it did. */
    private boolean heldDriveOk(Held op) {
        AtaDrive s = switch (op) {
            case DMA_READ, DMA_WRITE, DMA_TRIM, ATAPI_DMA -> retryUnit >= 0 ? drives[retryUnit] : active();
            default -> active();
        };
        return switch (op) {
            case FLUSH -> s.present();
            case ATAPI_DMA, CD_READ -> s.cdrom;
            default -> s.present() && !s.cdrom;
        };
    }

    /** QEMU's ide_bus_reset (device reset of the whole function). Under the lock. */
    void reset() {
        // QEMU 7.2 resets the registers first and cancels the DMA after, letting the old
        // completion scribble on the fresh state; finishing the I/O first ends in the same state.
        // A transfer that is not moving data is dropped first, as QEMU's blk_aio_cancel drops a
        // DMA waiting for bounce space: a reset does not finish it the way clearing START does.
        dma.cancel();
        cancelDmaSync();
        dma.cancel();
        waitForRequest();
        request.cancel();
        held = Held.NONE;
        unit = 0;
        deviceControl = 0;
        drives[0].reset();
        drives[1].reset();
        clearRetry();
        busMaster.reset();
        lowerIrq();
    }
}
