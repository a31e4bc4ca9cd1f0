package io.guestdma.virtio;

/**
 * A virtio device type (block, network, ...) as a transport drives it: what it offers, its
 * configuration space, and what it does when the driver notifies a queue. The transport owns the
 * queues, the status and the interrupts; the device reaches them through the {@link Bus} it gets
 * in {@link #attach}.
 *
 * <p>Threads: the transport calls these methods from the guest's register accesses (a vCPU
 * thread), one at a time. A device that does its work on threads of its own says so through
 * {@link #runsOnDeviceThread()}, so that the transport refuses register accesses those threads
 * make through DMA (which could otherwise wait for themselves).
 */
public interface VirtioDevice {
    /**
     * What the transport gives a device: its queues, the negotiated features, and the ways to tell
     * the driver something.
     */
    interface Bus {
        /**
         * {@return queue {@code index}; callers synchronise on the returned queue while using it}
         *
         * @param index 0 to {@link VirtioDevice#queueCount()} - 1
         * @throws IndexOutOfBoundsException if index is out of range
         */
        Virtqueue queue(int index);

        /** {@return the features the driver accepted (a subset of the device's)} */
        long negotiatedFeatures();

        /** {@return whether the driver has set DRIVER_OK and the device is not disabled or broken} */
        boolean isLive();

        /**
         * Signals the driver that queue {@code index} has used buffers (ISR bit 0, then the
         * queue's MSI-X vector or INTx). Call without holding the queue's lock.
         *
         * @param index the queue
         */
        void interruptQueue(int index);

        /**
         * Marks the device broken (DEVICE_NEEDS_RESET, a configuration interrupt), as QEMU's
         * {@code virtio_error}: later notifications are ignored until the driver resets it. Call
         * without holding a queue's lock.
         *
         * @param why what the driver did wrong, for the log
         */
        void needsReset(String why);

        /**
         * Signals the driver that the device configuration changed (QEMU's
         * {@code virtio_notify_config}): the configuration generation moves on and, once the
         * driver has set DRIVER_OK, ISR bits 0-1 are set and the configuration vector or INTx
         * fires. Does nothing before DRIVER_OK or on a broken device. Call without holding a
         * queue's lock.
         */
        void configChanged();
    }

    /** {@return the virtio device ID (2 for a block device)} */
    int deviceId();

    /** {@return the feature bits the device offers, VIRTIO_F_VERSION_1 and the ring features included} */
    long features();

    /**
     * The features a legacy driver gets when it acknowledges VIRTIO_F_BAD_FEATURE, a sign that it
     * does not negotiate properly (QEMU's bad_features): what the device can assume any driver
     * handles. The transport keeps only the bits the device offers.
     *
     * @return feature bits in the low 32; the default is none
     */
    default long legacyBadFeatures() {
        return 0;
    }

    /**
     * Feature bits offered to a legacy driver only, on top of {@link #features()}' low 32 bits
     * (QEMU's legacy_features of the device class, e.g. virtio-net's GSO).
     *
     * @return feature bits in the low 32; the default is none
     */
    default long legacyOnlyFeatures() {
        return 0;
    }

    /**
     * Quiesces the device, as QEMU's VM stop does: work in progress finishes, then the device
     * touches guest memory no more and raises no interrupt until {@link #unpause()}; notifications
     * and backend events that come meanwhile wait (frames in the backend's bounded queue). The
     * machine calls it when it stops, and before a migration saves the device. The default does
     * nothing, for a device that only works inside the notify that asks for it.
     */
    default void pause() {
    }

    /**
     * Ends {@link #pause()}: the device looks at its queues and backend again, as if notified.
     * The default does nothing.
     */
    default void unpause() {
    }

    /** {@return the number of queues} */
    int queueCount();

    /** {@return the size of every queue after reset, a power of two up to {@link Virtqueue#MAX_SIZE}} */
    int queueSize();

    /**
     * {@return the size of queue {@code index} after reset; the default is {@link #queueSize()} for
     * every queue (a device whose queues differ, such as virtio-net's smaller control queue,
     * overrides it)}
     *
     * @param index 0 to {@link #queueCount()} - 1
     */
    default int queueSize(int index) {
        return queueSize();
    }

    /** {@return the size of the device configuration space in bytes} */
    int configSize();

    /**
     * Reads the device configuration space.
     *
     * @param offset from 0; offset + size &lt;= {@link #configSize()}
     * @param size   1, 2 or 4
     * @return the little-endian value
     */
    int configRead(int offset, int size);

    /**
     * Writes the device configuration space; read-only fields ignore it.
     *
     * @param offset from 0; offset + size &lt;= {@link #configSize()}
     * @param size   1, 2 or 4
     * @param value  the little-endian value
     */
    void configWrite(int offset, int size, int value);

    /**
     * Connects the device to its transport; called once, before anything else.
     *
     * @param bus the transport
     */
    void attach(Bus bus);

    /**
     * The driver set or cleared DRIVER_OK, or (with {@code features}) FEATURES_OK was accepted.
     *
     * @param status the new device status
     */
    void statusChanged(int status);

    /**
     * The driver notified queue {@code index}: process what it made available (now or on a device
     * thread). Never throws.
     *
     * @param index the queue, 0 to {@link #queueCount()} - 1
     */
    void queueNotified(int index);

    /**
     * Stops all work and forgets every request in flight (waiting for requests that are moving
     * data to finish it), so that the transport can reset the queues. Afterwards the device is
     * as after power-on, except for its backend.
     */
    void reset();

    /**
     * Stops the work of one queue and forgets its requests in flight (VIRTIO_F_RING_RESET's
     * queue_reset), so that the transport can reset that queue. The default resets the whole
     * device's work.
     *
     * @param index the queue, 0 to {@link #queueCount()} - 1
     */
    default void queueReset(int index) {
        reset();
    }

    /** {@return whether the calling thread is one of the device's own worker threads} */
    default boolean runsOnDeviceThread() {
        return false;
    }

    /**
     * Writes the device's own migration state after the transport's: what it keeps beyond its
     * configuration registers, such as requests it took from a queue and has not completed. The
     * transport calls it while the device is stopped (no request running). The default writes
     * nothing.
     *
     * @param out where the fields go
     * @throws IllegalStateException if a request is still running
     */
    default void saveState(io.guestdma.migration.StateWriter out) {
    }

    /**
     * Reads what {@link #saveState} wrote, after the transport restored the negotiated features,
     * the queues and their indices: requests the source had taken are found again by their head
     * index in the (migrated) rings and resubmitted when the device next runs. The default reads
     * nothing.
     *
     * @param in the fields, untrusted
     * @throws io.guestdma.migration.MigrationFormatException if a value is out of range
     */
    default void loadState(io.guestdma.migration.StateReader in) throws io.guestdma.migration.MigrationFormatException {
    }
}
