/**
 * vhost-user back ends: a guestdma {@code VirtioDevice} (virtio-blk over any {@code BlockBackend})
 * served to a VMM such as QEMU over a Unix socket. The VMM shares guest RAM as file descriptors,
 * which become RAM regions of the back end's own {@code GuestMemory}; the device's virtqueues run
 * over them, woken by the VMM's kick eventfds, and signal its call eventfds.
 */
module io.guestdma.vhostuser {
    requires transitive io.guestdma.virtio;
    exports io.guestdma.vhostuser;
}
