package io.guestdma.memory;

/**
 * Which way the bytes of a DMA transfer flow, seen from the device.
 *
 * <p>The map API is for reads <em>or</em> writes, never read-modify-write (the 2009 review's
 * rule): a {@link #TO_DEVICE} mapping is read-only, and a {@link #FROM_DEVICE} bounce mapping is
 * not filled from the guest, so reading it before writing yields nothing meaningful.
 */
public enum DmaDirection {
    /** The device reads guest memory (a disk write, a network transmit). */
    TO_DEVICE,
    /** The device writes guest memory (a disk read, a network receive). */
    FROM_DEVICE
}
