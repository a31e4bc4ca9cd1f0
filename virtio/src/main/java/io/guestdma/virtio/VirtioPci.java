package io.guestdma.virtio;

import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.MmioHandler;
import java.lang.invoke.VarHandle;
import java.util.Arrays;
import java.util.Objects;

/**
 * The virtio-pci transport, modern interface (virtio 1.x, section 4.1), laid out as QEMU 7.2's
 * virtio-pci device presents it, so that a driver written against QEMU's device works unchanged:
 *
 * <ul>
 *   <li>PCI identity: vendor 0x1af4, device 0x1000 + type - 1 (transitional IDs, e.g. 0x1001 for
 *       a block device), revision 0, subsystem 0x1af4:type, interrupt pin INTA;</li>
 *   <li>BAR4+5 ({@link #MODERN_BAR}): a 64-bit prefetchable memory BAR of 16 KiB holding the
 *       common configuration (0x0000), ISR (0x1000), device configuration (0x2000) and notify
 *       (0x3000, 4 bytes per queue) areas, 4 KiB each; {@link #modernBar()} serves it;</li>
 *   <li>BAR1 ({@link #MSIX_BAR}, with MSI-X): a 32-bit memory BAR of 4 KiB with the MSI-X table at
 *       0 and the pending-bit array at 0x800; {@link #msixBar()} serves it;</li>
 *   <li>capabilities from {@link #capabilityPointer()}: MSI-X at 0x98 (if vectors), then the
 *       vendor-specific virtio capabilities at 0x84 (PCI configuration access), 0x70 (notify),
 *       0x60 (device), 0x50 (ISR) and 0x40 (common): {@link #configRead} and {@link #configWrite}
 *       serve registers 0x40-0xff.</li>
 * </ul>
 *
 * <p>The legacy interface of a transitional device (virtio 0.9.5, the I/O BAR0 QEMU's pc machine
 * gives every virtio-pci function) is served by {@link #legacyRead} and {@link #legacyWrite}: host
 * and guest features (low 32 bits, plus the legacy-only NOTIFY_ON_EMPTY, ANY_LAYOUT and
 * BAD_FEATURE bits and the device's own legacy-only ones), the queue page frame number (the ring laid out in one block with the used
 * ring on the next 4 KiB boundary; 0 resets the device), queue size, select and notify, device
 * status, ISR, the MSI-X vectors while MSI-X is enabled, then the device configuration. A driver
 * uses either interface; both see one device.
 *
 * <p>Register semantics follow QEMU 7.2: registers answer at their own offset only (other offsets
 * read 0), any access size at a register's offset reads its low bytes and writes the value
 * zero-extended; queue_select ignores values of 1024 and more; a queue size write of 0 or more
 * than 1024 is ignored; queue_enable other than 1 is a driver error; MSI-X vectors at or above
 * the vector count read back as 0xffff (NO_VECTOR); writing 0 to device_status resets the device;
 * reading the ISR clears it and lowers INTx; clearing the PCI command register's bus-master bit
 * clears DRIVER_OK. Interrupts: ISR bit 0 for used buffers, bits 0-1 for a configuration change;
 * with MSI-X enabled the vector's message (a 32-bit write through the bus master) is sent, or
 * marked pending while masked; otherwise INTx follows ISR bit 0.
 *
 * <p>Thread-safe: register accesses from any thread; the device's threads interrupt and report
 * errors concurrently.
 */
public final class VirtioPci {
    /** The PCI vendor ID of every virtio device (Red Hat / Qumranet). */
    public static final int VENDOR_ID = 0x1af4;
    /** The PCI class code QEMU gives virtio-blk (mass storage, SCSI). */
    public static final int CLASS_STORAGE_SCSI = 0x010000;
    /** The BAR of the modern registers (a 64-bit BAR: 4 and 5). */
    public static final int MODERN_BAR = 4;
    /** The size of the modern BAR. */
    public static final int MODERN_BAR_SIZE = 0x4000;
    /** The BAR of the MSI-X table and pending bits. */
    public static final int MSIX_BAR = 1;
    /** The size of the MSI-X BAR. */
    public static final int MSIX_BAR_SIZE = 0x1000;
    /** The legacy I/O BAR of a transitional device. */
    public static final int LEGACY_BAR = 0;
    /** QEMU's legacy I/O BAR size for virtio-blk: 20 register bytes + 60 config bytes, rounded up. */
    public static final int LEGACY_BAR_SIZE = 0x80;
    /** Offsets of the areas in the modern BAR. */
    public static final int COMMON = 0x0000;
    /** The ISR status area. */
    public static final int ISR = 0x1000;
    /** The device configuration area. */
    public static final int DEVICE = 0x2000;
    /** The notify area: queue n at NOTIFY + 4n. */
    public static final int NOTIFY = 0x3000;
    /** Bytes between two queues' notify addresses. */
    public static final int NOTIFY_MULTIPLIER = 4;
    /** The vector value meaning "none". */
    public static final int NO_VECTOR = 0xffff;
    /** Queue indexes a driver can select (QEMU's VIRTIO_QUEUE_MAX). */
    public static final int QUEUE_SELECT_LIMIT = 1024;

    /** Device status bits. */
    public static final int STATUS_ACKNOWLEDGE = 1;
    /** The driver knows how to drive the device. */
    public static final int STATUS_DRIVER = 2;
    /** The driver is ready. */
    public static final int STATUS_DRIVER_OK = 4;
    /** Feature negotiation is complete. */
    public static final int STATUS_FEATURES_OK = 8;
    /** The device broke; the driver must reset it. */
    public static final int STATUS_NEEDS_RESET = 0x40;
    /** The driver gave up. */
    public static final int STATUS_FAILED = 0x80;

    /** Legacy-only feature bit: interrupt when the available ring runs empty, even if suppressed. */
    public static final long F_NOTIFY_ON_EMPTY = 1L << 24;
    /** Legacy-only feature bit: the device takes any descriptor layout. */
    public static final long F_ANY_LAYOUT = 1L << 27;
    /** Legacy-only feature bit: a driver that acknowledges it negotiates nothing but the device's safe set. */
    public static final long F_BAD_FEATURE = 1L << 30;
    /** Feature bit: indirect descriptors. */
    public static final long F_INDIRECT_DESC = 1L << 28;
    /** Feature bit: used_event / avail_event. */
    public static final long F_EVENT_IDX = 1L << 29;
    /** Feature bit: virtio 1.x. */
    public static final long F_VERSION_1 = 1L << 32;
    /** Feature bit: per-queue reset (queue_reset register). */
    public static final long F_RING_RESET = 1L << 40;

