package io.guestdma.machine;

import io.guestdma.ide.DriveConfig;
import io.guestdma.block.ErrorPolicy;
import java.util.Set;

/**
 * QEMU's {@code ide-hd} and {@code ide-cd}: a hard disk or an ATAPI CD-ROM drive on a channel of
 * the PIIX IDE controller. Properties: {@code drive} (required for a disk; a CD-ROM drive without
 * one is empty), {@code bus} ({@code ide.0} or {@code ide.1}; absent: the first channel with a free
 * unit), {@code unit} (0 master, 1 slave; absent: the master if free, else the slave),
 * {@code serial}, {@code model}, {@code ver}.
 *
 * @param name {@code ide-hd} or {@code ide-cd}
 * @param cdrom whether it is the CD-ROM drive
 */
record IdeDeviceType(String name, boolean cdrom) implements DeviceType {
    /** {@code ide-hd}. */
    static final IdeDeviceType DISK = new IdeDeviceType("ide-hd", false);
    /** {@code ide-cd}. */
    static final IdeDeviceType CDROM = new IdeDeviceType("ide-cd", true);

    private static final Set<String> PROPERTIES = Set.of("drive", "bus", "unit", "serial", "model", "ver");

    @Override
    public Set<String> properties() {
        return PROPERTIES;
    }

    @Override
    public void realize(DeviceProperties p, DeviceContext machine) {
        String driveName = p.string("drive");
        if (driveName == null && !cdrom) {
            throw new IllegalArgumentException("No drive specified");
        }
        String bus = p.string("bus");
        long unitValue = p.integer("unit", -1);
        int channel;
        if (bus == null) {
            channel = hasFreeUnit(machine, "ide.0") ? 0 : 1;
            if (!hasFreeUnit(machine, "ide.1") && channel == 1) {
                throw new IllegalArgumentException("No 'IDE' bus found for device '" + name + "'");
            }
        } else if (bus.equals("ide.0") || bus.equals("ide.1")) {
            channel = bus.charAt(4) - '0';
        } else {
            throw new IllegalArgumentException("Bus '" + bus + "' not found");
        }
        String busName = "ide." + channel;
        if (unitValue >= 2 || unitValue < -1) {
            throw new IllegalArgumentException("Can't create IDE unit " + unitValue + ", bus supports only 2 units");
        }
        int unit = unitValue >= 0 ? (int) unitValue : machine.slotTaken(busName, "0") ? 1 : 0;
        if (!machine.claimSlot(busName, Integer.toString(unit))) {
            throw new IllegalArgumentException("IDE unit " + unit + " is in use");
        }
        BlockNode node = driveName == null ? null : machine.claimDrive(name, driveName);
        attach(p, machine, channel, unit, node);
    }

    /**
     * Attaches the drive at a place already claimed: what {@link #realize} does after checking,
     * and what the machine does for an {@code if=ide} drive.
     */
    void attach(DeviceProperties p, DeviceContext machine, int channel, int unit, BlockNode node) {
        ErrorPolicy read = node == null ? ErrorPolicy.REPORT : node.readPolicy();
        ErrorPolicy write = node == null ? ErrorPolicy.REPORT : node.writePolicy();
        DriveConfig drive = cdrom ? DriveConfig.cdrom(node == null ? null : node.backend())
                : DriveConfig.of(node.backend());
        drive = drive.withPolicies(read, write).withModel(orDefault(p.string("model"), drive.model()),
                orDefault(p.string("ver"), drive.firmware()));
        String serial = p.string("serial");
        if (serial != null) {
            drive = drive.withSerial(serial);
        }
        machine.ide().attach(channel, unit, drive);
        machine.ideAttached(channel, unit, node);
    }

    private static boolean hasFreeUnit(DeviceContext machine, String bus) {
        return !machine.slotTaken(bus, "0") || !machine.slotTaken(bus, "1");
    }

    private static String orDefault(String value, String fallback) {
        return value == null ? fallback : value;
    }
}
