package io.guestdma.machine;

import io.guestdma.block.BlkdebugBackend;
import io.guestdma.block.BlkdebugConfig;
import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.block.ForwardingBackend;
import io.guestdma.block.LocalImage;
import io.guestdma.block.NativeBackend;
import io.guestdma.block.NbdAddress;
import io.guestdma.block.NbdBackend;
import io.guestdma.block.ErrorPolicy;
import io.guestdma.ide.IrqLine;
import io.guestdma.ide.PiixIde;
import io.guestdma.memory.GuestMemory;
import io.guestdma.migration.DeviceState;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A minimal PC, just enough to run QEMU's IDE tests: RAM from address 0, the I/O port space, PCI
 * configuration mechanism #1, an i440FX host bridge (00:00.0), the PIIX3 ISA bridge's identity
 * and reset control register (00:01.0, port 0xcf9), the PIIX3 IDE function (00:01.1) with up
 * to four drives, QEMU's fw_cfg device (ports 0x510-0x51b: signature, RAM size, e820 map) and
 * whatever {@code -device}s add. Guest addresses outside RAM are unassigned: they read as zero and drop
 * writes; unassigned ports read as all ones.
 *
 * <p>It is also the example of wiring {@link GuestMemory} and {@link PiixIde} into an emulator.
 * The IDE legacy ports (0x1f0-0x1f7, 0x3f6, 0x170-0x177, 0x376) are always decoded, as on
 * QEMU's PIIX; the bus-master window appears where the guest puts BAR4, only while the command
 * register enables I/O space; the command register's bus-master bit gates DMA. I/O completes
 * inside the port access that starts it, so every interrupt is raised before that access returns.
 *
 * <p>Thread-safe as far as its parts are; a qtest server drives it from one thread.
 */
public final class PcMachine implements AutoCloseable {
    /** The primary IDE channel's ISA interrupt. */
    public static final int IDE_PRIMARY_IRQ = 14;
    /** The secondary IDE channel's ISA interrupt. */
    public static final int IDE_SECONDARY_IRQ = 15;
    private static final int BUS_MASTER_BAR = 4;

    private final GuestMemory memory;
    private final PortBus ports = new PortBus();
    private final PciHost pci = new PciHost();
    private final List<PciFunction> functions = new ArrayList<>();
    private final PciFunction ideFunction;
    private final PirqRouter pirq;
    private final PiixIde ide;
    private final List<BlockBackend> backends = new ArrayList<>();
    private final List<AutoCloseable> closeLater = new ArrayList<>();
    private final List<io.guestdma.net.NetBackend> netBackends = new ArrayList<>();
    private final List<Runnable> resetActions = new ArrayList<>();
    private final List<Runnable> resumeActions = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final List<Runnable> pauseActions = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final boolean[] irqLevels = new boolean[16];
    private volatile IrqListener irqListener = (line, level) -> { };
    private volatile java.util.function.Consumer<MachineEvent> eventListener = event -> { };
    /** Run state as QMP's query-status names it (see runState()). Guarded by runLock. */
    private String runState = "running";
    private final Object runLock = new Object();
    private final MachineMigration migration = new MachineMigration(this);
    /** Whether the machine runs once an incoming migration is loaded (QMP stop/cont while inmigrate). Guarded by runLock. */
    private boolean autostart = true;
    /** The drive attached at each IDE place (channel * 2 + unit), for error events. */
    private final BlockNode[] ideDrives = new BlockNode[4];
    private final Map<String, BlkdebugBackend> debugDrives = new java.util.LinkedHashMap<>();
    private final java.util.Set<String> driveNames = new java.util.HashSet<>();
    private final HandOffExecutor handOff;
    private final VirtualClock clock = new VirtualClock();
    private PortBus.Mapping busMasterWindow;
    private long busMasterBase = -1;
    private int resetControl;
    /** State sections in the order a destination loads them, added while the machine is built. */
    private final List<DeviceState> stateSections = new ArrayList<>();