    private static final int CAP_COMMON = 0x40;
    private static final int CAP_ISR = 0x50;
    private static final int CAP_DEVICE = 0x60;
    private static final int CAP_NOTIFY = 0x70;
    private static final int CAP_PCI_CFG = 0x84;
    private static final int CAP_MSIX = 0x98;
    private static final int PCI_CFG_BAR = CAP_PCI_CFG + 4;
    private static final int PCI_CFG_OFFSET = CAP_PCI_CFG + 8;
    private static final int PCI_CFG_LENGTH = CAP_PCI_CFG + 12;
    private static final int PCI_CFG_DATA = CAP_PCI_CFG + 16;
    private static final int MSIX_CONTROL = CAP_MSIX + 2;
    private static final int MSIX_ENABLE = 0x8000;
    private static final int MSIX_MASK_ALL = 0x4000;
    private static final int PBA = 0x800;
    private static final int CONFIG_SIZE = 256;
    // The legacy registers in BAR0.
    private static final int LEGACY_HOST_FEATURES = 0x00;
    private static final int LEGACY_GUEST_FEATURES = 0x04;
    private static final int LEGACY_QUEUE_PFN = 0x08;
    private static final int LEGACY_QUEUE_NUM = 0x0c;
    private static final int LEGACY_QUEUE_SELECT = 0x0e;
    private static final int LEGACY_QUEUE_NOTIFY = 0x10;
    private static final int LEGACY_STATUS = 0x12;
    private static final int LEGACY_ISR = 0x13;
    private static final int LEGACY_CONFIG_VECTOR = 0x14;
    private static final int LEGACY_QUEUE_VECTOR = 0x16;
    /** Where the legacy device configuration starts: after the vectors only while MSI-X is on. */
    private static final int LEGACY_CONFIG = 0x14;
    private static final int LEGACY_CONFIG_MSIX = 0x18;
    private static final int LEGACY_PAGE_SHIFT = 12;
    private static final long LEGACY_RING_ALIGN = 4096;

    /** The interrupt pin a function drives (INTA#), level-triggered. */
    @FunctionalInterface
    public interface Intx {
        /**
         * Sets the pin's level.
         *
         * @param level true for asserted
         */
        void set(boolean level);
    }

    private final VirtioDevice device;
    private final DeviceAddressSpace busMaster;
    private final Intx intx;
    private final int vectors;
    private final long offered;
    private final long legacyOffered;
    /** Sets the function's bus-master bit for a legacy driver that forgot to (see legacyWrite). */
    private volatile Runnable legacyBusMasterQuirk = () -> { };
    private final Virtqueue[] queues;
    /**
     * Allocated after each queue: a queue's state is written per request by the thread serving
     * it, and without a gap the allocator puts the next queue's on the same cache line.
     */
    private final long[][] queueSpacers;
    private static final int QUEUE_SPACER_LONGS = 32;
    private final BusImpl bus = new BusImpl();
    private final Object irqLock = new Object();

    // PCI configuration registers 0x40-0xff (capabilities), with their write masks.
    private final byte[] config = new byte[CONFIG_SIZE];
    private final byte[] configPowerOn = new byte[CONFIG_SIZE];
    private final byte[] configWritable = new byte[CONFIG_SIZE];

    // common configuration, guarded by this
    private int deviceFeatureSelect;
    private int driverFeatureSelect;
    private final int[] driverFeatures = new int[2];
    private int queueSelect;
    private final int[] queueVector = new int[QUEUE_SELECT_LIMIT];
    private final boolean[] queueEnabled = new boolean[QUEUE_SELECT_LIMIT];
    private final long[] queueDesc = new long[QUEUE_SELECT_LIMIT];
    private final long[] queueAvail = new long[QUEUE_SELECT_LIMIT];
    private final long[] queueUsed = new long[QUEUE_SELECT_LIMIT];
    private volatile long negotiated;
    private volatile boolean busMasterEnabled;

    // guarded by irqLock
    private int status;
    private int generation;
    private int isr;
    private int configVector = NO_VECTOR;
    /** Written under irqLock; volatile so that a notify can check it without taking the lock. */
    private volatile boolean broken;
    private boolean intxLevel;
    /**
     * Whether a queue interrupt now would change nothing (INTx, ISR bit 0 set, the line already
     * high): written under irqLock, read without it by {@link BusImpl#interruptQueue}, so that
     * queues completing requests on several threads do not all take irqLock for an interrupt that
     * is already asserted.
     */
    private volatile boolean queueInterruptAsserted;
    private final long[] msixTable;
    private long pending;

    /**
     * Creates the transport for a device. The device is attached to it at once.
     *
     * @param device    the device type
     * @param busMaster the function's bus master: rings, buffers and MSI-X messages go through it
     * @param intx      the function's INTA# pin
     * @param vectors   MSI-X vectors, 0 (no MSI-X) to 64; QEMU gives queues + 1
     * @throws IllegalArgumentException if vectors is out of range or the device's queue count or
     *                                  size is invalid
     * @throws NullPointerException     if an argument is null
     */
    public VirtioPci(VirtioDevice device, DeviceAddressSpace busMaster, Intx intx, int vectors) {
        this.device = Objects.requireNonNull(device, "device");
        this.busMaster = Objects.requireNonNull(busMaster, "busMaster");
        this.intx = Objects.requireNonNull(intx, "intx");
        if (vectors < 0 || vectors > 64) {
            throw new IllegalArgumentException("MSI-X vectors must be 0..64, was " + vectors);
        }
        int count = device.queueCount();
        if (count < 1 || count > QUEUE_SELECT_LIMIT) {
            throw new IllegalArgumentException("a device needs 1.." + QUEUE_SELECT_LIMIT + " queues, has " + count);
        }
        this.vectors = vectors;
        this.offered = device.features() | F_VERSION_1;
        this.legacyOffered = (offered & 0xffff_ffffL) | (device.legacyOnlyFeatures() & 0xffff_ffffL)
                | F_NOTIFY_ON_EMPTY | F_ANY_LAYOUT | F_BAD_FEATURE;
        this.queues = new Virtqueue[count];
        this.queueSpacers = new long[count][];
        for (int i = 0; i < count; i++) {
            queues[i] = new Virtqueue(busMaster, device.queueSize(i));
            queueSpacers[i] = new long[QUEUE_SPACER_LONGS];
        }
        this.msixTable = new long[2 * vectors];
        buildCapabilities();
        System.arraycopy(configPowerOn, 0, config, 0, CONFIG_SIZE);
        Arrays.fill(queueVector, NO_VECTOR);
        resetMsixTable();
        device.attach(bus);
    }

