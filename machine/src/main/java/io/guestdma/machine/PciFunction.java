package io.guestdma.machine;

import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import java.util.Arrays;
import java.util.Objects;

/**
 * The 256-byte configuration space of one PCI function, with the write masks and power-on values
 * QEMU 7.2 gives a plain PCI device (hw/pci/pci.c).
 *
 * <p>Read-only: vendor, device, revision, class code, header type, status, subsystem IDs and every
 * BAR that was not declared. Writable: the command register's I/O, memory, bus-master, SERR and
 * INTx-disable bits (mask 0x0507), the cache line size, the interrupt line, the base address of
 * declared I/O and memory BARs (low bits fixed: size probing by writing all ones reads back
 * {@code ~(size - 1)} with the type bits, as on real hardware; a 64-bit BAR's upper half is
 * fully writable) and all device-specific registers 0x40-0xff, unless a device keeps those
 * itself ({@link Builder#deviceRegisters}).
 *
 * <p>Not thread-safe: the machine serialises configuration cycles.
 */
public final class PciFunction {
    /** Configuration register offsets used by the machine. */
    public static final int VENDOR_ID = 0x00;
    /** The command register (16 bits). */
    public static final int COMMAND = 0x04;
    /** The status register (16 bits). */
    public static final int STATUS = 0x06;
    /** The first base address register; BAR n is at {@code BAR0 + 4 * n}. */
    public static final int BAR0 = 0x10;
    /** Command register bit: the function decodes its I/O BARs. */
    public static final int COMMAND_IO = 0x1;
    /** Command register bit: the function decodes its memory BARs. */
    public static final int COMMAND_MEMORY = 0x2;
    /** Command register bit: the function may master the bus (DMA). */
    public static final int COMMAND_MASTER = 0x4;

    /** Command register bit: the function does not assert INTx. */
    public static final int COMMAND_INTX_DISABLE = 0x400;
    /** The capability pointer register. */
    public static final int CAPABILITY_POINTER = 0x34;
    /** The interrupt pin register (1 = INTA#). */
    public static final int INTERRUPT_PIN = 0x3d;
    /** The first device-specific register. */
    public static final int DEVICE_REGISTERS = 0x40;

    private static final int SIZE = 256;
    private static final int COMMAND_WRITABLE = 0x0507;
    private static final int STATUS_CAPABILITIES = 0x10;

    /**
     * A device that keeps its own registers 0x40-0xff (capabilities with side effects, such as
     * MSI-X or virtio's PCI configuration access): accesses there go to it instead of the plain
     * masked bytes.
     */
    public interface DeviceRegisters {
        /**
         * Reads registers.
         *
         * @param register 0x40 to 0xff
         * @param size 1 to 4, not past 0xff
         * @return the little-endian value
         */
        int read(int register, int size);

        /**
         * Writes registers (the device applies its own write masks).
         *
         * @param register 0x40 to 0xff
         * @param size 1 to 4, not past 0xff
         * @param value the little-endian value
         */
        void write(int register, int size, int value);
    }

    /** Hears configuration writes, with where they went. */
    @FunctionalInterface
    public interface WriteListener {
        /**
         * A configuration write happened (after it took effect).
         *
         * @param register the first register written
         * @param size bytes written
         */
        void written(int register, int size);
    }

    private final byte[] powerOn;
    private final byte[] writable;
    private final int[] ioBarSizes;
    private final long[] memoryBarSizes;
    private final DeviceRegisters deviceRegisters;
    private final byte[] config = new byte[SIZE];
    private WriteListener listener = (register, size) -> { };

    private PciFunction(Builder b) {
        powerOn = b.powerOn.clone();
        writable = b.writable.clone();
        ioBarSizes = b.ioBarSizes.clone();
        memoryBarSizes = b.memoryBarSizes.clone();
        deviceRegisters = b.deviceRegisters;
        reset();
    }

    /**
     * Starts describing a function.
     *
     * @param vendorId the 16-bit vendor ID
     * @param deviceId the 16-bit device ID
     * @return a builder with QEMU's defaults: revision 0, class 0, header type 0, status 0,
     *     subsystem 1af4:1100 (Red Hat / QEMU), no BARs
     */
    public static Builder builder(int vendorId, int deviceId) {
        return new Builder(vendorId, deviceId);
    }

    /** Describes a {@link PciFunction}: identity, power-on values and BARs. */
    public static final class Builder {
        private final byte[] powerOn = new byte[SIZE];
        private final byte[] writable = new byte[SIZE];
        private final int[] ioBarSizes = new int[6];
        private final long[] memoryBarSizes = new long[6];
        private DeviceRegisters deviceRegisters;

