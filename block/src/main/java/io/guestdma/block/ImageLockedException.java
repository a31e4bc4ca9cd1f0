package io.guestdma.block;

import java.io.IOException;
import java.nio.file.Path;

/**
 * An image could not be opened because another open holds a conflicting lock on it, most likely
 * another emulator (or another backend in this one) using the same disk.
 */
public final class ImageLockedException extends IOException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception with a message naming the image and the lock that was wanted.
     *
     * @param image  the image
     * @param shared whether a shared (read-only) lock was wanted
     */
    public ImageLockedException(Path image, boolean shared) {
        super("image " + image + " is locked by another user (wanted a " + (shared ? "shared" : "write")
                + " lock); is another emulator using it? Open it with BlockOptions.withLock(false) only if "
                + "you know the other user does not write");
    }
}
