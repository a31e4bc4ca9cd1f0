package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import io.guestdma.block.BlockBackend;
import io.guestdma.block.DiskGeometry;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.ReentrancyGuard;
import io.guestdma.migration.DeviceState;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Objects;
import java.util.concurrent.Executor;

/**
 * The PIIX3/PIIX4 IDE function (PCI 00:01.1, 8086:7010): two legacy ATA channels, each with a
 * master and a slave unit and a bus-master DMA engine, behaving register for register like QEMU
 * 7.2's {@code piix3-ide}.
 *
 * <p><b>Wiring it into an emulator.</b> Route the legacy port ranges ({@link #claimsPort}) to
 * {@link #ioRead}/{@link #ioWrite}, the 16-byte I/O window of BAR4 to
 * {@link #busMasterRead}/{@link #busMasterWrite}, mirror the PCI command register's bus-master bit
 * with {@link #setBusMasterEnabled}, and connect the two {@link IrqLine}s to ISA IRQ 14 and 15:
 *
 * <pre>{@code
 * PiixIde ide = new PiixIde(memory, ioExecutor, DmaMode.MAP, pic.line(14), pic.line(15));
 * ide.attach(0, 0, DriveConfig.of(FileChannelBackend.open(image, BlockOptions.defaults())));
 * portBus.map(port -> ide.claimsPort(port), ide::ioRead, ide::ioWrite);
 * }</pre>
 *
 * <p><b>Threads.</b> Register accesses may come from any number of vCPU threads; each channel is
 * guarded by its own lock (accesses to the two channels do not contend). Backend I/O runs on the
 * {@code ioExecutor} and never under a lock; its completions take the channel lock to update the
 * registers. With a direct executor ({@code Runnable::run}) every command completes inside the
 * register access that started it, like a machine with instant disks; with a thread pool, guests
 * poll BSY or wait for the interrupt, as on hardware. The executor must not be the thread that
 * accesses the registers unless it runs tasks inline.
 *
 * <p><b>Interrupts.</b> {@link IrqLine#set} is always called with no controller lock held, once per
 * change of level and in order (reading the status register lowers the line, as does writing the
 * command register; nIEN suppresses raising it). An {@code IrqLine} may therefore take the
 * emulator's own locks.
 *
 * <p><b>Errors.</b> Guest mistakes (out-of-range LBAs, short PRD tables, unknown commands) become
 * the ATA and bus-master status QEMU shows; backend failures, whatever the backend throws, follow
 * the drive's {@link ErrorPolicy}; guest memory that fails under the bus master (a PRD table or
 * data in a device whose MMIO handler fails) ends the command with ABRT and the bus-master ERROR
 * bit. Only misuse of this API throws, never a guest's register access.
 *
 * <p><b>Re-entrancy.</b> The controller has one {@link ReentrancyGuard} ({@link #reentrancyGuard()}),
 * engaged during every register access and while its DMA moves data. A register access made on a
 * thread that is already inside the controller, such as an MMIO handler reached by the
 * controller's own DMA that writes the bus-master command register, is refused (reads return all
 * ones, writes are dropped) and reported once, as QEMU 8.0 refuses re-entrant I/O. A machine that
 * maps the controller's registers as MMIO passes the same guard to its {@code MmioRegion}.
 */
public final class PiixIde implements AutoCloseable {
    private static final int[] COMMAND_BLOCK = {0x1f0, 0x170};
    private static final int[] CONTROL_PORT = {0x3f6, 0x376};

    private final IdeChannel[] channels = new IdeChannel[2];
    private final ReentrancyGuard guard = new ReentrancyGuard("piix-ide");
    /** A reset asked for from inside the controller, done when that thread leaves it. */
    private volatile boolean resetDeferred;
    private final DeviceAddressSpace busMaster;
    private volatile boolean paused;
    private volatile boolean closed;
    private volatile java.util.function.Consumer<BackendError> errorListener = error -> { };

