/**
 * Guest physical memory for emulators: an address space of RAM, ROM and MMIO regions, the copy
 * path, zero-copy {@code map}/{@code unmap} with a bounded bounce pool, the dirty log, I/O vectors
 * and scatter-gather lists.
 */
module io.guestdma.memory {
    exports io.guestdma.memory;
    exports io.guestdma.memory.posix;
}
