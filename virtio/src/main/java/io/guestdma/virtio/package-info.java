/**
 * virtio devices: {@link io.guestdma.virtio.Virtqueue} (the split ring), {@link io.guestdma.virtio.VirtioPci}
 * (the PCI transport a machine maps into its BARs and configuration space) and
 * {@link io.guestdma.virtio.VirtioBlk} (the block device).
 *
 * <p>Everything the guest controls (ring addresses, sizes, indices, descriptors, register values)
 * is checked: a guest that breaks the ring gets {@code DEVICE_NEEDS_RESET}, as the virtio
 * specification says, never an exception in the caller of a register access, a hang or a write
 * outside the buffers it offered.
 */
package io.guestdma.virtio;