        private Builder(int vendorId, int deviceId) {
            put(powerOn, VENDOR_ID, 2, vendorId);
            put(powerOn, 0x02, 2, deviceId);
            put(powerOn, 0x2c, 2, 0x1af4);
            put(powerOn, 0x2e, 2, 0x1100);
            put(writable, COMMAND, 2, COMMAND_WRITABLE);
            writable[0x0c] = (byte) 0xff; // cache line size
            writable[0x3c] = (byte) 0xff; // interrupt line
            Arrays.fill(writable, 0x40, SIZE, (byte) 0xff);
        }

        /**
         * Sets the class code.
         *
         * @param classCode base class, subclass and programming interface, as 0xBBSSPP
         * @return this builder
         */
        public Builder classCode(int classCode) {
            put(powerOn, 0x09, 3, classCode);
            return this;
        }

        /**
         * Sets the revision ID.
         *
         * @param revision the revision ID
         * @return this builder
         */
        public Builder revision(int revision) {
            powerOn[0x08] = (byte) revision;
            return this;
        }

        /**
         * Sets the header type.
         *
         * @param headerType the header type byte; 0x80 marks function 0 of a multi-function device
         * @return this builder
         */
        public Builder headerType(int headerType) {
            powerOn[0x0e] = (byte) headerType;
            return this;
        }

        /**
         * Sets the status register.
         *
         * @param status the status register's power-on (and only) value
         * @return this builder
         */
        public Builder status(int status) {
            put(powerOn, STATUS, 2, status);
            return this;
        }

        /**
         * Sets a device-specific register's power-on value.
         *
         * @param register 0x40 to 0xff
         * @param value the byte
         * @return this builder
         * @throws IllegalArgumentException if the register is in the standard header
         */
        public Builder initialByte(int register, int value) {
            if (register < 0x40 || register >= SIZE) {
                throw new IllegalArgumentException(String.format(
                        "register 0x%x is not device-specific (0x40-0xff)", register));
            }
            powerOn[register] = (byte) value;
            return this;
        }

        /**
         * Declares an I/O BAR. It powers on unassigned (base 0, bit 0 set).
         *
         * @param bar 0 to 5
         * @param size the window size in ports, a power of two from 4 to 256
         * @return this builder
         * @throws IllegalArgumentException if bar or size is out of range
         */
        public Builder ioBar(int bar, int size) {
            if (bar < 0 || bar > 5) {
                throw new IllegalArgumentException("BAR index must be 0..5, was " + bar);
            }
            if (size < 4 || size > 256 || Integer.bitCount(size) != 1) {
                throw new IllegalArgumentException("I/O BAR size must be a power of two from 4 to 256, was "
                        + size);
            }
            ioBarSizes[bar] = size;
            put(powerOn, BAR0 + 4 * bar, 4, 1);
            put(writable, BAR0 + 4 * bar, 4, ~(size - 1));
            return this;
        }

        /**
         * Declares a memory BAR. It powers on at base 0 with its type bits; a 64-bit BAR takes
         * the next BAR's register for its upper half.
         *
         * @param bar 0 to 5 (0 to 4 for a 64-bit BAR)
         * @param size the window size in bytes, a power of two from 16 to 2<sup>31</sup> (32-bit)
         *     or 2<sup>62</sup> (64-bit)
         * @param is64 whether the BAR is 64 bits wide
         * @param prefetchable whether it is marked prefetchable
         * @return this builder
         * @throws IllegalArgumentException if bar or size is out of range
         */
        public Builder memoryBar(int bar, long size, boolean is64, boolean prefetchable) {
            if (bar < 0 || bar > (is64 ? 4 : 5)) {
                throw new IllegalArgumentException("BAR index must be 0.." + (is64 ? 4 : 5) + ", was " + bar);
            }
            if (size < 16 || Long.bitCount(size) != 1 || size > (is64 ? 1L << 62 : 1L << 31)) {
                throw new IllegalArgumentException("memory BAR size must be a power of two from 16, was " + size);
            }
            memoryBarSizes[bar] = size;
            put(powerOn, BAR0 + 4 * bar, 4, (is64 ? 0x4 : 0) | (prefetchable ? 0x8 : 0));
            put(writable, BAR0 + 4 * bar, 4, (int) ~(size - 1) & ~0xf);
            if (is64) {
                memoryBarSizes[bar + 1] = -1; // the upper half
                put(writable, BAR0 + 4 * bar + 4, 4, (int) (~(size - 1) >>> 32));
            }
            return this;
        }

        /**
         * Sets the subsystem IDs.
         *
         * @param vendor the subsystem vendor ID
         * @param id the subsystem ID
         * @return this builder
         */
        public Builder subsystem(int vendor, int id) {
            put(powerOn, 0x2c, 2, vendor);
            put(powerOn, 0x2e, 2, id);
            return this;
        }

