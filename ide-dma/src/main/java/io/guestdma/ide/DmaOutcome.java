package io.guestdma.ide;

/** How a block operation ended, in the terms the ATA layer distinguishes (QEMU's ret codes). */
enum DmaOutcome {
    /** Completed (ret 0). */
    OK,
    /** The backend failed (a negative errno): the drive's error policy decides. */
    FAILED,
    /** The guest asked for something invalid, e.g. a TRIM range past the end (-EINVAL). */
    INVALID,
    /**
     * Guest memory failed the transfer: a device's MMIO handler failed (or refused a re-entrant
     * access) while the bus master read or wrote it. Not the disk's fault, so no error policy
     * applies: the command ends with a bus-master error.
     */
    MEMORY_FAULT
}
