package io.guestdma.migration;

/**
 * What the migration source asks of the machine around the switchover. The source calls
 * {@link #stopAndDrain()} once the remaining dirty RAM fits the downtime limit, sends the last
 * dirty pages and the devices' sections, and then either leaves the machine stopped (the
 * destination has it now) or, when the migration fails or is cancelled after the stop, calls
 * {@link #resume()}.
 */
public interface Switchover {

    /**
     * Stops the vCPUs and devices and waits until no DMA is in flight: every mapping a device held
     * is unmapped (its writes are in the dirty log) and devices waiting for bounce space are parked,
     * so RAM and device state no longer change.
     *
     * @throws Exception if the machine cannot stop; the migration fails and the source calls
     *     {@link #resume()}
     */
    void stopAndDrain() throws Exception;

    /**
     * Lets the machine run again after a failed or cancelled switchover.
     *
     * @throws Exception if it cannot; the source reports it with the migration's failure
     */
    void resume() throws Exception;
}