        /**
         * Sets the interrupt pin.
         *
         * @param pin 1 (INTA#) to 4 (INTD#), or 0 for none
         * @return this builder
         */
        public Builder interruptPin(int pin) {
            powerOn[INTERRUPT_PIN] = (byte) pin;
            return this;
        }

        /**
         * Gives registers 0x40-0xff to the device and points the capability list into them (the
         * status register's capability bit is set).
         *
         * @param firstCapability the capability pointer (0x34), 0x40 to 0xfc
         * @param registers the device's registers
         * @return this builder
         * @throws IllegalArgumentException if the pointer is outside 0x40-0xfc
         * @throws NullPointerException if registers is null
         */
        public Builder deviceRegisters(int firstCapability, DeviceRegisters registers) {
            if (firstCapability < DEVICE_REGISTERS || firstCapability > 0xfc) {
                throw new IllegalArgumentException(String.format("capability pointer 0x%x is outside 0x40-0xfc",
                        firstCapability));
            }
            deviceRegisters = Objects.requireNonNull(registers, "registers");
            powerOn[CAPABILITY_POINTER] = (byte) firstCapability;
            powerOn[STATUS] |= STATUS_CAPABILITIES;
            return this;
        }

        /** {@return the function, in its power-on state} */
        public PciFunction build() {
            return new PciFunction(this);
        }
    }

    /**
     * Reads configuration registers, little-endian.
     *
     * @param register 0 to 0xff
     * @param size 1 to 4 bytes; bytes past 0xff are not read (they come back as zero)
     * @return the value
     * @throws IllegalArgumentException if the register or size is out of range
     */
    public int readConfig(int register, int size) {
        checkAccess(register, size);
        int n = Math.min(size, SIZE - register);
        if (deviceRegisters != null && register + n > DEVICE_REGISTERS) {
            int low = Math.max(0, DEVICE_REGISTERS - register);
            int value = low == 0 ? 0 : readConfig(register, low);
            return value | deviceRegisters.read(register + low, n - low) << (8 * low);
        }
        int value = 0;
        for (int i = 0; i < n; i++) {
            value |= (config[register + i] & 0xff) << (8 * i);
        }
        return value;
    }

    /**
     * Writes configuration registers through the write mask; read-only bits keep their value.
     * Bytes past 0xff are dropped. The {@linkplain #onConfigWrite listener} runs afterwards.
     *
     * @param register 0 to 0xff
     * @param size 1 to 4 bytes
     * @param value the value, little-endian
     * @throws IllegalArgumentException if the register or size is out of range
     */
    public void writeConfig(int register, int size, int value) {
        checkAccess(register, size);
        int n = Math.min(size, SIZE - register);
        for (int i = 0; i < n; i++) {
            int at = register + i;
            if (deviceRegisters != null && at >= DEVICE_REGISTERS) {
                deviceRegisters.write(at, n - i, value >>> (8 * i));
                break;
            }
            int mask = writable[at];
            config[at] = (byte) ((config[at] & ~mask) | ((value >>> (8 * i)) & mask));
        }
        listener.written(register, n);
    }

    /**
     * Sets what runs after every configuration write (the machine re-decodes BARs and the
     * bus-master bit there). Replaces any earlier listener.
     *
     * @param listener the callback
     * @throws NullPointerException if listener is null
     */
    public void onConfigWrite(Runnable listener) {
        Objects.requireNonNull(listener, "listener");
        this.listener = (register, size) -> listener.run();
    }

    /**
     * Sets what runs after every configuration write, told which registers were written.
     * Replaces any earlier listener.
     *
     * @param listener the callback
     * @throws NullPointerException if listener is null
     */
    public void onConfigWrite(WriteListener listener) {
        this.listener = Objects.requireNonNull(listener, "listener");
    }

    /**
     * Where a memory BAR decodes, by QEMU's rules (pci_bar_address): only while the command
     * register enables memory space, never wrapping, a 32-bit BAR never reaching 0xffffffff.
     *
     * @param bar a BAR declared with {@link Builder#memoryBar}
     * @return the window's first address, or -1 if it decodes nowhere
     * @throws IllegalArgumentException if the BAR was not declared as a memory BAR
     */
    public long memoryBarBase(int bar) {
        if (bar < 0 || bar > 5 || memoryBarSizes[bar] <= 0) {
            throw new IllegalArgumentException("BAR " + bar + " is not a memory BAR of this function");
        }
        if ((command() & COMMAND_MEMORY) == 0) {
            return -1;
        }
        long size = memoryBarSizes[bar];
        int low = readConfig(BAR0 + 4 * bar, 4);
        boolean is64 = (low & 0x4) != 0;
        long base = Integer.toUnsignedLong(low) & ~0xfL;
        if (is64) {
            base |= (long) readConfig(BAR0 + 4 * bar + 4, 4) << 32;
        }
        base &= ~(size - 1);
        long last = base + size - 1;
        if (Long.compareUnsigned(last, base) <= 0 || last == -1 || (!is64 && last >= 0xffff_ffffL)) {
            return -1;
        }
        return base;
    }

