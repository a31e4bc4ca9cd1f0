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
    MEMORY_FAULT;

    /**
     * Whether a Throwable caught at an engine boundary leaves the JVM beyond saving: it is rethrown
     * after the transfer has been cleaned up. Everything else (exceptions, assertion failures,
     * a stack overflow that has already unwound) is the backend's or handler's fault and becomes
     * an I/O error for the guest.
     */
    static boolean fatal(Throwable t) {
        return t instanceof VirtualMachineError && !(t instanceof StackOverflowError);
    }
}
