package io.guestdma.memory;

/**
 * The outcome of a copy-path access ({@link GuestMemory#read(long, java.lang.foreign.MemorySegment)},
 * {@link GuestMemory#write(long, java.lang.foreign.MemorySegment)} and their {@code byte[]} forms). Guests touch unassigned space legitimately (probing, broken drivers), so this is a value
 * and not an exception, like QEMU's {@code MemTxResult}.
 */
public enum AccessResult {
    /** Every byte was backed by RAM, ROM or an MMIO handler. */
    OK,
    /**
     * At least one byte fell into unassigned space (or past the top of the 64-bit address space):
     * those bytes read as zero and writes to them were dropped. The other bytes were accessed
     * normally.
     */
    UNASSIGNED;

    /**
     * Combines two results of parts of one access.
     *
     * @param other the result of another part
     * @return {@link #UNASSIGNED} if either part was, else {@link #OK}
     */
    public AccessResult and(AccessResult other) {
        return this == UNASSIGNED || other == UNASSIGNED ? UNASSIGNED : OK;
    }
}