    /**
     * Builds the machine, opens its drives and creates its devices: first the {@code if=ide}
     * drives at their indexes, then the {@code -device}s in order.
     *
     * @param config RAM size, drives and devices
     * @throws IOException if an image cannot be opened
     * @throws IllegalArgumentException if a device cannot be created: an unknown driver or
     *     property, a missing drive or one already in use, a bad or taken place on the bus (the
     *     message is QEMU's, after the {@code -device} argument)
     * @throws NullPointerException if config is null
     */
    public PcMachine(MachineConfig config) throws IOException {
        Objects.requireNonNull(config, "config");
        memory = GuestMemory.ofRam(config.ramBytes());
        // A request held at a blkdebug breakpoint must not hold the vCPU: such drives get I/O threads.
        boolean breakpoints = config.drives().stream().anyMatch(d -> d.blkdebug() != null);
        handOff = breakpoints ? new HandOffExecutor() : null;
        try {
            ide = new PiixIde(memory, breakpoints ? handOff : Runnable::run, config.dmaMode(),
                    level -> irq(IDE_PRIMARY_IRQ, level), level -> irq(IDE_SECONDARY_IRQ, level));
        } catch (RuntimeException e) {
            memory.close();
            throw e;
        }
        ide.onBackendError(this::backendFailed);

        // PCI: IDs and power-on values as QEMU 7.2's pc machine shows them.
        PciFunction hostBridge = PciFunction.builder(0x8086, 0x1237)
                .classCode(0x060000).revision(0x02).build();
        PciFunction isaBridge = PciFunction.builder(0x8086, 0x7000)
                .classCode(0x060100).headerType(0x80).status(0x0200)
                .initialByte(PirqRouter.PIRQ_ROUTE, 0x80).initialByte(PirqRouter.PIRQ_ROUTE + 1, 0x80)
                .initialByte(PirqRouter.PIRQ_ROUTE + 2, 0x80).initialByte(PirqRouter.PIRQ_ROUTE + 3, 0x80)
                .build();
        pirq = new PirqRouter(isaBridge, this);
        isaBridge.onConfigWrite(pirq::configWritten);
        ideFunction = PciFunction.builder(0x8086, 0x7010)
                .classCode(0x010180).status(0x0280).ioBar(BUS_MASTER_BAR, 16).build();
        pci.attach(0, 0, hostBridge);
        pci.attach(1, 0, isaBridge);
        pci.attach(1, 1, ideFunction);
        functions.addAll(List.of(hostBridge, isaBridge, ideFunction));
        ideFunction.onConfigWrite(this::decodeIde);

        // Ports. The reset control register sits on the latch's second byte, above it (QEMU too).
        ports.map(PciHost.ADDRESS_PORT, 4, pci.addressPort());
        ports.map(0xcf9, 1, new ResetControl());
        ports.map(PciHost.DATA_PORT, 4, pci.dataPort());
        for (int port : new int[] {0x1f0, 0x170}) {
            ports.map(port, 8, legacyIde(port));
        }
        for (int port : new int[] {0x3f6, 0x376}) {
            ports.map(port, 1, legacyIde(port));
        }
        FwCfg fwCfg = new FwCfg(config.ramBytes(), memory.deviceSpace("fw_cfg"));
        ports.map(FwCfg.IO_PORT, 2, fwCfg.io);
        ports.map(FwCfg.DMA_PORT, 8, fwCfg.dmaPort);
        decodeIde();
        // the machine's own section first: PCI decoding is in place before devices load
        addState(new MachineState(this, fwCfg));
        addState(ide.migrationState());

        try {
            DeviceContext context = new DeviceContext(this);
            // QEMU's names for the functions the machine itself has, for "in use by" messages
            context.claimSlot("pci.0", "00.0", "i440FX,id=(null)");
            context.claimSlot("pci.0", "01.0", "PIIX3,id=(null)");
            context.claimSlot("pci.0", "01.1", "piix3-ide,id=(null)");
            openDrives(config, context);
            openNetdevs(config, context);
            for (DriveSpec drive : config.drives()) {
                if (!drive.ifNone()) {
                    context.connectAutomatically(drive.id());
                    IdeDeviceType type = drive.cdrom() ? IdeDeviceType.CDROM : IdeDeviceType.DISK;
                    attachAutomatically(type, drive, config, context);
                }
            }
            for (DeviceSpec device : config.devices()) {
                String where = "-device " + device.text();
                DeviceType type = DeviceTypes.find(device.driver()).orElseThrow(() -> new IllegalArgumentException(
                        where + ": '" + device.driver() + "' is not a valid device model name"));
                realize(type, device.properties(), where, config, context);
            }
            // last: checks the interrupt levels the device sections drove as they loaded
            addState(new InterruptLevels(this));
        } catch (IOException | RuntimeException e) {
            closeQuietly(e);
            throw e;
        }
    }

