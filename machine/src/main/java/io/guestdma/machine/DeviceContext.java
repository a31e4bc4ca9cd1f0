package io.guestdma.machine;

import io.guestdma.ide.IrqLine;
import io.guestdma.ide.PiixIde;
import io.guestdma.memory.GuestMemory;
import io.guestdma.net.NetBackend;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * What a {@link DeviceType} sees of the {@link PcMachine} it is being added to: guest memory, the
 * port space, the PCI host, the ISA interrupt lines, the IDE controller, and the drives, each of
 * which one device at most may claim. Valid only while the machine is being built.
 */
public final class DeviceContext {
    private final PcMachine machine;
    private final Map<String, BlockNode> drives = new LinkedHashMap<>();
    /** Drives in use, mapped to why: a device took it, or an {@code if=ide} drive is connected. */
    private final Map<String, Boolean> claimedAutomatically = new HashMap<>();
    private final Set<String> slots = new HashSet<>();
    /** What occupies a place, for QEMU's "in use by" messages. */
    private final Map<String, String> owners = new HashMap<>();
    private final Map<String, NetBackend> netdevs = new LinkedHashMap<>();
    private final Set<String> claimedNetdevs = new HashSet<>();
    private int defaultMacs;

    DeviceContext(PcMachine machine) {
        this.machine = machine;
    }

    /** Adds a device's migration section after those added before it (see {@link PcMachine#deviceStates()}). */
    void addState(io.guestdma.migration.DeviceState section) {
        machine.addState(section);
    }

    /** Adds an opened drive under its id or node name. */
    void addDrive(BlockNode node) {
        drives.put(node.name(), node);
    }

    /** {@return the drive or node with that name, claimed or not} */
    BlockNode drive(String name) {
        return drives.get(name);
    }

    /** Records which drive an IDE place holds, for the machine's error events. */
    void ideAttached(int channel, int unit, BlockNode node) {
        machine.ideAttached(channel, unit, node);
    }

    /** Marks an {@code if=ide} drive as connected by the machine itself. */
    void connectAutomatically(String name) {
        claimedAutomatically.put(name, true);
    }

    /** Adds an opened network backend under its id. */
    void addNetdev(String id, NetBackend backend) {
        netdevs.put(id, backend);
    }

    /**
     * Takes a network backend for a NIC: the {@code netdev=} property.
     *
     * @param driver the NIC's driver name, for the message
     * @param id the netdev's id
     * @return the backend
     * @throws IllegalArgumentException as QEMU words it, if no netdev has that id or another NIC
     *     already uses it
     * @throws NullPointerException if an argument is null
     */
    public NetBackend claimNetdev(String driver, String id) {
        Objects.requireNonNull(driver, "driver");
        NetBackend backend = netdevs.get(Objects.requireNonNull(id, "id"));
        if (backend == null) {
            throw new IllegalArgumentException("Property '" + driver + ".netdev' can't find value '" + id + "'");
        }
        if (!claimedNetdevs.add(id)) {
            throw new IllegalArgumentException("Property '" + driver + ".netdev' can't take value '" + id
                    + "', it's in use");
        }
        return backend;
    }

    /**
     * {@return the next default MAC address, QEMU's 52:54:00:12:34:56 with the last byte counting up
     * for each NIC created without {@code mac=}}
     */
    public byte[] nextDefaultMac() {
        return new byte[] {0x52, 0x54, 0x00, 0x12, 0x34, (byte) (0x56 + defaultMacs++)};
    }

    /** {@return the guest's physical address space} */
    public GuestMemory memory() {
        return machine.memory();
    }

    /** {@return the I/O port space} */
    public PortBus ports() {
        return machine.ports();
    }

    /** {@return the PCI host; devices on bus 0 attach here} */
    public PciHost pci() {
        return machine.pci();
    }

    /** {@return the virtual clock for the device's timers (qtest's clock_step and clock_set move it)} */
    public VirtualClock clock() {
        return machine.clock();
    }

    /** {@return the PIIX IDE controller (the function at 00:01.1)} */
    public PiixIde ide() {
        return machine.ide();
    }

    /**
     * {@return an ISA interrupt line of the machine, as {@code irq_intercept_in ioapic} reports it}
     *
     * @param line 0 to 15
     * @throws IllegalArgumentException if line is outside 0..15
     */
    public IrqLine isaIrq(int line) {
        if (line < 0 || line > 15) {
            throw new IllegalArgumentException("IRQ line must be 0..15, was " + line);
        }
        return level -> machine.irq(line, level);
    }

    /**
     * {@return the INTx pin of a PCI function on bus 0, routed as QEMU's pc machine does: swizzled
     * onto PIRQA-D by slot, then to the ISA interrupt the PIIX3's registers 0x60-0x63 name}
     *
     * @param slot the device number, 0 to 31
     * @param pin 1 (INTA#) to 4 (INTD#)
     * @throws IllegalArgumentException if slot or pin is out of range
     */
    public IrqLine pciIntx(int slot, int pin) {
        if (slot < 0 || slot > 31 || pin < 1 || pin > 4) {
            throw new IllegalArgumentException("PCI INTx " + slot + "/" + pin + " is outside slot 0-31, pin 1-4");
        }
        return machine.pciIntx(slot, pin);
    }