    private void buildCapabilities() {
        vendorCap(CAP_COMMON, 0, 0x10, 1, COMMON);
        vendorCap(CAP_ISR, CAP_COMMON, 0x10, 3, ISR);
        vendorCap(CAP_DEVICE, CAP_ISR, 0x10, 4, DEVICE);
        vendorCap(CAP_NOTIFY, CAP_DEVICE, 0x14, 2, NOTIFY);
        put(configPowerOn, CAP_NOTIFY + 16, 4, NOTIFY_MULTIPLIER);
        configPowerOn[CAP_PCI_CFG] = 0x09;
        configPowerOn[CAP_PCI_CFG + 1] = (byte) CAP_NOTIFY;
        configPowerOn[CAP_PCI_CFG + 2] = 0x14;
        configPowerOn[CAP_PCI_CFG + 3] = 5;
        configWritable[PCI_CFG_BAR] = (byte) 0xff;
        Arrays.fill(configWritable, PCI_CFG_OFFSET, PCI_CFG_DATA + 4, (byte) 0xff);
        if (vectors > 0) {
            configPowerOn[CAP_MSIX] = 0x11;
            configPowerOn[CAP_MSIX + 1] = (byte) CAP_PCI_CFG;
            put(configPowerOn, MSIX_CONTROL, 2, vectors - 1);
            put(configPowerOn, CAP_MSIX + 4, 4, MSIX_BAR);
            put(configPowerOn, CAP_MSIX + 8, 4, PBA | MSIX_BAR);
            configWritable[MSIX_CONTROL + 1] = (byte) ((MSIX_ENABLE | MSIX_MASK_ALL) >>> 8);
        }
    }

    private void vendorCap(int at, int next, int length, int type, int offset) {
        configPowerOn[at] = 0x09;
        configPowerOn[at + 1] = (byte) next;
        configPowerOn[at + 2] = (byte) length;
        configPowerOn[at + 3] = (byte) type;
        configPowerOn[at + 4] = MODERN_BAR;
        put(configPowerOn, at + 8, 4, offset);
        put(configPowerOn, at + 12, 4, 0x1000);
    }

    private static void put(byte[] bytes, int at, int size, int value) {
        for (int i = 0; i < size; i++) {
            bytes[at + i] = (byte) (value >>> (8 * i));
        }
    }

    private static int get(byte[] bytes, int at, int size) {
        int value = 0;
        for (int i = 0; i < size && at + i < bytes.length; i++) {
            value |= (bytes[at + i] & 0xff) << (8 * i);
        }
        return value;
    }

    // ------------------------------------------------------------------ PCI identity

    /** {@return the PCI device ID: the transitional 0x1000 + device type - 1} */
    public int pciDeviceId() {
        return 0x1000 + device.deviceId() - 1;
    }

    /** {@return the PCI subsystem ID: the virtio device type} */
    public int subsystemId() {
        return device.deviceId();
    }

    /** {@return the first capability's offset, for the configuration register 0x34} */
    public int capabilityPointer() {
        return vectors > 0 ? CAP_MSIX : CAP_PCI_CFG;
    }

    /** {@return the MSI-X vectors (0 if the function has no MSI-X)} */
    public int msixVectors() {
        return vectors;
    }

    /** {@return the virtqueues, for inspection} */
    public int queueCount() {
        return queues.length;
    }

    /**
     * {@return queue {@code index}; synchronise on it while using it}
     *
     * @param index 0 to {@link #queueCount()} - 1
     * @throws IndexOutOfBoundsException if index is out of range
     */
    public Virtqueue queue(int index) {
        return queues[Objects.checkIndex(index, queues.length)];
    }

    /** {@return the device status register} */
    public int status() {
        synchronized (irqLock) {
            return status;
        }
    }

    // ------------------------------------------------------------------ configuration space 0x40-0xff

    /**
     * Reads device-specific configuration registers (the capability list). Reading the PCI
     * configuration access capability's data reads the modern BAR at its offset and length.
     *
     * @param register 0x40 to 0xff
     * @param size     1 to 4; bytes past 0xff read 0
     * @return the little-endian value
     * @throws IllegalArgumentException if the register is outside 0x40-0xff or size outside 1..4
     */
    public synchronized int configRead(int register, int size) {
        checkConfig(register, size);
        if (overlaps(register, size, PCI_CFG_DATA, 4)) {
            int length = get(config, PCI_CFG_LENGTH, 4);
            if (length == 1 || length == 2 || length == 4) {
                long offset = Integer.toUnsignedLong(get(config, PCI_CFG_OFFSET, 4));
                if (areaCovers(offset, length)) {
                    put(config, PCI_CFG_DATA, length, (int) modernRead(offset, length));
                }
            }
        }
        return get(config, register, size);
    }

    /**
     * Writes device-specific configuration registers through their write masks: the PCI
     * configuration access capability's fields, its data (written on to the modern BAR), and the
     * MSI-X enable and function-mask bits.
     *
     * @param register 0x40 to 0xff
     * @param size     1 to 4
     * @param value    the little-endian value
     * @throws IllegalArgumentException if the register is outside 0x40-0xff or size outside 1..4
     */
    public synchronized void configWrite(int register, int size, int value) {
        checkConfig(register, size);
        boolean msixWasMasked = functionMasked();
        for (int i = 0; i < size && register + i < CONFIG_SIZE; i++) {
            int at = register + i;
            int mask = configWritable[at];
            config[at] = (byte) ((config[at] & ~mask) | ((value >>> (8 * i)) & mask));
        }
        if (overlaps(register, size, PCI_CFG_DATA, 4)) {
            int length = get(config, PCI_CFG_LENGTH, 4);
            long offset = Integer.toUnsignedLong(get(config, PCI_CFG_OFFSET, 4));
            if ((length == 1 || length == 2 || length == 4) && areaCovers(offset, length)) {
                modernWrite(offset, length, get(config, PCI_CFG_DATA, length));
            }
        }
        if (vectors > 0 && overlaps(register, size, MSIX_CONTROL + 1, 1)) {
            msixControlWritten(msixWasMasked);
        }
    }