    /** An {@code if=ide} drive: QEMU creates its ide-hd or ide-cd at the drive's index. */
    private static void attachAutomatically(IdeDeviceType type, DriveSpec drive, MachineConfig config,
                                            DeviceContext context) throws IOException {
        context.claimSlot("ide." + drive.channel(), Integer.toString(drive.unit()));
        Map<String, String> properties = new java.util.HashMap<>(globalsOf(type, config));
        properties.put("bus", "ide." + drive.channel());
        properties.put("unit", Integer.toString(drive.unit()));
        BlockNode node = context.drive(drive.id());
        type.attach(new DeviceProperties(type.name(), properties), context, drive.channel(), drive.unit(), node);
    }

    /** Opens every network backend (listening, connecting), as QEMU does whether a NIC uses it or not. */
    private void openNetdevs(MachineConfig config, DeviceContext context) throws IOException {
        for (io.guestdma.net.NetdevSpec spec : config.netdevs()) {
            io.guestdma.net.NetBackend backend;
            try {
                backend = spec.open(new io.guestdma.net.RxQueue(), io.guestdma.net.StreamNetBackend.DEFAULT_TX_TIMEOUT);
            } catch (IOException e) {
                throw new IOException("-netdev " + spec.id() + ": " + e.getMessage(), e);
            }
            netBackends.add(backend);
            context.addNetdev(spec.id(), backend);
        }
    }

    /** Opens every drive and node, as QEMU does whether a device uses it or not. */
    private void openDrives(MachineConfig config, DeviceContext context) throws IOException {
        for (DriveSpec drive : config.drives()) {
            BlockBackend backend = drive.image() == null ? null : open(drive, debugDrives);
            if (backend != null) {
                backends.add(backend);
            }
            context.addDrive(new BlockNode(drive.id(), backend, drive.readPolicy(), drive.writePolicy(),
                    drive.cdrom(), false));
            driveNames.add(drive.id());
        }
        Map<String, BlockBackend> files = new java.util.HashMap<>();
        for (BlockdevSpec node : config.blockdevs()) {
            BlockBackend backend;
            if (node.filename() != null) {
                backend = new IgnoredDiscards(openFile(node.filename(), node.readOnly()));
                backends.add(backend);
                files.put(node.nodeName(), backend);
            } else {
                // the raw format over a file node moves the same bytes: the same backend
                backend = files.get(node.file());
            }
            // QEMU's defaults for a -blockdev under a device: rerror=report, werror=enospc
            context.addDrive(new BlockNode(node.nodeName(), backend, ErrorPolicy.REPORT, ErrorPolicy.ENOSPC, false,
                    true));
            driveNames.add(node.nodeName());
        }
    }

    private static BlockBackend openFile(java.nio.file.Path file, boolean readOnly) throws IOException {
        try {
            return FileChannelBackend.open(file, BlockOptions.defaults().withReadOnly(readOnly));
        } catch (java.nio.file.NoSuchFileException e) {
            throw new IOException("Could not open '" + file + "': No such file or directory", e);
        } catch (java.nio.file.AccessDeniedException e) {
            throw new IOException("Could not open '" + file + "': Permission denied", e);
        } catch (IOException e) {
            throw new IOException("Could not open '" + file + "': " + e.getMessage(), e);
        }
    }

    private static Map<String, String> globalsOf(DeviceType type, MachineConfig config) {
        Map<String, String> values = new java.util.HashMap<>();
        String prefix = type.name() + ".";
        config.globals().forEach((key, value) -> {
            if (key.startsWith(prefix)) {
                values.put(key.substring(prefix.length()), value);
            }
        });
        return values;
    }

