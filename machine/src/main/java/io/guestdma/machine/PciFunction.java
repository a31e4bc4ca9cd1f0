package io.guestdma.machine;

import java.util.Arrays;
import java.util.Objects;

/**
 * The 256-byte configuration space of one PCI function, with the write masks and power-on values
 * QEMU 7.2 gives a plain PCI device (hw/pci/pci.c).
 *
 * <p>Read-only: vendor, device, revision, class code, header type, status, subsystem IDs and every
 * BAR that was not declared. Writable: the command register's I/O, memory, bus-master, SERR and
 * INTx-disable bits (mask 0x0507), the cache line size, the interrupt line, the base address of
 * declared I/O BARs (low bits fixed: size probing by writing all ones reads back
 * {@code ~(size - 1) | 1}, as on real hardware) and all device-specific registers 0x40-0xff.
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

    private static final int SIZE = 256;
    private static final int COMMAND_WRITABLE = 0x0507;

    private final byte[] powerOn;
    private final byte[] writable;
    private final int[] ioBarSizes;
    private final byte[] config = new byte[SIZE];
    private Runnable listener = () -> { };

    private PciFunction(Builder b) {
        powerOn = b.powerOn.clone();
        writable = b.writable.clone();
        ioBarSizes = b.ioBarSizes.clone();
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
        int value = 0;
        for (int i = 0; i < size && register + i < SIZE; i++) {
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
        for (int i = 0; i < size && register + i < SIZE; i++) {
            int at = register + i;
            int mask = writable[at];
            config[at] = (byte) ((config[at] & ~mask) | ((value >>> (8 * i)) & mask));
        }
        listener.run();
    }

    /**
     * Sets what runs after every configuration write (the machine re-decodes BARs and the
     * bus-master bit there). Replaces any earlier listener.
     *
     * @param listener the callback
     * @throws NullPointerException if listener is null
     */
    public void onConfigWrite(Runnable listener) {
        this.listener = Objects.requireNonNull(listener, "listener");
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
