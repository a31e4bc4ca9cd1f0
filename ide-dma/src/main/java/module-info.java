/**
 * The PIIX IDE controller with bus-master DMA, ATA disks and ATAPI CD-ROMs. Disks come from the
 * block layer ({@code io.guestdma.block}); the machine that wires the controller to ports and PCI
 * lives in {@code io.guestdma.machine}.
 */
module io.guestdma.ide {
    requires transitive io.guestdma.block;
    requires transitive io.guestdma.migration;
    exports io.guestdma.ide;
}