    /**
     * Creates one {@code -device}: its properties checked against the driver's, the
     * {@code -global} defaults under them, errors prefixed with the option as QEMU does.
     */
    private static void realize(DeviceType type, Map<String, String> given, String where, MachineConfig config,
                                DeviceContext context) throws IOException {
        Map<String, String> values = globalsOf(type, config);
        for (Map.Entry<String, String> e : given.entrySet()) {
            if (!e.getKey().equals("id") && !type.properties().contains(e.getKey())) {
                throw new IllegalArgumentException(where + ": Property '" + type.name() + "." + e.getKey()
                        + "' not found");
            }
            values.put(e.getKey(), e.getValue());
        }
        try {
            type.realize(new DeviceProperties(type.name(), values), context);
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
        }
    }

    private static BlockBackend open(DriveSpec drive, Map<String, BlkdebugBackend> debugDrives) throws IOException {
        // QEMU opens a CD-ROM's image read-only.
        BlockOptions options = BlockOptions.defaults().withReadOnly(drive.cdrom());
        BlkdebugConfig rules = null;
        if (drive.blkdebug() != null && drive.blkdebug().config() != null) {
            try {
                rules = BlkdebugConfig.read(drive.blkdebug().config());
            } catch (IOException e) {
                throw new IOException("Could not read blkdebug config file " + drive.blkdebug().config() + ": "
                        + e.getMessage(), e);
            }
        }
        BlockBackend backend = switch (drive.image()) {
            case NbdAddress remote -> NbdBackend.open(remote, options);
            case LocalImage local -> drive.backend() == BackendType.NATIVE
                    ? NativeBackend.open(local.path(), options)
                    : FileChannelBackend.open(local.path(), options);
        };
        if (drive.blkdebug() != null) {
            BlkdebugBackend debug = new BlkdebugBackend(backend, rules != null ? rules : new BlkdebugConfig(List.of()));
            debug.onHold(HandOffExecutor::holding);
            debugDrives.put(drive.id(), debug);
            backend = debug;
        }
        return drive.discard() ? backend : new IgnoredDiscards(backend);
    }

    /**
     * QEMU's default {@code discard=ignore}: TRIM ranges are checked by the drive as usual, but
     * the image keeps its data.
     */
    private static final class IgnoredDiscards extends ForwardingBackend {
        IgnoredDiscards(BlockBackend image) {
            super(image);
        }

        @Override
        public void discard(long offset, long length) {
            // ignored, as QEMU ignores discards unless -drive discard=unmap
        }
    }

    /** The IDE's legacy ports: QEMU's port lists take unaligned and wide accesses whole. */
    private PortHandler legacyIde(int base) {
        return new PortHandler() {
            @Override
            public int read(int offset, int size) {
                return ide.ioRead(base + offset, size);
            }

            @Override
            public void write(int offset, int size, int value) {
                ide.ioWrite(base + offset, size, value);
            }

            @Override
            public boolean acceptsUnaligned() {
                return true;
            }
        };
    }

    /** The bus-master window, wherever BAR4 puts it. */
    private final PortHandler busMaster = new PortHandler() {
        @Override
        public int read(int offset, int size) {
            return ide.busMasterRead(offset, size);
        }

        @Override
        public void write(int offset, int size, int value) {
            ide.busMasterWrite(offset, size, value);
        }
    };

    /** After every configuration write to 00:01.1: mirror the bus-master bit, move BAR4's window. */
    private synchronized void decodeIde() {
        ide.setBusMasterEnabled((ideFunction.command() & PciFunction.COMMAND_MASTER) != 0);
        long base = ideFunction.ioBarBase(BUS_MASTER_BAR);
        if (base == busMasterBase) {
            return;
        }
        if (busMasterWindow != null) {
            busMasterWindow.unmap();
            busMasterWindow = null;
        }
        if (base >= 0 && base < PortBus.PORTS) {
            busMasterWindow = ports.map((int) base, ideFunction.ioBarSize(BUS_MASTER_BAR), busMaster);
        }
        busMasterBase = base;
    }

    /**
     * The PIIX3 reset control register (port 0xcf9): bit 1 is stored, writing bit 2 resets the
     * machine. It answers every byte of a wide access with itself, as QEMU's 1-byte register does.
     */
    private final class ResetControl implements PortHandler {
        @Override
        public int read(int offset, int size) {
            return resetControl * 0x01010101;
        }

