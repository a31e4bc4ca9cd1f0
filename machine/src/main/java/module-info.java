/**
 * A small PC-like machine (RAM, port I/O, PCI, PIIX IDE, virtio-blk-pci) that speaks QEMU's qtest
 * protocol and QMP, so that it can stand in for QEMU under libqtest. Devices come from the device
 * modules ({@code io.guestdma.ide}, {@code io.guestdma.virtio}); this module depends on them, never
 * the other way round.
 */
module io.guestdma.machine {
    requires transitive io.guestdma.ide;
    requires transitive io.guestdma.virtio;
    requires transitive io.guestdma.migration;
    requires com.fasterxml.jackson.databind;
    // sun.misc.Signal: SIGTERM must end the machine with status 0, as libqtest expects of QEMU
    requires jdk.unsupported;
    exports io.guestdma.machine;
}
