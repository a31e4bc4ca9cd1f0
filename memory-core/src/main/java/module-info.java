/**
 * Guest physical memory for emulators: an address space of RAM, ROM and MMIO regions, the copy
 * path, zero-copy {@code map}/{@code unmap} with a bounded bounce pool, the dirty log, I/O vectors
 * and scatter-gather lists. {@code io.guestdma.memory.posix} holds the operating-system errors the
 * library reports ({@code PosixException} with its {@code Errno}); the raw system calls are internal,
 * exported only to the block layer that drives files and sockets with them.
 */
module io.guestdma.memory {
    // sun.reflect.ReflectionFactory: the FileChannel path's session-less buffers (SessionlessBuffers).
    requires jdk.unsupported;

    exports io.guestdma.memory;
    exports io.guestdma.memory.posix;
    exports io.guestdma.memory.internal to io.guestdma.block, io.guestdma.migration;
}
