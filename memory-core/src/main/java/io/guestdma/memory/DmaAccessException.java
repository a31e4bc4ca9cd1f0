package io.guestdma.memory;

/**
 * A DMA transfer could not reach guest memory: thrown by {@link DmaStream#mapNext} and
 * {@link DmaPacket#map} when a range is a device whose handler failed (or refused a re-entrant
 * access), and by {@link DmaPacket#map} when a packet would need a fallback buffer larger than its
 * bound. When it is thrown nothing is left mapped and no bounce space is held. A device turns it
 * into the error its hardware reports (a bus-master error bit, a DMA error status).
 */
public final class DmaAccessException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The guest address of the range that failed. */
    private final long address;
    /** The length of that range in bytes. */
    private final long length;

    /**
     * Creates the exception.
     *
     * @param message what failed, with the guest address
     * @param address the guest address of the range that failed
     * @param length  the length of that range
     */
    public DmaAccessException(String message, long address, long length) {
        super(message);
        this.address = address;
        this.length = length;
    }

    /** {@return the guest address of the range that could not be accessed} */
    public long address() {
        return address;
    }

    /** {@return the length of that range in bytes} */
    public long length() {
        return length;
    }
}