    /**
     * {@return the window size, in bytes, of a memory BAR}
     *
     * @param bar a declared memory BAR
     * @throws IllegalArgumentException if the BAR was not declared as a memory BAR
     */
    public long memoryBarSize(int bar) {
        if (bar < 0 || bar > 5 || memoryBarSizes[bar] <= 0) {
            throw new IllegalArgumentException("BAR " + bar + " is not a memory BAR of this function");
        }
        return memoryBarSizes[bar];
    }

    /** {@return the command register} */
    public int command() {
        return readConfig(COMMAND, 2);
    }

    /**
     * Where an I/O BAR decodes, by QEMU's rules (pci_bar_address): only while the command
     * register enables I/O space, never at base 0, and never when the window would reach port
     * 0xffffffff.
     *
     * @param bar a BAR declared with {@link Builder#ioBar}
     * @return the first port of the window, or -1 if it decodes nowhere; a base above 0xffff is
     *     returned as is (it is outside the port space, so nothing reaches it)
     * @throws IllegalArgumentException if the BAR was not declared as an I/O BAR
     */
    public long ioBarBase(int bar) {
        if (bar < 0 || bar > 5 || ioBarSizes[bar] == 0) {
            throw new IllegalArgumentException("BAR " + bar + " is not an I/O BAR of this function");
        }
        if ((command() & COMMAND_IO) == 0) {
            return -1;
        }
        long size = ioBarSizes[bar];
        long base = Integer.toUnsignedLong(readConfig(BAR0 + 4 * bar, 4)) & ~(size - 1);
        long last = base + size - 1;
        if (base == 0 || last >= 0xffff_ffffL) {
            return -1;
        }
        return base;
    }

    /**
     * {@return the window size, in ports, of an I/O BAR}
     *
     * @param bar a declared I/O BAR
     * @throws IllegalArgumentException if the BAR was not declared as an I/O BAR
     */
    public int ioBarSize(int bar) {
        if (bar < 0 || bar > 5 || ioBarSizes[bar] == 0) {
            throw new IllegalArgumentException("BAR " + bar + " is not an I/O BAR of this function");
        }
        return ioBarSizes[bar];
    }

    /** {@return a copy of the configuration bytes the function holds itself, for its machine's migration section} */
    byte[] saveConfig() {
        return config.clone();
    }

    /**
     * Replaces the configuration with saved bytes and runs the write listener over all of it, so
     * that the machine decodes BARs and the command register as after the guest's own writes.
     * Only bits the guest could have written may differ from the power-on values: a section from
     * a different device, or one that sets a read-only bit, is refused before anything changes.
     * Registers a function's device holds ({@link Builder#deviceRegisters}) are its device's to
     * migrate and keep their value here.
     *
     * @param bytes {@value #SIZE} bytes
     * @param in the reader they came from, for the error
     * @param field the field's name, for the error
     * @throws MigrationFormatException if the length is wrong or a read-only bit differs
     */
    void loadConfig(byte[] bytes, StateReader in, String field) throws MigrationFormatException {
        if (bytes.length != SIZE) {
            throw in.failure(field, bytes.length + " bytes of configuration, not " + SIZE);
        }
        int end = deviceRegisters == null ? SIZE : DEVICE_REGISTERS;
        for (int i = 0; i < end; i++) {
            if (((bytes[i] ^ powerOn[i]) & ~writable[i] & 0xff) != 0) {
                throw in.failure(field, String.format("register 0x%02x is 0x%02x, but only bits 0x%02x of its "
                        + "power-on 0x%02x can change", i, bytes[i] & 0xff, writable[i] & 0xff, powerOn[i] & 0xff));
            }
        }
        System.arraycopy(bytes, 0, config, 0, end);
        listener.written(0, SIZE);
    }

    /** Restores the power-on configuration (the listener does not run). */
    public void reset() {
        System.arraycopy(powerOn, 0, config, 0, SIZE);
    }

    private static void checkAccess(int register, int size) {
        if (register < 0 || register >= SIZE) {
            throw new IllegalArgumentException(String.format(
                    "configuration register 0x%x is outside 0-0xff", register));
        }
        if (size < 1 || size > 4) {
            throw new IllegalArgumentException("configuration access size must be 1 to 4, was " + size);
        }
    }

    private static void put(byte[] bytes, int at, int size, int value) {
        for (int i = 0; i < size; i++) {
            bytes[at + i] = (byte) (value >>> (8 * i));
        }
    }
}
