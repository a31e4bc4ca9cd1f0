package io.guestdma.machine;

/**
 * A device's window of I/O ports on a {@link PortBus}.
 *
 * <p>The bus calls a handler for each piece of a guest access that starts inside the handler's
 * window. As in QEMU's memory core, a piece may run past the end of the window (a 4-byte read of
 * a 1-byte register hands the register all 4 bytes): the handler decides what those bytes read as.
 * Handlers that do not {@linkplain #acceptsUnaligned() accept unaligned accesses} only ever see
 * naturally aligned pieces (a 4-byte access at offset 2 arrives as two 2-byte pieces, the second
 * one possibly belonging to the next window).
 */
public interface PortHandler {

    /**
     * Reads a piece of an access.
     *
     * @param offset port minus the window's first port; non-negative
     * @param size 1, 2 or 4
     * @return the value, little-endian; bits above {@code size} bytes are ignored
     */
    int read(int offset, int size);

    /**
     * Writes a piece of an access.
     *
     * @param offset port minus the window's first port; non-negative
     * @param size 1, 2 or 4
     * @param value the value, little-endian; only the low {@code size} bytes count
     */
    void write(int offset, int size, int value);

    /**
     * Tells whether the handler takes accesses of any alignment whole (QEMU's port lists do:
     * an {@code inw} at an odd port reaches the device as one 16-bit access). If false, the bus
     * splits every access at natural alignment first.
     *
     * @return whether unaligned accesses are passed through whole
     */
    default boolean acceptsUnaligned() {
        return false;
    }
}
