package io.guestdma.machine;

/** Receives the interrupt lines of a {@link PcMachine} as they change. */
@FunctionalInterface
public interface IrqListener {

    /**
     * Called once per change of a line's level, in order. May run on any thread (the thread whose
     * register access or I/O completion moved the line) while the machine holds its interrupt
     * lock: do not call back into the machine from here.
     *
     * @param line the ISA IRQ number (14 for the primary IDE channel, 15 for the secondary)
     * @param level the new level
     */
    void irqChanged(int line, boolean level);
}