    /**
     * Creates the controller with no drives attached and bus mastering enabled.
     *
     * @param memory guest memory the bus master reads PRD tables from and transfers data to
     * @param ioExecutor where backend I/O runs; {@code Runnable::run} completes everything
     *     synchronously inside the register access that started it
     * @param mode how DMA data moves
     * @param primaryIrq the primary channel's interrupt line (IRQ 14)
     * @param secondaryIrq the secondary channel's interrupt line (IRQ 15)
     * @throws NullPointerException if an argument is null
     */
    public PiixIde(GuestMemory memory, Executor ioExecutor, DmaMode mode, IrqLine primaryIrq,
                   IrqLine secondaryIrq) {
        this(Objects.requireNonNull(memory, "memory").deviceSpace("piix-ide"), ioExecutor, mode, primaryIrq,
                secondaryIrq);
    }

    /**
     * Creates the controller with its bus master in {@code busMaster}: a device address space the
     * machine made for the function (behind an IOMMU, say). {@link #setBusMasterEnabled} switches
     * that space on and off.
     *
     * @param busMaster the bus master's view of guest memory, enabled
     * @param ioExecutor where backend I/O runs; {@code Runnable::run} completes everything
     *     synchronously inside the register access that started it
     * @param mode how DMA data moves
     * @param primaryIrq the primary channel's interrupt line (IRQ 14)
     * @param secondaryIrq the secondary channel's interrupt line (IRQ 15)
     * @throws NullPointerException if an argument is null
     */
    public PiixIde(DeviceAddressSpace busMaster, Executor ioExecutor, DmaMode mode, IrqLine primaryIrq,
                   IrqLine secondaryIrq) {
        DeviceAddressSpace memory = Objects.requireNonNull(busMaster, "busMaster");
        this.busMaster = memory;
        Objects.requireNonNull(ioExecutor, "ioExecutor");
        Objects.requireNonNull(mode, "mode");
        Objects.requireNonNull(primaryIrq, "primaryIrq");
        Objects.requireNonNull(secondaryIrq, "secondaryIrq");
        channels[0] = new IdeChannel(0, this, memory, ioExecutor, mode, primaryIrq);
        channels[1] = new IdeChannel(1, this, memory, ioExecutor, mode, secondaryIrq);
    }