    private static void checkConfig(int register, int size) {
        if (register < 0x40 || register > 0xff || size < 1 || size > 4) {
            throw new IllegalArgumentException(String.format("configuration access 0x%x/%d is not a device register",
                    register, size));
        }
    }

    private static boolean overlaps(int register, int size, int start, int length) {
        return register < start + length && start < register + size;
    }

    /** QEMU's virtio_address_space_lookup: the access must lie inside one of the four areas. */
    private static boolean areaCovers(long offset, int length) {
        if (offset >= MODERN_BAR_SIZE) {
            return false;
        }
        long area = offset & ~0xfffL;
        return offset + length <= area + 0x1000;
    }

    /**
     * The PCI command register changed: the bus-master bit gates DMA, and clearing it clears
     * DRIVER_OK (as QEMU's virtio_write_config does).
     *
     * @param command the new command register value
     */
    public synchronized void commandWritten(int command) {
        boolean master = (command & 0x4) != 0;
        busMaster.setEnabled(master);
        busMasterEnabled = master;
        if (!master) {
            synchronized (irqLock) {
                status &= ~STATUS_DRIVER_OK;
            }
            device.statusChanged(status());
        }
    }

    // ------------------------------------------------------------------ the modern BAR

    /** {@return the register window of the modern BAR (BAR4), {@value #MODERN_BAR_SIZE} bytes} */
    public MmioHandler modernBar() {
        return new MmioHandler() {
            @Override
            public long read(long offset, int size) {
                if (device.runsOnDeviceThread()) {
                    return 0; // DMA into our own registers: refused
                }
                synchronized (VirtioPci.this) {
                    return modernRead(offset, size);
                }
            }

            @Override
            public void write(long offset, int size, long value) {
                if (device.runsOnDeviceThread()) {
                    return;
                }
                if (offset >= NOTIFY && offset < MODERN_BAR_SIZE) {
                    // Not under the register lock: queues are notified (and, without I/O threads,
                    // processed) concurrently, each under its own lock.
                    notifyQueue((int) ((offset - NOTIFY) / NOTIFY_MULTIPLIER));
                    return;
                }
                synchronized (VirtioPci.this) {
                    modernWrite(offset, size, (int) value);
                }
            }

            @Override
            public int maxAccessSize() {
                return 4;
            }
        };
    }

    private long modernRead(long offset, int size) {
        long mask = size == 4 ? 0xffff_ffffL : (1L << (8 * size)) - 1;
        if (offset < ISR) {
            return commonRead((int) offset) & mask;
        }
        if (offset < DEVICE) {
            synchronized (irqLock) {
                int value = isr;
                isr = 0;
                setIntx(false);
                return value & mask;
            }
        }
        if (offset < NOTIFY) {
            int at = (int) (offset - DEVICE);
            if (at + size > device.configSize()) {
                return mask;
            }
            return device.configRead(at, size) & mask;
        }
        return 0;
    }

    private void modernWrite(long offset, int size, int value) {
        int v = size == 4 ? value : value & ((1 << (8 * size)) - 1);
        if (offset < ISR) {
            commonWrite((int) offset, v);
        } else if (offset >= DEVICE && offset < NOTIFY) {
            int at = (int) (offset - DEVICE);
            if (at + size <= device.configSize()) {
                device.configWrite(at, size, v);
            }
        } else if (offset >= NOTIFY && offset < MODERN_BAR_SIZE) {
            notifyQueue((int) ((offset - NOTIFY) / NOTIFY_MULTIPLIER));
        }
    }

    private long commonRead(int offset) {
        int q = queueSelect;
        return switch (offset) {
            case 0x00 -> deviceFeatureSelect;
            case 0x04 -> deviceFeatureSelect <= 1 ? (int) (offered >>> (32 * deviceFeatureSelect)) : 0;
            case 0x08 -> driverFeatureSelect;
            case 0x0c -> Integer.compareUnsigned(driverFeatureSelect, 2) < 0 ? driverFeatures[driverFeatureSelect] : 0;
            case 0x10 -> irqState(0x10);
            case 0x12 -> queues.length;
            case 0x14 -> status();
            case 0x15 -> irqState(0x15);
            case 0x16 -> q;
            case 0x18 -> q < queues.length ? queueSize(q) : 0;
            case 0x1a -> queueVector[q];
            case 0x1c -> queueEnabled[q] ? 1 : 0;
            case 0x1e -> q;
            case 0x20 -> (int) queueDesc[q];
            case 0x24 -> (int) (queueDesc[q] >>> 32);
            case 0x28 -> (int) queueAvail[q];
            case 0x2c -> (int) (queueAvail[q] >>> 32);
            case 0x30 -> (int) queueUsed[q];
            case 0x34 -> (int) (queueUsed[q] >>> 32);
            default -> 0; // queue_notify_data, queue_reset (always 0 once done) and the rest
        } & 0xffff_ffffL;
    }

    /** The registers kept under irqLock: config_msix_vector (0x10) and config_generation (0x15). */
    private int irqState(int register) {
        synchronized (irqLock) {
            return register == 0x10 ? configVector : generation;
        }
    }

    private int queueSize(int q) {
        synchronized (queues[q]) {
            return queues[q].size();
        }
    }

