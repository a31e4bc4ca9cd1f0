package io.guestdma.ide;

/** How the bus-master engine moves sector data between guest memory and the block backend. */
public enum DmaMode {
    /**
     * Zero-copy: the PRD table becomes a scatter-gather list, which is mapped chunk by chunk into an
     * I/O vector handed to the backend's vectored read/write, then unmapped.
     */
    MAP,
    /**
     * The pre-2009 path: each chunk of up to 256 sectors goes through one heap buffer, copied to or
     * from guest memory piece by piece and read or written by the backend as a single buffer.
     */
    COPY
}
