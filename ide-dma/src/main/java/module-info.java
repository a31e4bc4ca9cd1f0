/**
 * The vectored block layer, the PIIX IDE controller with bus-master DMA, and a small PC-like
 * machine that speaks QEMU's qtest protocol.
 */
module io.guestdma.ide {
    requires transitive io.guestdma.memory;
    exports io.guestdma.block;
    exports io.guestdma.ide;
    exports io.guestdma.machine;
}
