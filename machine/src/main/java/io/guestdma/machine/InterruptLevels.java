package io.guestdma.machine;

import io.guestdma.migration.DeviceState;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;

/**
 * The machine's last section, {@code "pc-irq"}: the level of each of the 16 ISA interrupt lines.
 * The lines are not set from it: every device section drives its own line as it loads (the IDE
 * channels IRQ 14 and 15, the virtio functions through the PIRQ routes the {@code "pc"} section
 * restored), so by the time this section loads the levels follow from the devices. It checks
 * them: a line that disagrees means a stream whose sections do not belong together, and the
 * destination must not run with an interrupt the guest will never see, or one it cannot clear.
 */
final class InterruptLevels implements DeviceState {
    private final PcMachine machine;

    InterruptLevels(PcMachine machine) {
        this.machine = machine;
    }

    @Override
    public String sectionId() {
        return "pc-irq";
    }

    @Override
    public int version() {
        return 1;
    }

    @Override
    public void save(StateWriter out) {
        int levels = 0;
        for (int line = 0; line < 16; line++) {
            levels |= machine.irqLevel(line) ? 1 << line : 0;
        }
        out.u16(levels);
    }

    @Override
    public void load(StateReader in, int version) throws MigrationFormatException {
        if (version != 1) {
            throw new MigrationFormatException("section pc-irq: unknown version " + version + " (this build reads 1)");
        }
        int saved = in.u16("levels");
        for (int line = 0; line < 16; line++) {
            boolean high = (saved >>> line & 1) != 0;
            if (high != machine.irqLevel(line)) {
                throw in.failure("levels", "IRQ " + line + " was " + (high ? "high" : "low")
                        + " on the source but is " + (high ? "low" : "high")
                        + " after the devices loaded: the sections do not belong together");
            }
        }
    }
}
