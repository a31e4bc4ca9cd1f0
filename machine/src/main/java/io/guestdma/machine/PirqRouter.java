package io.guestdma.machine;

import io.guestdma.ide.IrqLine;

/**
 * The PIIX3's PCI interrupt router, as QEMU 7.2's pc machine wires it: the INTx pins of the PCI
 * slots are swizzled onto the four PIRQ lines (pin A of slot {@code s} is PIRQ
 * {@code (s - 1) & 3}, pin B the next one, ...), and the ISA bridge's registers 0x60-0x63 route
 * PIRQA-D to ISA interrupts (a value of 16 or more, e.g. the power-on 0x80, routes nowhere). An
 * ISA line is high while any PCI pin routed to it is; the router only drives the lines it routes.
 */
final class PirqRouter {
    /** The ISA bridge's first routing register (PIRQA). */
    static final int PIRQ_ROUTE = 0x60;

    private final PciFunction isaBridge;
    private final PcMachine machine;
    private final int[] asserted = new int[4];
    private final boolean[] driven = new boolean[16];

    PirqRouter(PciFunction isaBridge, PcMachine machine) {
        this.isaBridge = isaBridge;
        this.machine = machine;
    }

    /**
     * {@return the INTx pin of a PCI function}
     *
     * @param slot the PCI device number, 0 to 31
     * @param pin 1 (INTA#) to 4 (INTD#)
     */
    IrqLine pin(int slot, int pin) {
        int pirq = (pin - 1 + slot - 1) & 3;
        boolean[] level = new boolean[1];
        return high -> {
            synchronized (this) {
                if (level[0] == high) {
                    return;
                }
                level[0] = high;
                asserted[pirq] += high ? 1 : -1;
                update();
            }
        };
    }

    /** After a write to the ISA bridge's configuration: re-route if 0x60-0x63 changed. */
    synchronized void configWritten(int register, int size) {
        if (register < PIRQ_ROUTE + 4 && PIRQ_ROUTE < register + size) {
            update();
        }
    }

    /** After a machine reset, when the routing registers are back to 0x80. */
    synchronized void reset() {
        update();
    }

    private void update() {
        boolean[] want = new boolean[16];
        boolean[] routed = new boolean[16];
        for (int p = 0; p < 4; p++) {
            int irq = isaBridge.readConfig(PIRQ_ROUTE + p, 1);
            if (irq < 16) {
                routed[irq] = true;
                want[irq] |= asserted[p] > 0;
            }
        }
        for (int irq = 0; irq < 16; irq++) {
            if ((routed[irq] || driven[irq]) && want[irq] != driven[irq]) {
                driven[irq] = want[irq];
                machine.irq(irq, want[irq]);
            }
        }
    }
}
