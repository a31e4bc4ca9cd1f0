package io.guestdma.block;

/**
 * How a disk image is opened.
 *
 * @param readOnly open for reading only; writes, discards and flushes of written data are refused
 * @param direct   bypass the host page cache ({@code O_DIRECT}); honoured by {@link NativeBackend},
 *                 which bounces misaligned guest buffers through an aligned buffer. {@link
 *                 FileChannelBackend} refuses it, because the JDK gives no control over buffer
 *                 alignment for gathering calls
 * @param lock     take an advisory whole-file lock ({@code flock}: exclusive for read-write,
 *                 shared for read-only), so two emulators cannot write one image at once
 */
public record BlockOptions(boolean readOnly, boolean direct, boolean lock) {
    /** {@return read-write, through the page cache, locked: what an emulator normally wants} */
    public static BlockOptions defaults() {
        return new BlockOptions(false, false, true);
    }

    /**
     * {@return a copy with {@code readOnly} replaced}
     *
     * @param value whether to open read-only
     */
    public BlockOptions withReadOnly(boolean value) {
        return new BlockOptions(value, direct, lock);
    }

    /**
     * {@return a copy with {@code direct} replaced}
     *
     * @param value whether to bypass the page cache
     */
    public BlockOptions withDirect(boolean value) {
        return new BlockOptions(readOnly, value, lock);
    }

    /**
     * {@return a copy with {@code lock} replaced}
     *
     * @param value whether to lock the image
     */
    public BlockOptions withLock(boolean value) {
        return new BlockOptions(readOnly, direct, value);
    }
}