    /**
     * Takes a drive for a device: the {@code drive=} property.
     *
     * @param driver the device's driver name, for the message
     * @param name the drive's id or node name
     * @return the drive
     * @throws IllegalArgumentException as QEMU words it, if no drive has that name or another
     *     device (or the machine, for an {@code if=ide} drive) already uses it
     * @throws NullPointerException if an argument is null
     */
    public BlockNode claimDrive(String driver, String name) {
        Objects.requireNonNull(driver, "driver");
        BlockNode node = drives.get(Objects.requireNonNull(name, "name"));
        if (node == null) {
            throw new IllegalArgumentException("Property '" + driver + ".drive' can't find value '" + name + "'");
        }
        Boolean automatic = claimedAutomatically.putIfAbsent(name, false);
        if (automatic != null) {
            throw new IllegalArgumentException(automatic
                    ? "Drive '" + name + "' is already in use because it has been automatically connected to "
                            + "another device (did you need 'if=none' in the drive options?)"
                    : "Drive '" + name + "' is already in use by another device");
        }
        return node;
    }

    /**
     * Takes a place on a bus: a unit of an IDE channel, a PCI slot and function.
     *
     * @param bus the bus's name, e.g. {@code ide.0} or {@code pci.0}
     * @param address the place on it
     * @return true if the place was free and is now taken, false if it was taken already
     */
    public boolean claimSlot(String bus, String address) {
        return slots.add(bus + "/" + address);
    }

    /**
     * Takes a place on a bus for a named device, so that a later claim of it can say who has it.
     *
     * @param bus the bus's name
     * @param address the place on it
     * @param owner what QEMU calls the device there, e.g. {@code PIIX3,id=(null)}
     * @return true if the place was free and is now taken, false if it was taken already
     */
    public boolean claimSlot(String bus, String address, String owner) {
        if (!claimSlot(bus, address)) {
            return false;
        }
        owners.put(bus + "/" + address, owner);
        return true;
    }

    /**
     * {@return what occupies a place, as given to {@link #claimSlot(String, String, String)}, or
     * null}
     *
     * @param bus the bus's name
     * @param address the place on it
     */
    public String slotOwner(String bus, String address) {
        return owners.get(bus + "/" + address);
    }

    /**
     * {@return whether a place on a bus is taken}
     *
     * @param bus the bus's name
     * @param address the place on it
     */
    public boolean slotTaken(String bus, String address) {
        return slots.contains(bus + "/" + address);
    }

    /**
     * Has the machine close something when it closes (after the devices are stopped), such as a
     * device's thread pool.
     *
     * @param resource what to close
     * @throws NullPointerException if resource is null
     */
    public void closeWithMachine(AutoCloseable resource) {
        machine.closeLater(Objects.requireNonNull(resource, "resource"));
    }

    /**
     * Has the machine run something when it resets (QMP {@code system_reset}, port 0xcf9), after
     * its own devices have reset.
     *
     * @param action the reset action
     * @throws NullPointerException if action is null
     */
    public void onReset(Runnable action) {
        machine.onReset(Objects.requireNonNull(action, "action"));
    }

    /**
     * Has the machine run something when it stops (QMP {@code stop}, a migration's switchover,
     * waiting for an incoming migration), such as a device quiescing: once it returns, the device
     * must not touch guest memory until the machine continues.
     *
     * @param action the pause action
     * @throws NullPointerException if action is null
     */
    public void onPause(Runnable action) {
        machine.onPause(Objects.requireNonNull(action, "action"));
    }

    /**
     * Has the machine run something when it continues after a stop (QMP {@code cont}), such as a
     * device retrying the requests its stop policy held.
     *
     * @param action the resume action
     * @throws NullPointerException if action is null
     */
    public void onResume(Runnable action) {
        machine.onResume(Objects.requireNonNull(action, "action"));
    }

    /**
     * Reports that a drive's backend failed a device's request: the machine sends QEMU's
     * BLOCK_IO_ERROR and, for a stop policy, stops (run state io-error) until {@code cont}.
     *
     * @param node the drive the device took with {@link #claimDrive}
     * @param write whether the request wrote (else read)
     * @param action what the device did with it: REPORT, IGNORE or STOP
     * @param cause the backend's failure, whose errno the event names; null for EIO
     * @throws NullPointerException if node or action is null
     */
    public void driveFailed(BlockNode node, boolean write, io.guestdma.block.ErrorPolicy action, Throwable cause) {
        Objects.requireNonNull(node, "node");
        machine.driveFailed(node, write, Objects.requireNonNull(action, "action"), cause);
    }
}