        @Override
        public void write(int offset, int size, int value) {
            boolean reset = false;
            for (int i = 0; i < size; i++) {
                int b = value >>> (8 * i);
                if ((b & 0x04) != 0) {
                    reset = true;
                } else {
                    resetControl = b & 0x02;
                }
            }
            if (reset) {
                reset();
            }
        }
    }

    /** {@return the reset control register's stored bit (bit 1)} */
    int resetControl() {
        return resetControl;
    }

    /** Restores the reset control register's stored bit, as a migration does. */
    void resetControl(int value) {
        resetControl = value & 0x02;
    }

    /** Drives an ISA interrupt line; listeners hear changes only. */
    void irq(int line, boolean level) {
        synchronized (irqLevels) {
            if (irqLevels[line] != level) {
                irqLevels[line] = level;
                irqListener.irqChanged(line, level);
            }
        }
    }

    /** Adds a section to the machine's migration state, after those added before it. */
    void addState(DeviceState section) {
        for (DeviceState existing : stateSections) {
            if (existing.sectionId().equals(section.sectionId())) {
                throw new IllegalStateException("two state sections named " + section.sectionId());
            }
        }
        stateSections.add(section);
    }

    /**
     * The machine's state as migration sections, in the order a destination loads them: the
     * machine's own ({@code "pc"}: PCI configuration, interrupt routing, clock) first, then each
     * device in the order it was wired ({@code "piix-ide"}, {@code "virtio-blk@SS.F"}, ...), and
     * last {@code "pc-irq"}, which checks that the interrupt levels the devices drove as they
     * loaded are the source's. A destination built from the same configuration has the same list.
     *
     * @return an unmodifiable snapshot of the list
     */
    public List<DeviceState> deviceStates() {
        return List.copyOf(stateSections);
    }

    /** {@return the machine's live migration: outgoing (QMP migrate) and incoming (-incoming)} */
    public MachineMigration migration() {
        return migration;
    }

    /** {@return the guest's physical address space} */
    public GuestMemory memory() {
        return memory;
    }

    /** {@return the I/O port space; {@code in}/{@code out} instructions go here} */
    public PortBus ports() {
        return ports;
    }

    /** {@return the virtual clock that qtest's clock_step and clock_set move and device timers use} */
    public VirtualClock clock() {
        return clock;
    }

    /** {@return the IDE controller} */
    public PiixIde ide() {
        return ide;
    }

    /** {@return the PCI host (configuration mechanism #1)} */
    public PciHost pci() {
        return pci;
    }

    /**
     * Sets who hears interrupt line changes (replacing any earlier listener).
     *
     * @param listener the listener
     * @throws NullPointerException if listener is null
     */
    public void irqListener(IrqListener listener) {
        irqListener = Objects.requireNonNull(listener, "listener");
    }

    /**
     * {@return the line's current level}
     *
     * @param line an ISA IRQ number, 0 to 15
     * @throws IllegalArgumentException if line is outside 0..15
     */
    public boolean irqLevel(int line) {
        if (line < 0 || line >= irqLevels.length) {
            throw new IllegalArgumentException("IRQ line must be 0..15, was " + line);
        }
        synchronized (irqLevels) {
            return irqLevels[line];
        }
    }

    /**
     * Resets the machine as the reset control register does: PCI configuration back to power-on
     * values (BAR4 unassigned, I/O and bus mastering off), the IDE controller reset. RAM and the
     * disks are untouched.
     */
    public synchronized void reset() {
        for (PciFunction f : functions) {
            f.reset();
        }
        resetControl = 0;
        ide.reset();
        decodeIde();
        pirq.reset();
        for (Runnable action : resetActions) {
            action.run();
        }
    }

    // ------------------------------------------------------------------ run state and events

    /**
     * Sets who hears the machine's events (replacing any earlier listener): stops, resumes and
     * drive I/O errors, on the thread that caused them, in order.
     *
     * @param listener the listener
     * @throws NullPointerException if listener is null
     */
    public void eventListener(java.util.function.Consumer<MachineEvent> listener) {
        eventListener = Objects.requireNonNull(listener, "listener");
    }