    private void commonWrite(int offset, int value) {
        int q = queueSelect;
        switch (offset) {
            case 0x00 -> deviceFeatureSelect = value;
            case 0x08 -> driverFeatureSelect = value;
            case 0x0c -> {
                if (Integer.compareUnsigned(driverFeatureSelect, 2) < 0) {
                    driverFeatures[driverFeatureSelect] = value;
                    if ((status() & STATUS_FEATURES_OK) == 0) {
                        long wanted = Integer.toUnsignedLong(driverFeatures[0])
                                | (long) driverFeatures[1] << 32;
                        negotiated = wanted & offered;
                    }
                }
            }
            case 0x10 -> {
                synchronized (irqLock) {
                    configVector = value < vectors ? value : NO_VECTOR;
                }
            }
            case 0x14 -> writeStatus(value & 0xff);
            case 0x16 -> {
                if (value < QUEUE_SELECT_LIMIT) {
                    queueSelect = value;
                }
            }
            case 0x18 -> {
                if (q < queues.length) {
                    synchronized (queues[q]) {
                        queues[q].setSize(value);
                    }
                }
            }
            case 0x1a -> queueVector[q] = value < vectors ? value : NO_VECTOR;
            case 0x1c -> {
                if (value == 1) {
                    enableQueue(q);
                } else {
                    bus.needsReset("queue_enable written with " + value);
                }
            }
            case 0x20 -> queueDesc[q] = queueDesc[q] & ~0xffff_ffffL | Integer.toUnsignedLong(value);
            case 0x24 -> queueDesc[q] = queueDesc[q] & 0xffff_ffffL | (long) value << 32;
            case 0x28 -> queueAvail[q] = queueAvail[q] & ~0xffff_ffffL | Integer.toUnsignedLong(value);
            case 0x2c -> queueAvail[q] = queueAvail[q] & 0xffff_ffffL | (long) value << 32;
            case 0x30 -> queueUsed[q] = queueUsed[q] & ~0xffff_ffffL | Integer.toUnsignedLong(value);
            case 0x34 -> queueUsed[q] = queueUsed[q] & 0xffff_ffffL | (long) value << 32;
            case 0x3a -> {
                if (value == 1) {
                    resetQueue(q);
                }
            }
            default -> { } // read-only registers
        }
    }

    private void enableQueue(int q) {
        queueEnabled[q] = true;
        if (q >= queues.length) {
            return; // as QEMU: the register reads back 1, nothing else happens
        }
        if (queueDesc[q] == 0) {
            synchronized (queues[q]) {
                queues[q].disable(); // as QEMU: a descriptor table at 0 means "not set up"
            }
            return;
        }
        boolean ok;
        String why;
        synchronized (queues[q]) {
            queues[q].useEventIdx((negotiated & F_EVENT_IDX) != 0);
            ok = queues[q].enable(queueDesc[q], queueAvail[q], queueUsed[q]);
            why = queues[q].error();
        }
        if (!ok) {
            bus.needsReset("queue " + q + ": " + why);
        }
    }

    private void resetQueue(int q) {
        if (q < queues.length) {
            device.queueReset(q);
            synchronized (queues[q]) {
                queues[q].reset();
            }
        }
        queueEnabled[q] = false;
        queueVector[q] = NO_VECTOR;
    }

    private void writeStatus(int value) {
        if (value == 0) {
            reset();
            return;
        }
        int before;
        synchronized (irqLock) {
            before = status;
            status = value;
        }
        if ((before ^ value) != 0) {
            device.statusChanged(value);
        }
    }

    private void notifyQueue(int q) {
        if (q >= queues.length || !busMasterEnabled || broken) {
            return; // broken read without irqLock: queues notified on several threads share nothing here
        }
        device.queueNotified(q);
    }

    /**
     * Resets the device, as writing 0 to device_status or a PCI reset does: requests in flight are
     * finished or dropped, the queues are disabled with their default size, the status, features,
     * vectors and ISR are cleared and INTx is lowered; the feature selectors keep their values (as
     * in QEMU). The MSI-X table and capability are left as they are (a PCI reset clears them
     * with {@link #resetFunction()}).
     */
    public synchronized void reset() {
        device.reset();
        for (Virtqueue q : queues) {
            synchronized (q) {
                q.reset();
            }
        }
        Arrays.fill(queueVector, NO_VECTOR);
        Arrays.fill(queueEnabled, false);
        Arrays.fill(queueDesc, 0);
        Arrays.fill(queueAvail, 0);
        Arrays.fill(queueUsed, 0);
        driverFeatures[0] = 0;
        driverFeatures[1] = 0;
        negotiated = 0;
        queueSelect = 0;
        synchronized (irqLock) {
            status = 0;
            broken = false;
            isr = 0;
            configVector = NO_VECTOR;
            setIntx(false);
        }
        device.statusChanged(0);
    }

    /**
     * A PCI function reset (machine reset): the device reset, the capabilities' registers back to
     * their power-on values (MSI-X disabled, its table masked and cleared), bus mastering off.
     */
    public synchronized void resetFunction() {
        reset();
        System.arraycopy(configPowerOn, 0, config, 0, CONFIG_SIZE);
        synchronized (irqLock) {
            resetMsixTable();
        }
        busMaster.setEnabled(false);
        busMasterEnabled = false;
        deviceFeatureSelect = 0;
        driverFeatureSelect = 0;
    }

    // ------------------------------------------------------------------ the legacy BAR

    /**
     * Sets what happens when a legacy driver writes ACKNOWLEDGE | DRIVER to the status register:
     * QEMU then sets the function's bus-master bit itself, because Linux before 2.6.34 drove
     * the device without setting it. The machine passes a write of its PCI command register.
     *
     * @param enableBusMaster sets the command register's bus-master bit
     * @throws NullPointerException if the argument is null
     */
    public void onLegacyBusMasterQuirk(Runnable enableBusMaster) {
        legacyBusMasterQuirk = Objects.requireNonNull(enableBusMaster, "enableBusMaster");
    }

    /**
     * Reads the legacy I/O BAR (BAR0). A register answers at its own offset only, with its whole
     * value (the caller keeps the low {@code size} bytes); other offsets below the device
     * configuration read all ones; reading the ISR clears it and lowers INTx.
     *
     * @param offset the port offset in the BAR, 0 or more
     * @param size   1, 2 or 4
     * @return the value, little-endian
     */
    public int legacyRead(int offset, int size) {
        if (device.runsOnDeviceThread()) {
            return 0;
        }
        synchronized (this) {
            int configStart = legacyConfigStart();
            if (offset >= configStart) {
                int at = offset - configStart;
                return at + size > device.configSize() ? -1 : device.configRead(at, size);
            }
            int q = queueSelect;
            return switch (offset) {
                case LEGACY_HOST_FEATURES -> (int) legacyOffered;
                case LEGACY_GUEST_FEATURES -> (int) negotiated;
                case LEGACY_QUEUE_PFN -> (int) (queueDesc[q] >>> LEGACY_PAGE_SHIFT);
                case LEGACY_QUEUE_NUM -> q < queues.length ? queueSize(q) : 0;
                case LEGACY_QUEUE_SELECT -> q;
                case LEGACY_STATUS -> status();
                case LEGACY_ISR -> (int) modernRead(ISR, 1);
                case LEGACY_CONFIG_VECTOR -> irqState(0x10);
                case LEGACY_QUEUE_VECTOR -> queueVector[q];
                default -> -1;
            };
        }
    }

