package io.guestdma.ide;

/**
 * A level-triggered interrupt line from the IDE controller to the interrupt controller (ISA IRQ 14
 * for the primary channel, 15 for the secondary).
 */
@FunctionalInterface
public interface IrqLine {

    /**
     * Drives the line. Calls may repeat the current level; implementations must tolerate that.
     *
     * @param level {@code true} to raise the line, {@code false} to lower it
     */
    void set(boolean level);
}