    /**
     * Stops the machine (QMP {@code stop}): the IDE controller and the virtio devices pause, data
     * in flight finishes its chunk or request and nothing more moves. A {@link MachineEvent.Stopped} event follows unless the
     * machine was stopped already. While it waits for an incoming migration it stays waiting, and
     * stays paused once the stream is loaded (QEMU's autostart off).
     *
     * @throws IllegalStateException if the machine is closed
     */
    public void stop() {
        synchronized (runLock) {
            if (runState.equals("inmigrate")) {
                autostart = false; // QEMU: the machine stays paused once the incoming stream is loaded
                return;
            }
            if (!runState.equals("running")) {
                return;
            }
            pauseDevices();
            runState = "paused";
            eventListener.accept(new MachineEvent.Stopped());
        }
    }

    /**
     * Lets a stopped machine run again (QMP {@code cont}): a {@link MachineEvent.Resumed} event,
     * then the IDE controller and the virtio-blk devices resume and retry the requests that an I/O
     * error under a stop policy held. Does nothing if the machine runs or a migration's switchover
     * is under way; while it waits for an incoming migration, it makes it run once the stream is
     * loaded.
     *
     * @throws IllegalStateException if the machine is closed
     */
    public void cont() {
        synchronized (runLock) {
            if (runState.equals("inmigrate")) {
                autostart = true; // QEMU: run once the incoming stream is loaded, not before
                return;
            }
            if (runState.equals("running") || runState.equals("finish-migrate")) {
                return; // a switchover in progress ends by itself (postmigrate, or running again)
            }
            runState = "running";
            eventListener.accept(new MachineEvent.Resumed());
        }
        ide.resume();
        for (Runnable action : resumeActions) {
            action.run();
        }
    }

    /**
     * Stops the machine for a migration's switchover: run state {@code finish-migrate}, the IDE
     * controller paused, a {@link MachineEvent.Stopped} event if it was running.
     *
     * @return whether it was running, for {@link #migrationEnded}
     */
    boolean stopForMigration() {
        synchronized (runLock) {
            boolean wasRunning = runState.equals("running");
            pauseDevices();
            runState = "finish-migrate";
            if (wasRunning) {
                eventListener.accept(new MachineEvent.Stopped());
            }
            return wasRunning;
        }
    }

    /**
     * Ends a switchover: after a completed migration the machine stays stopped in
     * {@code postmigrate} (the destination runs it now); after a failed or cancelled one it runs
     * again if it ran before, else it stays paused.
     */
    void migrationEnded(boolean completed, boolean wasRunning) {
        synchronized (runLock) {
            if (!runState.equals("finish-migrate")) {
                return;
            }
            if (completed) {
                runState = "postmigrate";
                return;
            }
            runState = "paused";
        }
        if (wasRunning) {
            cont();
        }
    }

    /** The machine waits for an incoming migration ({@code -incoming}): run state {@code inmigrate}. */
    void enterInmigrate() {
        synchronized (runLock) {
            pauseDevices();
            runState = "inmigrate";
        }
    }

    /**
     * The incoming migration loaded: the machine runs, with a {@link MachineEvent.Resumed} event,
     * unless QMP {@code stop} came while it waited (then it is paused).
     */
    void incomingCompleted() {
        boolean run;
        synchronized (runLock) {
            if (!runState.equals("inmigrate")) {
                return;
            }
            runState = "paused";
            run = autostart;
        }
        if (run) {
            cont();
        }
    }

    /**
     * Announces a migration event to the monitor.
     *
     * @param event the event
     */
    void migrationEvent(MachineEvent event) {
        eventListener.accept(event);
    }

    /**
     * {@return QMP's name for the run state: "running", "paused", "io-error" after a stopping I/O
     * error; "inmigrate" while waiting for an incoming migration, "finish-migrate" during a
     * migration's switchover and "postmigrate" after a completed one}
     */
    public String runState() {
        synchronized (runLock) {
            return runState;
        }
    }

    /** The IDE controller's report of a failed request. */
    private void backendFailed(io.guestdma.ide.BackendError error) {
        driveFailed(ideDrives[error.channel() * 2 + error.unit()],
                error.operation() != io.guestdma.ide.BackendError.Operation.READ, error.action(), error.cause());
    }