    /**
     * Writes the legacy I/O BAR (BAR0). Registers take the whole value written at their offset;
     * writes elsewhere below the device configuration are ignored.
     *
     * @param offset the port offset in the BAR, 0 or more
     * @param size   1, 2 or 4
     * @param value  the value, little-endian; only the low {@code size} bytes count
     */
    public void legacyWrite(int offset, int size, int value) {
        if (device.runsOnDeviceThread()) {
            return;
        }
        int v = size == 4 ? value : value & ((1 << (8 * size)) - 1);
        if (offset == LEGACY_QUEUE_NOTIFY) {
            if (Integer.compareUnsigned(v, QUEUE_SELECT_LIMIT) < 0) {
                notifyQueue(v); // outside the register lock, as the modern notify area
            }
            return;
        }
        boolean quirk = false;
        synchronized (this) {
            int configStart = legacyConfigStart();
            if (offset >= configStart) {
                int at = offset - configStart;
                if (at + size <= device.configSize()) {
                    device.configWrite(at, size, v);
                }
                return;
            }
            int q = queueSelect;
            switch (offset) {
                case LEGACY_GUEST_FEATURES -> legacyFeaturesWritten(v);
                case LEGACY_QUEUE_PFN -> {
                    long address = Integer.toUnsignedLong(v) << LEGACY_PAGE_SHIFT;
                    if (address == 0) {
                        reset(); // QEMU: a page frame number of 0 resets the device
                    } else {
                        legacyQueueAt(q, address);
                    }
                }
                case LEGACY_QUEUE_SELECT -> commonWrite(0x16, v);
                case LEGACY_STATUS -> {
                    writeStatus(v & 0xff);
                    quirk = v == (STATUS_ACKNOWLEDGE | STATUS_DRIVER);
                }
                case LEGACY_CONFIG_VECTOR -> commonWrite(0x10, v);
                case LEGACY_QUEUE_VECTOR -> commonWrite(0x1a, v);
                default -> { } // read-only or not a register
            }
        }
        if (quirk) {
            legacyBusMasterQuirk.run();
        }
    }

    /** The legacy device configuration's offset: 24 while MSI-X is enabled, else 20 (QEMU's VIRTIO_PCI_CONFIG_OFF). */
    private int legacyConfigStart() {
        return msixEnabled() ? LEGACY_CONFIG_MSIX : LEGACY_CONFIG;
    }

    /** QEMU's virtio_set_features from the legacy register: refused once FEATURES_OK is set. */
    private void legacyFeaturesWritten(int value) {
        if ((status() & STATUS_FEATURES_OK) != 0) {
            return;
        }
        long wanted = Integer.toUnsignedLong(value);
        if ((wanted & F_BAD_FEATURE) != 0) {
            wanted = device.legacyBadFeatures();
        }
        negotiated = wanted & legacyOffered;
    }

    /**
     * The legacy ring layout (virtio 0.9.5 section 2.3): descriptors at the page, the available
     * ring right after them, the used ring at the next 4 KiB boundary. The queue runs from now on.
     */
    private void legacyQueueAt(int q, long address) {
        if (q >= queues.length) {
            return; // QEMU: a queue the device does not have has no size and ignores its address
        }
        int size = queueSize(q);
        long avail = address + 16L * size;
        long used = (avail + 4 + 2L * size + LEGACY_RING_ALIGN - 1) & -LEGACY_RING_ALIGN;
        queueDesc[q] = address;
        queueAvail[q] = avail;
        queueUsed[q] = used;
        enableQueue(q);
    }

    // ------------------------------------------------------------------ migration

    /**
     * The transport's migration section together with its device's: the capability registers
     * (MSI-X enable and mask, the PCI configuration access window), the feature selectors, the
     * driver's features and the negotiated set, the device status, configuration generation, ISR,
     * the configuration and queue vectors, every queue's registers (size, enable, ring addresses)
     * and progress (last avail and used index, requests taken, event-index state), the MSI-X table
     * and pending bits, and the INTx level; then whatever the device saves
     * ({@link VirtioDevice#saveState}).
     *
     * <p>Load resets the function first, checks every value against what the registers can hold
     * (features a subset of those offered, vectors below the count, queue sizes of at most
     * {@value Virtqueue#MAX_SIZE}, rings enabled only where they pin guest RAM with their
     * alignment, indices consistent with the used ring in the migrated memory) and resets the
     * function again if it refuses the section. The INTx pin is driven to the saved level. The
     * PCI command register's bus-master bit is restored here as well, so the transport can be
     * migrated alone; a machine that restores its configuration space first sets the same.
     *
     * @param sectionId the section's identifier, stable for the machine's configuration, such as
     *     {@code "virtio-blk@04.0"}
     * @return the section
     * @throws NullPointerException if sectionId is null
     */
    public io.guestdma.migration.DeviceState migrationState(String sectionId) {
        Objects.requireNonNull(sectionId, "sectionId");
        return new io.guestdma.migration.DeviceState() {
            @Override
            public String sectionId() {
                return sectionId;
            }

            @Override
            public int version() {
                return 1;
            }

            @Override
            public void save(io.guestdma.migration.StateWriter out) {
                saveState(out);
            }

            @Override
            public void load(io.guestdma.migration.StateReader in, int version)
                    throws io.guestdma.migration.MigrationFormatException {
                if (version != 1) {
                    throw new io.guestdma.migration.MigrationFormatException("section " + sectionId
                            + ": unknown version " + version + " (this build reads 1)");
                }
                try {
                    loadState(in);
                } catch (io.guestdma.migration.MigrationFormatException | RuntimeException e) {
                    resetFunction();
                    throw e;
                }
            }
        };
    }

