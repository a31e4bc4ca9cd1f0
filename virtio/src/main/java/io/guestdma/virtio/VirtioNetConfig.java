package io.guestdma.virtio;

/**
 * How a {@link VirtioNet} is set up; the defaults ({@link #defaults()}) are QEMU 7.2's
 * {@code virtio-net-pci} queue sizes with a worker thread and zero-copy receive and transmit.
 *
 * @param rxQueueSize  the receive queue's size after reset, a power of two up to
 *                     {@value Virtqueue#MAX_SIZE} (QEMU's rx_queue_size, 256)
 * @param txQueueSize  the transmit queue's size after reset, likewise (QEMU: 256)
 * @param inlineNotify true: a notification of the transmit, receive or control queue is processed
 *                     on the notifying thread before the notify returns (a qtest machine, where
 *                     the client must see its effect at once, and the benchmarks); false: the
 *                     device's worker thread processes it
 * @param copyPath     true: frames go through a heap buffer between the backend and guest memory
 *                     (the emulators' pre-zero-copy way, kept for comparison, as
 *                     {@link VirtioBlkConfig#copyPath()}); false: the guest's buffers are mapped
 *                     as one {@link io.guestdma.memory.DmaPacket}
 */
public record VirtioNetConfig(int rxQueueSize, int txQueueSize, boolean inlineNotify, boolean copyPath) {
    /**
     * Validates the configuration.
     *
     * @throws IllegalArgumentException if a queue size is not a power of two from 1 to
     *                                  {@value Virtqueue#MAX_SIZE}
     */
    public VirtioNetConfig {
        for (int size : new int[] {rxQueueSize, txQueueSize}) {
            if (size < 1 || size > Virtqueue.MAX_SIZE || Integer.bitCount(size) != 1) {
                throw new IllegalArgumentException("queue size must be a power of two up to " + Virtqueue.MAX_SIZE
                        + ", was " + size);
            }
        }
    }

    /** {@return queues of 256, a worker thread, zero copy} */
    public static VirtioNetConfig defaults() {
        return new VirtioNetConfig(256, 256, false, false);
    }

    /**
     * {@return this configuration with the given queue sizes}
     *
     * @param rx the receive queue's size
     * @param tx the transmit queue's size
     * @throws IllegalArgumentException if a size is invalid
     */
    public VirtioNetConfig withQueueSizes(int rx, int tx) {
        return new VirtioNetConfig(rx, tx, inlineNotify, copyPath);
    }

    /**
     * {@return this configuration with notifications processed inline or by the worker}
     *
     * @param inline whether a notify processes its queue before it returns
     */
    public VirtioNetConfig withInlineNotify(boolean inline) {
        return new VirtioNetConfig(rxQueueSize, txQueueSize, inline, copyPath);
    }

    /**
     * {@return this configuration with the copy path on or off}
     *
     * @param copy whether frames go through a heap buffer instead of mapped guest memory
     */
    public VirtioNetConfig withCopyPath(boolean copy) {
        return new VirtioNetConfig(rxQueueSize, txQueueSize, inlineNotify, copy);
    }
}
