package io.guestdma.machine;

import java.util.Objects;

/**
 * PCI configuration mechanism #1 for bus 0: the configuration address latch at port 0xcf8 and
 * the data window at 0xcfc-0xcff, with QEMU 7.2's behaviour (hw/pci/pci_host.c).
 *
 * <p>Only a 32-bit write at 0xcf8 loads the latch; reads of 0xcf8-0xcfb return the latch (QEMU
 * returns it unshifted at every offset). A data access at 0xcfc+n reaches register
 * {@code (latch & 0xff) | n} of the function the latch selects, so byte, word and dword accesses
 * all work; with the enable bit (31) clear, or no function there, reads are all ones and writes
 * are dropped.
 */
public final class PciHost {
    /** The configuration address port. */
    public static final int ADDRESS_PORT = 0xcf8;
    /** The first port of the configuration data window. */
    public static final int DATA_PORT = 0xcfc;

    private final PciFunction[] functions = new PciFunction[256];
    private volatile int latch;

    /** Creates a host bridge with no functions attached and the address latch at 0. */
    public PciHost() {
    }

    /**
     * Places a function on bus 0.
     *
     * @param device 0 to 31
     * @param function 0 to 7
     * @param pciFunction its configuration space
     * @throws IllegalArgumentException if the address is out of range or taken
     * @throws NullPointerException if pciFunction is null
     */
    public synchronized void attach(int device, int function, PciFunction pciFunction) {
        Objects.requireNonNull(pciFunction, "pciFunction");
        if (device < 0 || device > 31 || function < 0 || function > 7) {
            throw new IllegalArgumentException("PCI address " + device + "." + function
                    + " is outside 0-31.0-7");
        }
        int devfn = device << 3 | function;
        if (functions[devfn] != null) {
            throw new IllegalArgumentException("PCI address 00:" + device + "." + function + " is taken");
        }
        functions[devfn] = pciFunction;
    }

    /** {@return the current configuration address latch} */
    public int configAddress() {
        return latch;
    }

    /** {@return the function at {@code devfn} (device * 8 + function), or null} */
    synchronized PciFunction function(int devfn) {
        return functions[devfn];
    }

    /** Sets the configuration address latch, as a migration restores it. */
    void restoreConfigAddress(int value) {
        latch = value;
    }

    /** {@return the handler for the address latch, to map at {@link #ADDRESS_PORT} (4 ports)} */
    public PortHandler addressPort() {
        return new PortHandler() {
            @Override
            public int read(int offset, int size) {
                return latch;
            }

            @Override
            public void write(int offset, int size, int value) {
                if (offset == 0 && size == 4) {
                    latch = value;
                }
            }
        };
    }

    /** {@return the handler for the data window, to map at {@link #DATA_PORT} (4 ports)} */
    public PortHandler dataPort() {
        return new PortHandler() {
            @Override
            public int read(int offset, int size) {
                PciFunction f = selected();
                return f == null ? -1 : f.readConfig(register(offset), size);
            }

            @Override
            public void write(int offset, int size, int value) {
                PciFunction f = selected();
                if (f != null) {
                    f.writeConfig(register(offset), size, value);
                }
            }
        };
    }

    private int register(int offset) {
        return (latch | offset) & 0xff;
    }

    private PciFunction selected() {
        int address = latch;
        if (address >= 0 || ((address >>> 16) & 0xff) != 0) {
            return null; // enable bit clear, or a bus behind a bridge we do not have
        }
        return functions[(address >>> 8) & 0xff];
    }
}