    /**
     * Attaches a drive. A hard disk's capacity is the backend's size in whole 512-byte sectors and
     * its CHS geometry is guessed from the partition table in sector 0 as QEMU does. A CD-ROM
     * drive ({@link DriveConfig.Media#CDROM}) may be empty (null backend) and may use a read-only
     * backend; its capacity is counted in 2048-byte sectors by the guest.
     *
     * @param channel 0 for primary, 1 for secondary
     * @param unit 0 for master, 1 for slave
     * @param drive the drive
     * @throws IllegalArgumentException if channel or unit is out of range, or a hard disk's
     *     backend is read-only (QEMU refuses read-only IDE disks)
     * @throws IllegalStateException if a drive is already attached there or the controller is
     *     closed
     * @throws UncheckedIOException if sector 0 of a hard disk cannot be read for the geometry guess
     * @throws NullPointerException if drive is null
     */
    public void attach(int channel, int unit, DriveConfig drive) {
        Objects.requireNonNull(drive, "drive");
        IdeChannel ch = channel(channel);
        checkUnit(unit);
        BlockBackend backend = drive.backend();
        boolean cdrom = drive.media() == DriveConfig.Media.CDROM;
        if (!cdrom && backend.isReadOnly()) {
            throw new IllegalArgumentException("a read-only backend cannot be an IDE hard disk "
                    + "(channel " + channel + ", unit " + unit + ")");
        }
        long sectors;
        DiskGeometry geometry;
        try {
            sectors = backend == null ? 0 : backend.size() / Ata.SECTOR_SIZE;
            geometry = cdrom ? null : DiskGeometry.guess(backend, sectors);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read sector 0 of the disk for channel "
                    + channel + ", unit " + unit, e);
        }
        ch.lock();
        try {
            requireOpen();
            if (ch.drive(unit).present()) {
                throw new IllegalStateException("channel " + channel + ", unit " + unit
                        + " already has a drive");
            }
            ch.attach(unit, new AtaDrive(unit, drive, sectors, geometry, ch.defaultSerial(unit)));
        } finally {
            ch.unlock();
        }
    }

    /**
     * Puts a disc into a CD-ROM drive and closes its tray, or takes the disc out (QEMU's
     * {@code change} and {@code eject} monitor commands). The guest sees the change as QEMU shows
     * it: an interrupt now, a media event for GET EVENT STATUS NOTIFICATION, then on its next
     * commands NOT READY (medium not present) once and UNIT ATTENTION (medium may have changed)
     * once. The previous medium is not closed: it belongs to the caller.
     *
     * @param channel 0 for primary, 1 for secondary
     * @param unit 0 for master, 1 for slave
     * @param medium the new disc, or null to leave the drive empty with its tray open
     * @throws IllegalArgumentException if channel or unit is out of range or no CD-ROM drive is
     *     attached there
     * @throws IllegalStateException if the controller is closed
     */
    public void changeMedium(int channel, int unit, BlockBackend medium) {
        IdeChannel ch = channel(channel);
        checkUnit(unit);
        long sectors = medium == null ? 0 : medium.size() / Ata.SECTOR_SIZE;
        ch.lock();
        try {
            requireOpen();
            AtaDrive drive = ch.drive(unit);
            if (!drive.cdrom) {
                throw new IllegalArgumentException("channel " + channel + ", unit " + unit
                        + " has no CD-ROM drive");
            }
            ch.changeMedium(drive, medium, sectors);
        } finally {
            ch.unlock();
        }
    }

    private static void checkUnit(int unit) {
        if (unit != 0 && unit != 1) {
            throw new IllegalArgumentException("unit must be 0 (master) or 1 (slave), was " + unit);
        }
    }

    /**
     * Tells whether a port belongs to this controller's legacy windows: 0x1f0-0x1f7 and 0x3f6
     * (primary), 0x170-0x177 and 0x376 (secondary).
     *
     * @param port an I/O port
     * @return whether {@link #ioRead} and {@link #ioWrite} accept it as the first port of an access
     */
    public boolean claimsPort(int port) {
        return channelOfPort(port) >= 0;
    }

    /**
     * Reads a legacy I/O port, with the semantics of QEMU's port lists: the access goes whole to
     * the register its first port names. Byte accesses read task-file registers; 16- and 32-bit
     * accesses of the data register move PIO data; a 16-bit access elsewhere reads two registers
     * (0xff for a byte past the controller's window); any other 32-bit access reads all ones
     * without touching the device (so it does not clear a pending interrupt).
     *
     * @param port a port for which {@link #claimsPort} is true
     * @param size 1, 2 or 4
     * @return the value, zero-extended
     * @throws IllegalArgumentException if the port is not claimed or the size is not 1, 2 or 4
     * @throws IllegalStateException if the controller is closed
     */
    public int ioRead(int port, int size) {
        checkSize(size);
        IdeChannel ch = portChannel(port);
        if (!guard.enter()) {
            guard.refuse(String.format("%d-byte read of port 0x%x", size, port));
            return allOnes(size);
        }
        ch.lock();
        try {
            requireOpen();
            int base = commandBlockOf(port, ch);
            if (base < 0) {
                // The control block is a one-port window that answers byte reads only.
                return switch (size) {
                    case 1 -> ch.readAltStatus();
                    case 2 -> ch.readAltStatus() | 0xff00;
                    default -> -1;
                };
            }
            int reg = port - base;
            return switch (size) {
                case 1 -> ch.readRegister(reg);
                case 2 -> reg == 0 ? ch.readData(2)
                        : ch.readRegister(reg) | (reg + 1 < 8 ? ch.readRegister(reg + 1) : 0xff) << 8;
                default -> reg == 0 ? ch.readData(4) : -1;
            };
        } finally {
            ch.unlock();
            leave();
        }
    }

    /**
     * Writes a legacy I/O port; the counterpart of {@link #ioRead}. A 16-bit write away from the
     * data register writes two registers (the byte past the window is dropped); a 32-bit write
     * away from the data register is dropped whole, as in QEMU.
     *
     * @param port a port for which {@link #claimsPort} is true
     * @param size 1, 2 or 4
     * @param value the value; only the low {@code size} bytes count
     * @throws IllegalArgumentException if the port is not claimed or the size is not 1, 2 or 4
     * @throws IllegalStateException if the controller is closed
     */
    public void ioWrite(int port, int size, int value) {
        checkSize(size);
        IdeChannel ch = portChannel(port);
        if (!guard.enter()) {
            guard.refuse(String.format("%d-byte write of 0x%x to port 0x%x", size, value, port));
            return;
        }
        ch.lock();
        try {
            requireOpen();
            int base = commandBlockOf(port, ch);
            if (base < 0) {
                if (size <= 2) {
                    ch.writeDeviceControl(value & 0xff);
                }
                return;
            }
            int reg = port - base;
            switch (size) {
                case 1 -> ch.writeRegister(reg, value & 0xff);
                case 2 -> {
                    if (reg == 0) {
                        ch.writeData(2, value & 0xffff);
                    } else {
                        ch.writeRegister(reg, value & 0xff);
                        if (reg + 1 < 8) {
                            ch.writeRegister(reg + 1, (value >>> 8) & 0xff);
                        }
                    }
                }
                default -> {
                    if (reg == 0) {
                        ch.writeData(4, value);
                    }
                }
            }
        } finally {
            ch.unlock();
            leave();
        }
    }

    /**
     * Reads the bus-master window (BAR4): bytes 0-7 belong to the primary channel, 8-15 to the
     * secondary; in each, byte 0 is the command register, byte 2 the status register, bytes 4-7 the
     * PRD table address. The command and status registers answer byte accesses only (wider ones
     * read all ones); bytes 1 and 3 read 0xff.
     *
     * @param offset 0..15 within the window
     * @param size 1, 2 or 4
     * @return the value
     * @throws IllegalArgumentException if offset is outside 0..15 or size is not 1, 2 or 4
     * @throws IllegalStateException if the controller is closed
     */
    public int busMasterRead(int offset, int size) {
        checkSize(size);
        checkBusMasterOffset(offset);
        if (!guard.enter()) {
            guard.refuse(String.format("%d-byte read of bus-master offset %d", size, offset));
            return allOnes(size);
        }
        int last = Math.min(15, offset + size - 1) / 8;
        lockBusMasterChannels(offset / 8, last);
        try {
            requireOpen();
            int result = 0;
            int done = 0;
            while (done < size) {
                int at = offset + done;
                int length;
                int value;
                if (at >= 16) {
                    length = 1;
                    value = 0xff;
                } else {
                    IdeChannel ch = channels[at / 8];
                    int within = at % 4;
                    length = busMasterPieceLength(size - done, within);
                    if (at % 8 < 4) {
                        value = length == 1 ? ch.readBusMasterByte(within)
                                : (int) ((1L << (8 * length)) - 1);
                    } else {
                        value = ch.readBusMasterAddress(within, length);
                    }
                }
                result |= value << (8 * done);
                done += length;
            }
            return result;
        } finally {
            unlockBusMasterChannels(offset / 8, last);
            leave();
        }
    }

    /**
     * Writes the bus-master window (BAR4); see {@link #busMasterRead} for the layout. Writing the
     * command register starts (bit 0 rising) or stops (bit 0 falling) the engine; status bits 1
     * and 2 are write-1-to-clear, bits 5 and 6 are stored; the PRD address drops its low two bits.
     * Stopping the engine while a transfer runs (or waits for bounce space) waits for that transfer
     * to finish, as QEMU does.
     *
     * @param offset 0..15 within the window
     * @param size 1, 2 or 4
     * @param value the value
     * @throws IllegalArgumentException if offset is outside 0..15 or size is not 1, 2 or 4
     * @throws IllegalStateException if the controller is closed
     */
    public void busMasterWrite(int offset, int size, int value) {
        checkSize(size);
        checkBusMasterOffset(offset);
        if (!guard.enter()) {
            guard.refuse(String.format("%d-byte write of 0x%x to bus-master offset %d", size, value, offset));
            return;
        }
        int last = Math.min(15, offset + size - 1) / 8;
        lockBusMasterChannels(offset / 8, last);
        try {
            requireOpen();
            int done = 0;
            while (done < size) {
                int at = offset + done;
                int piece = value >>> (8 * done);
                int length;
                if (at >= 16) {
                    length = 1;
                } else {
                    IdeChannel ch = channels[at / 8];
                    int within = at % 4;
                    length = busMasterPieceLength(size - done, within);
                    if (at % 8 < 4) {
                        if (length == 1) {
                            ch.writeBusMasterByte(within, piece);
                        }
                    } else {
                        ch.writeBusMasterAddress(within, length, piece);
                    }
                }
                done += length;
            }
        } finally {
            unlockBusMasterChannels(offset / 8, last);
            leave();
        }
    }

    /** An unaligned access may straddle both channels' registers; locks go primary first. */
    private void lockBusMasterChannels(int first, int last) {
        for (int c = first; c <= last; c++) {
            channels[c].lock();
        }
    }

    private void unlockBusMasterChannels(int first, int last) {
        for (int c = last; c >= first; c--) {
            channels[c].unlock();
        }
    }

    /**
     * Mirrors the PCI command register's bus-master bit (bit 2). While it is clear, every memory
     * access of the bus master fails as in QEMU: PRD entries and data read as zeros, data written
     * to memory is dropped, and the transfer itself still completes. A standalone controller starts
     * with it set; a machine modelling PCI configuration space clears it on reset.
     *
     * @param enabled whether the function may master the bus
     */
    public void setBusMasterEnabled(boolean enabled) {
        busMaster.setEnabled(enabled);
    }

    /**
     * Pauses the controller, as stopping the VM does: data already moving finishes its current
     * chunk, then nothing more moves until {@link #resume()}. Registers stay accessible.
     *
     * @throws IllegalStateException if the controller is closed
     */
    public void pause() {
        requireOpen();
        paused = true;
        for (IdeChannel ch : channels) {
            ch.lock();
            try {
                ch.quiesce();
            } finally {
                ch.unlock();
            }
        }
    }

    /**
     * Resumes the controller: parked transfers continue, and a request held by
     * {@link ErrorPolicy#STOP} is retried from its start (for DMA: from the first PRD entry and
     * the command's first sector), so nothing is lost. Does nothing if not paused.
     *
     * @throws IllegalStateException if the controller is closed
     */
    public void resume() {
        requireOpen();
        paused = false;
        for (IdeChannel ch : channels) {
            ch.lock();
            try {
                ch.resume();
            } finally {
                ch.unlock();
            }
        }
    }

    /**
     * Tells whether the controller is paused, by {@link #pause()} or by a backend error under
     * {@link ErrorPolicy#STOP}.
     *
     * @return whether it is paused
     */
    public boolean isPaused() {
        return paused;
    }

    /**
     * Waits until every change of the two interrupt lines the controller has made so far has
     * reached the {@link IrqLine}s it was built with. The controller hands a change to its line
     * after releasing the channel's lock, and when another thread is already handing changes over,
     * a register access returns before its own change has been handed over. An observer that
     * reports the lines next to the accesses that moved them (qtest, which promises an access's
     * {@code IRQ raise}/{@code lower} before the access's reply) calls this before it answers.
     *
     * <p>Call it holding no lock that an {@code IrqLine} may take: it may wait for a thread that
     * is inside {@link IrqLine#set}.
     *
     * @throws InterruptedException if interrupted while waiting (the changes are still delivered,
     *     by the thread delivering them)
     */
    public void awaitInterruptsDelivered() throws InterruptedException {
        for (IdeChannel channel : channels) {
            channel.awaitInterruptDelivered();
        }
    }

    /**
     * Resets the controller as a machine reset does (QEMU's piix_ide_reset): running transfers
     * finish first, then both channels, all units and both bus masters return to power-on state,
     * held requests are dropped and the interrupt lines are lowered. The bus-master enable and the
     * pause state are not touched.
     *
     * <p>Called from inside the controller (an MMIO handler reached by the controller's own DMA
     * that resets the machine), the reset is deferred until that thread leaves the controller, as
     * QEMU queues a reset request for its main loop: resetting under the running transfer would let
     * its completion continue the old command on the fresh registers.
     *
     * @throws IllegalStateException if the controller is closed
     */
    public void reset() {
        requireOpen();
        if (guard.isEngaged()) {
            resetDeferred = true;
            return;
        }
        for (IdeChannel ch : channels) {
            ch.lock();
            try {
                ch.reset();
            } finally {
                ch.unlock();
            }
        }
    }

    /**
     * The controller's migration section, {@code "piix-ide"}: for each channel the selected unit,
     * device control, interrupt level, the request held for a retry (QEMU's error_status and
     * retry_unit/sector/nsector), the bus master's registers and PRD position, and for each unit
     * its task file, PIO buffer and transfer position, IDENTIFY block, SMART log and ATAPI state
     * (sense, unit attention, tray, media events).
     *
     * <p>{@link DeviceState#save} requires the controller to be {@linkplain #pause() paused} with no
     * I/O running; a transfer the pause parked is saved as a request to restart. After
     * {@link DeviceState#load}, a restored held request keeps the controller paused; the
     * destination's {@link #resume()} restarts it from its first sector and PRD, as QEMU's
     * ide_restart_bh does when the migrated VM starts. Load checks that the destination's drives
     * match the source's (present, kind, medium size) and that every index and counter is one the
     * device could have reached; a refused section leaves the controller reset.
     *
     * @return the section, the same object for the controller's life
     */
    public DeviceState migrationState() {
        return state;
    }

    private final DeviceState state = new DeviceState() {
        @Override
        public String sectionId() {
            return "piix-ide";
        }

        @Override
        public int version() {
            return 1;
        }

        @Override
        public void save(StateWriter out) {
            requireOpen();
            if (!paused) {
                throw new IllegalStateException("the IDE controller must be paused before its state is saved");
            }
            for (IdeChannel ch : channels) {
                ch.lock();
                try {
                    ch.save(out);
                } finally {
                    ch.unlock();
                }
            }
        }

        @Override
        public void load(StateReader in, int version) throws MigrationFormatException {
            requireOpen();
            if (version != 1) {
                throw new MigrationFormatException("section piix-ide: unknown version " + version + " (this build reads 1)");
            }
            boolean held = false;
            for (int c = 0; c < channels.length; c++) {
                IdeChannel ch = channels[c];
                ch.lock();
                try {
                    held |= ch.load(in);
                } catch (MigrationFormatException | RuntimeException e) {
                    for (int done = 0; done < c; done++) {
                        channels[done].lock();
                        try {
                            channels[done].reset();
                        } finally {
                            channels[done].unlock();
                        }
                    }
                    throw e;
                } finally {
                    ch.unlock();
                }
            }
            if (held) {
                paused = true;
            }
        }
    };

    /**
     * Stops the controller: waits for running I/O, drops waiting transfers and makes every later
     * register access throw. The backends stay open (their owner closes them). Idempotent.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        for (IdeChannel ch : channels) {
            ch.lock();
            try {
                ch.reset();
            } finally {
                ch.unlock();
            }
        }
        closed = true;
    }

    /**
     * The controller's re-entrancy guard: give it to an {@code MmioRegion} that maps the
     * controller's registers, so that DMA landing on them is refused too; its
     * {@link ReentrancyGuard#refusals()} counts refused accesses.
     *
     * @return the guard, the same object for the controller's life
     */
    public ReentrancyGuard reentrancyGuard() {
        return guard;
    }

    // ------------------------------------------------------------------ for the channels

    /** Leaves the controller's guard, then performs a reset requested from inside. */
    void leave() {
        guard.exit();
        if (resetDeferred && !closed) {
            resetDeferred = false;
            reset();
        }
    }

    /**
     * The bus master's view of guest memory: its enable switch is {@link #setBusMasterEnabled}.
     *
     * @return the device address space the controller's DMA goes through
     */
    public DeviceAddressSpace busMasterSpace() {
        return busMaster;
    }

    /**
     * Sets who hears about backend failures, after the drive's policy has been applied (QEMU's
     * {@code BLOCK_IO_ERROR} event): with {@link ErrorPolicy#STOP} the controller is already
     * paused when the listener runs. The listener runs on the thread that completed the request,
     * with no controller lock held, once per failure and in order per channel; it may call
     * {@link #resume()}.
     *
     * @param listener the listener, replacing any earlier one
     * @throws NullPointerException if listener is null
     */
    public void onBackendError(java.util.function.Consumer<BackendError> listener) {
        errorListener = Objects.requireNonNull(listener, "listener");
    }

    /** Passes a channel's error report on, outside its lock. */
    void reportBackendError(BackendError error) {
        errorListener.accept(error);
    }

    /** A backend error under the STOP policy stops the whole controller, as it stops QEMU's VM. */
    void stopForError() {
        paused = true;
    }

    // ------------------------------------------------------------------ port decoding

    /** As QEMU's memory_access_size for ops without unaligned support, within a 4-byte region. */
    private static int busMasterPieceLength(int wanted, int within) {
        int length = Integer.highestOneBit(Math.min(wanted, 4 - within));
        if (within != 0) {
            length = Math.min(length, within & -within);
        }
        return length;
    }

    private int commandBlockOf(int port, IdeChannel ch) {
        int base = COMMAND_BLOCK[ch == channels[0] ? 0 : 1];
        return port >= base && port < base + 8 ? base : -1;
    }

    private int controlPortOf(IdeChannel ch) {
        return CONTROL_PORT[ch == channels[0] ? 0 : 1];
    }

    private static int channelOfPort(int port) {
        for (int c = 0; c < 2; c++) {
            if ((port >= COMMAND_BLOCK[c] && port < COMMAND_BLOCK[c] + 8) || port == CONTROL_PORT[c]) {
                return c;
            }
        }
        return -1;
    }

    private IdeChannel portChannel(int port) {
        int c = channelOfPort(port);
        if (c < 0) {
            throw new IllegalArgumentException(String.format(
                    "port 0x%x is not an IDE port (0x1f0-0x1f7, 0x3f6, 0x170-0x177, 0x376)", port));
        }
        return channels[c];
    }

    private IdeChannel channel(int channel) {
        if (channel != 0 && channel != 1) {
            throw new IllegalArgumentException("channel must be 0 (primary) or 1 (secondary), was "
                    + channel);
        }
        return channels[channel];
    }

    private static int allOnes(int size) {
        return size == 4 ? -1 : (1 << (8 * size)) - 1;
    }

    private static void checkSize(int size) {
        if (size != 1 && size != 2 && size != 4) {
            throw new IllegalArgumentException("access size must be 1, 2 or 4 bytes, was " + size);
        }
    }

    private static void checkBusMasterOffset(int offset) {
        if (offset < 0 || offset > 15) {
            throw new IllegalArgumentException("bus-master window offset must be 0..15, was " + offset);
        }
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("the IDE controller is closed");
        }
    }
}