    private synchronized void saveState(io.guestdma.migration.StateWriter out) {
        out.bytes(config.clone());
        out.u32(Integer.toUnsignedLong(deviceFeatureSelect)).u32(Integer.toUnsignedLong(driverFeatureSelect));
        out.u32(Integer.toUnsignedLong(driverFeatures[0])).u32(Integer.toUnsignedLong(driverFeatures[1]));
        out.u64(negotiated).bool(busMasterEnabled).u16(queueSelect);
        synchronized (irqLock) {
            out.u8(status).u8(generation).u8(isr).u16(configVector).bool(broken).bool(intxLevel);
            out.u8(vectors);
            for (long word : msixTable) {
                out.u64(word);
            }
            out.u64(pending);
        }
        int registers = 0;
        for (int q = 0; q < QUEUE_SELECT_LIMIT; q++) {
            registers += queueRegistersSet(q) ? 1 : 0;
        }
        out.u16(registers);
        for (int q = 0; q < QUEUE_SELECT_LIMIT; q++) {
            if (queueRegistersSet(q)) {
                out.u16(q).u16(queueVector[q]).bool(queueEnabled[q]);
                out.u64(queueDesc[q]).u64(queueAvail[q]).u64(queueUsed[q]);
            }
        }
        out.u16(queues.length);
        for (Virtqueue q : queues) {
            synchronized (q) {
                q.save(out);
            }
        }
        device.saveState(out);
    }

    private boolean queueRegistersSet(int q) {
        return queueVector[q] != NO_VECTOR || queueEnabled[q] || queueDesc[q] != 0 || queueAvail[q] != 0
                || queueUsed[q] != 0;
    }

    private synchronized void loadState(io.guestdma.migration.StateReader in)
            throws io.guestdma.migration.MigrationFormatException {
        resetFunction();
        byte[] saved = in.bytes("config", CONFIG_SIZE);
        if (saved.length != CONFIG_SIZE) {
            throw in.failure("config", saved.length + " bytes, not " + CONFIG_SIZE);
        }
        for (int i = 0; i < CONFIG_SIZE; i++) {
            if (((saved[i] ^ configPowerOn[i]) & ~configWritable[i] & 0xff) != 0) {
                throw in.failure("config", String.format("register 0x%02x is 0x%02x; only bits 0x%02x of its "
                        + "power-on 0x%02x can change", i, saved[i] & 0xff, configWritable[i] & 0xff,
                        configPowerOn[i] & 0xff));
            }
        }
        int loadedDeviceSelect = (int) in.u32("deviceFeatureSelect");
        int loadedDriverSelect = (int) in.u32("driverFeatureSelect");
        int features0 = (int) in.u32("driverFeatures[0]");
        int features1 = (int) in.u32("driverFeatures[1]");
        long loadedNegotiated = in.u64("negotiated");
        // a legacy driver negotiates from the legacy register's set, which adds the legacy-only bits
        long offeredEither = offered | legacyOffered;
        if ((loadedNegotiated & ~offeredEither) != 0) {
            throw in.failure("negotiated", String.format("features 0x%x were never offered (offered 0x%x)",
                    loadedNegotiated & ~offeredEither, offeredEither));
        }
        boolean master = in.bool("busMasterEnabled");
        int loadedQueueSelect = in.u16("queueSelect");
        if (loadedQueueSelect >= QUEUE_SELECT_LIMIT) {
            throw in.failure("queueSelect", loadedQueueSelect + " is not below " + QUEUE_SELECT_LIMIT);
        }
        int loadedStatus = in.u8("status");
        int loadedGeneration = in.u8("generation");
        int loadedIsr = in.u8("isr");
        if ((loadedIsr & ~3) != 0) {
            throw in.failure("isr", "only bits 0 and 1 of the ISR exist");
        }
        int loadedConfigVector = checkVector(in, "configVector", in.u16("configVector"));
        boolean loadedBroken = in.bool("broken");
        boolean loadedIntx = in.bool("intxLevel");
        int loadedVectors = in.u8("vectors");
        if (loadedVectors != vectors) {
            throw in.failure("vectors", loadedVectors + " MSI-X vectors, the destination has " + vectors);
        }
        long[] table = new long[msixTable.length];
        for (int i = 0; i < table.length; i++) {
            table[i] = in.u64("msixTable");
        }
        long loadedPending = in.u64("pending");
        if (vectors < 64 && (loadedPending >>> vectors) != 0) {
            throw in.failure("pending", "pending bits above vector " + (vectors - 1));
        }
        int registers = in.u16("queues.registers");
        if (registers > QUEUE_SELECT_LIMIT) {
            throw in.failure("queues.registers", registers + " is above " + QUEUE_SELECT_LIMIT);
        }
        int previous = -1;
        for (int i = 0; i < registers; i++) {
            int q = in.u16("queue.index");
            if (q <= previous || q >= QUEUE_SELECT_LIMIT) {
                throw in.failure("queue.index", q + " is out of order or not below " + QUEUE_SELECT_LIMIT);
            }
            previous = q;
            queueVector[q] = checkVector(in, "queue" + q + ".vector", in.u16("queue" + q + ".vector"));
            queueEnabled[q] = in.bool("queue" + q + ".enabled");
            queueDesc[q] = in.u64("queue" + q + ".desc");
            queueAvail[q] = in.u64("queue" + q + ".avail");
            queueUsed[q] = in.u64("queue" + q + ".used");
        }
        int count = in.u16("queues");
        if (count != queues.length) {
            throw in.failure("queues", count + " queues, the destination's device has " + queues.length);
        }
        System.arraycopy(saved, 0, config, 0, CONFIG_SIZE);
        deviceFeatureSelect = loadedDeviceSelect;
        driverFeatureSelect = loadedDriverSelect;
        driverFeatures[0] = features0;
        driverFeatures[1] = features1;
        negotiated = loadedNegotiated;
        queueSelect = loadedQueueSelect;
        busMaster.setEnabled(master);
        busMasterEnabled = master;
        for (int q = 0; q < queues.length; q++) {
            synchronized (queues[q]) {
                queues[q].load(in, "queue" + q, queueDesc[q], queueAvail[q], queueUsed[q]);
            }
        }
        synchronized (irqLock) {
            status = loadedStatus;
            generation = loadedGeneration;
            isr = loadedIsr;
            configVector = loadedConfigVector;
            broken = loadedBroken;
            System.arraycopy(table, 0, msixTable, 0, table.length);
            pending = loadedPending;
            setIntx(loadedIntx);
        }
        // last: the device may raise an interrupt as it loads (a link that changed)
        device.loadState(in);
    }

    private int checkVector(io.guestdma.migration.StateReader in, String field, int vector)
            throws io.guestdma.migration.MigrationFormatException {
        if (vector != NO_VECTOR && vector >= vectors) {
            throw in.failure(field, "vector " + vector + " of " + vectors);
        }
        return vector;
    }

