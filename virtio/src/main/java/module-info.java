/**
 * virtio 1.x for device models: split virtqueues read and written through the DMA API (ring
 * indices through ordered accessors on cached RAM views, buffers as scatter-gather lists through
 * the block layer's {@code DmaBlockIo}), the virtio-pci modern transport (capabilities, common
 * configuration, notify, ISR, INTx and MSI-X), and virtio-blk over any {@code BlockBackend}.
 */
module io.guestdma.virtio {
    requires transitive io.guestdma.block;
    exports io.guestdma.virtio;
}
