package io.guestdma.memory;

/**
 * The outcome of a guest memory access, QEMU's {@code MemTxResult}: the copy path
 * ({@link GuestMemory#read(long, java.lang.foreign.MemorySegment)},
 * {@link GuestMemory#write(long, java.lang.foreign.MemorySegment)} and their {@code byte[]} forms),
 * {@link GuestMemory#unmap} (the write-back of a bounce buffer) and {@link MapFailed}. Guests touch
 * unassigned space legitimately (probing, broken drivers) and device handlers can fail, so this is
 * a value and not an exception.
 *
 * <p>The constants are ordered from best to worst; {@link #and} keeps the worse of two.
 */
public enum AccessResult {
    /** Every byte was backed by RAM, ROM or an MMIO handler that completed. */
    OK,
    /**
     * At least one byte fell into unassigned space (or past the top of the 64-bit address space):
     * those bytes read as zero and writes to them were dropped. The other bytes were accessed
     * normally. QEMU's {@code MEMTX_DECODE_ERROR}, which its devices mostly ignore, as ours may.
     */
    UNASSIGNED,
    /**
     * An MMIO handler failed part of the access (it threw), or the access was refused because it
     * re-entered a device that was already busy with an access on the same thread (see
     * {@link ReentrancyGuard}). The bytes of the failed region part read as zero; writes to it may
     * have reached the device partly. QEMU's {@code MEMTX_ERROR}/{@code MEMTX_ACCESS_ERROR}: a
     * device that sees it reports an error to the guest (a bus-master or DMA error bit).
     */
    DEVICE_ERROR;

    /**
     * Combines two results of parts of one access.
     *
     * @param other the result of another part
     * @return the worse of the two ({@link #DEVICE_ERROR} over {@link #UNASSIGNED} over {@link #OK})
     * @throws NullPointerException if other is null
     */
    public AccessResult and(AccessResult other) {
        return other.ordinal() > ordinal() ? other : this;
    }

    /** {@return whether the access failed in a way a device must report ({@link #DEVICE_ERROR})} */
    public boolean failed() {
        return this == DEVICE_ERROR;
    }
}
