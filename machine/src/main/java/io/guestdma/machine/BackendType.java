package io.guestdma.machine;

/** Which block backend opens a drive's image ({@code backend=} of {@code -drive}). */
public enum BackendType {
    /** {@code io.guestdma.block.FileChannelBackend}: gathering and scattering FileChannel I/O. */
    FILE_CHANNEL,
    /** {@code io.guestdma.block.NativeBackend}: preadv/pwritev through FFM downcalls. */
    NATIVE,
    /**
     * {@code io.guestdma.block.NbdBackend}: an NBD export ({@code file=nbd://...}); implied by
     * the location, never chosen with {@code backend=}.
     */
    NBD
}