    /**
     * A device's backend failed a request: QEMU's BLOCK_IO_ERROR, then, for a stop policy, the
     * machine stops in run state io-error (a device holds the request until {@link #cont()}).
     *
     * @param node the drive, or null if the device has none
     * @param write whether the request wrote
     * @param action what the device did: REPORT, IGNORE or STOP (the machine stops)
     * @param cause the backend's failure (its errno is reported), or null for EIO
     */
    void driveFailed(BlockNode node, boolean write, ErrorPolicy action, Throwable cause) {
        int errno = ErrorPolicy.errno(cause);
        boolean stop = action == ErrorPolicy.STOP;
        String name = node == null ? "" : node.name();
        // a -drive is a named device whose node QEMU names itself ("#block123"); a -blockdev node
        // has only its name; an empty drive has no node at all
        boolean drive = node != null && !node.blockdev();
        String nodeName = node == null || node.backend() == null ? null : drive ? "#block-" + name : name;
        MachineEvent.BlockIoError event = new MachineEvent.BlockIoError(drive ? name : "",
                nodeName, write ? "write" : "read", action.name().toLowerCase(java.util.Locale.ROOT),
                // QEMU names nospace only for a drive that keeps its I/O status (a device without
                // a drive has QEMU's default policies, which keep it)
                node == null || ErrorPolicy.keepsIoStatus(node.readPolicy(), node.writePolicy())
                        ? errno == io.guestdma.memory.posix.Errno.ENOSPC : null,
                io.guestdma.memory.posix.Errno.describe(errno));
        synchronized (runLock) {
            eventListener.accept(event);
            if (stop && runState.equals("running")) {
                runState = "io-error";
                eventListener.accept(new MachineEvent.Stopped());
            }
        }
    }

    /** The drive a device put at an IDE place, for error events. */
    void ideAttached(int channel, int unit, BlockNode node) {
        ideDrives[channel * 2 + unit] = node;
    }

    /**
     * {@return the blkdebug layer of a drive ({@code file=blkdebug:...}), if it has one}
     *
     * @param id the drive's id
     */
    public java.util.Optional<BlkdebugBackend> blkdebug(String id) {
        return java.util.Optional.ofNullable(debugDrives.get(id));
    }

    /** {@return whether a drive or node with that name exists} */
    boolean hasDrive(String id) {
        return driveNames.contains(id);
    }

    /** The INTx pin of a PCI function, routed through the PIIX3's PIRQ registers. */
    IrqLine pciIntx(int slot, int pin) {
        return pirq.pin(slot, pin);
    }

    /** A device's resource, closed after the devices stop. */
    synchronized void closeLater(AutoCloseable resource) {
        closeLater.add(resource);
    }

    /** A device's reset, run after the machine's own. */
    synchronized void onReset(Runnable action) {
        resetActions.add(action);
    }

    /** What a device does when the machine continues (QMP cont): retry requests a stop policy held. */
    void onResume(Runnable action) {
        resumeActions.add(action);
    }

    /** What a device does when the machine stops: quiesce. */
    void onPause(Runnable action) {
        pauseActions.add(action);
    }

    /** Under runLock: the IDE controller and every other device stop touching guest memory. */
    private void pauseDevices() {
        ide.pause();
        for (Runnable action : pauseActions) {
            action.run();
        }
    }

    /** Stops the IDE controller, closes the images and frees guest RAM. Idempotent. */
    @Override
    public void close() {
        closeQuietly(null);
    }

    private void closeQuietly(Throwable primary) {
        // a request held at a breakpoint would keep the controller from stopping
        for (BlkdebugBackend debug : debugDrives.values()) {
            debug.releaseAll();
        }
        if (ide != null) {
            ide.close();
        }
        List<AutoCloseable> resources;
        synchronized (this) {
            resources = new ArrayList<>(closeLater);
            closeLater.clear();
        }
        for (AutoCloseable r : resources) {
            try {
                r.close();
            } catch (Exception e) {
                if (primary != null) {
                    primary.addSuppressed(e);
                }
            }
        }
        for (BlockBackend b : backends) {
            try {
                b.close();
            } catch (IOException | RuntimeException e) {
                if (primary != null) {
                    primary.addSuppressed(e);
                }
            }
        }
        backends.clear();
        if (handOff != null) {
            handOff.close();
        }
        for (io.guestdma.net.NetBackend n : netBackends) {
            n.close();
        }
        netBackends.clear();
        memory.close();
    }
}
