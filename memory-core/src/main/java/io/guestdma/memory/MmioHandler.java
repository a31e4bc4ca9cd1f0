package io.guestdma.memory;

/**
 * A device's register window: what an MMIO region calls for every access that reaches it.
 *
 * <p>The address space only ever calls {@link #read} and {@link #write} with a {@code size} that is
 * a power of two between {@link #minAccessSize()} and {@link #maxAccessSize()}, and with an
 * {@code offset} aligned to that size. Wider or unaligned guest accesses are split (and narrower
 * ones widened, with read-modify-write for writes) by the core, as QEMU's
 * {@code access_with_adjusted_size} does. Values are little-endian: byte {@code i} of the access is
 * bits {@code 8*i .. 8*i+7} of the value.
 *
 * <p>Implementations are called from whatever thread performs the access (a vCPU thread, a DMA
 * completion thread); they provide their own synchronisation.
 */
public interface MmioHandler {
    /**
     * Reads a register.
     *
     * @param offset offset from the start of the region, aligned to {@code size}
     * @param size   1, 2, 4 or 8, within the handler's access sizes
     * @return the value; only the low {@code 8*size} bits are used
     */
    long read(long offset, int size);

    /**
     * Writes a register.
     *
     * @param offset offset from the start of the region, aligned to {@code size}
     * @param size   1, 2, 4 or 8, within the handler's access sizes
     * @param value  the value; only the low {@code 8*size} bits are meaningful
     */
    void write(long offset, int size, long value);

    /** {@return the smallest access the device accepts: 1, 2, 4 or 8 (default 1)} */
    default int minAccessSize() {
        return 1;
    }

    /**
     * {@return the largest access the device accepts: 1, 2, 4 or 8, at least the minimum (default
     * 8)}
     */
    default int maxAccessSize() {
        return 8;
    }
}
