package io.guestdma.machine;

import io.guestdma.migration.DeviceState;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;

/**
 * The {@link PcMachine}'s own migration section, {@code "pc"}, loaded before any device's: the
 * configuration space of every PCI function on bus 0 (BARs, command register, interrupt line, the
 * PIIX3's PIRQ routing registers, the IDE function's registers), the configuration address latch,
 * the reset control register, the virtual clock and the fw_cfg selection. Loading it decodes
 * what the guest would have decoded: the bus-master window and bus-master enable of the IDE, the
 * virtio BARs, the PIRQ routes.
 *
 * <p>Interrupt levels are not restored from here: every line is driven by a device (the IDE's by
 * its channels, PCI INTx through the PIRQ router), and each device section drives its line to
 * the saved level when it loads, so the levels follow from the devices; {@link InterruptLevels}
 * checks them last.
 */
final class MachineState implements DeviceState {
    private final PcMachine machine;
    private final FwCfg fwCfg;

    MachineState(PcMachine machine, FwCfg fwCfg) {
        this.machine = machine;
        this.fwCfg = fwCfg;
    }

    @Override
    public String sectionId() {
        return "pc";
    }

    @Override
    public int version() {
        return 1;
    }

    @Override
    public void save(StateWriter out) {
        if (machine.runState().equals("running")) {
            throw new IllegalStateException("the machine must be stopped before its state is saved");
        }
        out.u32(Integer.toUnsignedLong(machine.pci().configAddress()));
        out.u8(machine.resetControl());
        out.u64(machine.clock().nanos());
        fwCfg.save(out);
        int count = 0;
        for (int devfn = 0; devfn < 256; devfn++) {
            count += machine.pci().function(devfn) != null ? 1 : 0;
        }
        out.u16(count);
        for (int devfn = 0; devfn < 256; devfn++) {
            PciFunction f = machine.pci().function(devfn);
            if (f != null) {
                out.u8(devfn).bytes(f.saveConfig());
            }
        }
    }

    @Override
    public void load(StateReader in, int version) throws MigrationFormatException {
        if (version != 1) {
            throw new MigrationFormatException("section pc: unknown version " + version + " (this build reads 1)");
        }
        try {
            int latch = (int) in.u32("pci.configAddress");
            int resetControl = in.u8("resetControl");
            if ((resetControl & ~0x02) != 0) {
                throw in.failure("resetControl", "only bit 1 of the reset control register is stored");
            }
            long clock = in.u64("clock");
            if (Long.compareUnsigned(clock, machine.clock().nanos()) < 0 || clock < 0) {
                throw in.failure("clock", clock + " ns is before the destination's clock ("
                        + machine.clock().nanos() + " ns): virtual time never goes back");
            }
            fwCfg.load(in);
            int count = in.u16("pci.functions");
            int expected = 0;
            for (int devfn = 0; devfn < 256; devfn++) {
                expected += machine.pci().function(devfn) != null ? 1 : 0;
            }
            if (count != expected) {
                throw in.failure("pci.functions", count + " PCI functions, the destination has " + expected);
            }
            int previous = -1;
            for (int i = 0; i < count; i++) {
                int devfn = in.u8("pci.devfn");
                PciFunction f = machine.pci().function(devfn);
                if (devfn <= previous || f == null) {
                    throw in.failure("pci.devfn", String.format("the destination has no function at 00:%02x.%x "
                            + "(or it came out of order)", devfn >> 3, devfn & 7));
                }
                previous = devfn;
                String field = String.format("pci.00:%02x.%x.config", devfn >> 3, devfn & 7);
                f.loadConfig(in.bytes(field, 256), in, field);
            }
            machine.pci().restoreConfigAddress(latch);
            machine.resetControl(resetControl);
            machine.clock().advanceTo(clock);
        } catch (MigrationFormatException | RuntimeException e) {
            machine.reset();
            throw e;
        }
    }
}
