/**
 * The PIIX IDE controller with bus-master DMA, and a small PC-like machine that speaks QEMU's
 * qtest protocol. Disks come from the block layer ({@code io.guestdma.block}).
 */
module io.guestdma.ide {
    requires transitive io.guestdma.block;
    requires com.fasterxml.jackson.databind;
    // sun.misc.Signal: SIGTERM must end the machine with status 0, as libqtest expects of QEMU
    requires jdk.unsupported;
    exports io.guestdma.ide;
    exports io.guestdma.machine;
}