    /**
     * The machine stops (QMP stop, a migration's switchover): the device finishes its work in
     * progress and then leaves guest memory and the interrupt alone until {@link #unpause()}
     * (see {@link VirtioDevice#pause()}); registers stay accessible.
     */
    public void pause() {
        device.pause();
    }

    /** The machine runs again: the device looks at its queues as if notified. */
    public void unpause() {
        device.unpause();
    }

    // ------------------------------------------------------------------ interrupts

    /** Under irqLock. */
    private void setIntx(boolean level) {
        queueInterruptAsserted = level && (isr & 1) != 0 && !msixEnabled();
        if (!level) {
            // Pairs with the fence in interruptQueue (a Dekker handshake): either the device thread
            // sees the line lowered and raises it again, or the driver, reading the used ring after
            // this, sees the used entry the device published before it looked.
            VarHandle.fullFence();
        }
        if (level != intxLevel) {
            intxLevel = level;
            intx.set(level);
        }
    }

    private boolean msixEnabled() {
        return vectors > 0 && (get(config, MSIX_CONTROL, 2) & MSIX_ENABLE) != 0;
    }

    private boolean functionMasked() {
        return !msixEnabled() || (get(config, MSIX_CONTROL, 2) & MSIX_MASK_ALL) != 0;
    }

    private boolean vectorMasked(int vector) {
        return functionMasked() || (msixTable[2 * vector + 1] >>> 32 & 1) != 0;
    }

    private void resetMsixTable() {
        for (int v = 0; v < vectors; v++) {
            msixTable[2 * v] = 0;
            msixTable[2 * v + 1] = 1L << 32; // data 0, vector control: masked
        }
        pending = 0;
    }

    /** Under irqLock: QEMU's virtio_pci_notify. */
    private void signal(int vector) {
        if (msixEnabled()) {
            if (vector != NO_VECTOR) {
                msixNotify(vector);
            }
        } else {
            setIntx((isr & 1) != 0);
        }
    }

    private void msixNotify(int vector) {
        if (vector >= vectors) {
            return;
        }
        if (vectorMasked(vector)) {
            pending |= 1L << vector;
            return;
        }
        long address = msixTable[2 * vector];
        int data = (int) msixTable[2 * vector + 1];
        busMaster.writeInt(address, data);
    }

    /** Called with the capability already updated. */
    private void msixControlWritten(boolean wasMasked) {
        synchronized (irqLock) {
            if (!msixEnabled()) {
                return;
            }
            setIntx(false);
            if (functionMasked() == wasMasked) {
                return;
            }
            for (int v = 0; v < vectors; v++) {
                firePendingIfUnmasked(v);
            }
        }
    }

    private void firePendingIfUnmasked(int vector) {
        if ((pending >>> vector & 1) != 0 && !vectorMasked(vector)) {
            pending &= ~(1L << vector);
            msixNotify(vector);
        }
    }

    /** {@return the window of the MSI-X BAR (BAR1), {@value #MSIX_BAR_SIZE} bytes} */
    public MmioHandler msixBar() {
        return new MmioHandler() {
            @Override
            public long read(long offset, int size) {
                synchronized (irqLock) {
                    if (offset < 16L * vectors) {
                        long entry = msixTable[(int) (offset / 16) * 2 + (int) (offset % 16 / 8)];
                        return (offset & 4) == 0 ? entry & 0xffff_ffffL : entry >>> 32;
                    }
                    if (offset >= PBA && offset < PBA + 8L * ((vectors + 63) / 64)) {
                        return (offset & 4) == 0 ? pending & 0xffff_ffffL : pending >>> 32;
                    }
                    return 0;
                }
            }

            @Override
            public void write(long offset, int size, long value) {
                if (offset >= 16L * vectors || device.runsOnDeviceThread()) {
                    return; // the pending bits are read-only; holes ignore writes
                }
                synchronized (irqLock) {
                    int vector = (int) (offset / 16);
                    int slot = vector * 2 + (int) (offset % 16 / 8);
                    long v = value & 0xffff_ffffL;
                    msixTable[slot] = (offset & 4) == 0 ? msixTable[slot] & ~0xffff_ffffL | v
                            : msixTable[slot] & 0xffff_ffffL | v << 32;
                    firePendingIfUnmasked(vector);
                }
            }

            @Override
            public int minAccessSize() {
                return 4;
            }

            @Override
            public int maxAccessSize() {
                return 4;
            }
        };
    }

    /** {@return whether INTA# is asserted} */
    public boolean intxLevel() {
        synchronized (irqLock) {
            return intxLevel;
        }
    }

    // ------------------------------------------------------------------ what the device sees

    private final class BusImpl implements VirtioDevice.Bus {
        @Override
        public Virtqueue queue(int index) {
            return queues[Objects.checkIndex(index, queues.length)];
        }

        @Override
        public long negotiatedFeatures() {
            return negotiated;
        }

        @Override
        public boolean isLive() {
            synchronized (irqLock) {
                return !broken && (status & STATUS_DRIVER_OK) != 0;
            }
        }

        @Override
        public void interruptQueue(int index) {
            // The used ring entry this interrupt is for was published before; the fence orders that
            // store before the load of the flag, which setIntx(false) clears before the driver's
            // next look at the used ring.
            VarHandle.fullFence();
            if (queueInterruptAsserted) {
                return; // INTx is high and ISR bit 0 set: the locked path would change nothing
            }
            synchronized (irqLock) {
                if (broken) {
                    return;
                }
                isr |= 1;
                signal(queueVector[index]);
            }
        }

        @Override
        public void configChanged() {
            synchronized (irqLock) {
                if (broken || (status & STATUS_DRIVER_OK) == 0) {
                    return;
                }
                isr |= 3;
                generation = (generation + 1) & 0xff;
                signal(configVector);
            }
        }

        @Override
        public void needsReset(String why) {
            synchronized (irqLock) {
                if (broken) {
                    return;
                }
                broken = true;
                if ((negotiated & F_VERSION_1) == 0) {
                    return;
                }
                status |= STATUS_NEEDS_RESET;
                if ((status & STATUS_DRIVER_OK) == 0) {
                    return;
                }
                isr |= 3;
                generation = (generation + 1) & 0xff;
                signal(configVector);
            }
            System.getLogger(VirtioPci.class.getName()).log(System.Logger.Level.DEBUG, "virtio: {0}", why);
        }
    }
}
