/**
 * virtio 1.x for device models: split virtqueues read and written through the DMA API (ring
 * indices through ordered accessors on cached RAM views, buffers as scatter-gather lists through
 * the block layer's {@code DmaBlockIo}), the virtio-pci modern transport (capabilities, common
 * configuration, notify, ISR, INTx and MSI-X), virtio-blk over any {@code BlockBackend}, and
 * virtio-net over any {@code NetBackend}.
 */
module io.guestdma.virtio {
    requires transitive io.guestdma.block;
    requires transitive io.guestdma.net;
    requires transitive io.guestdma.migration;
    exports io.guestdma.virtio;
}
