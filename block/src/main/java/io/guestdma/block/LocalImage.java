package io.guestdma.block;

import java.util.Objects;
import java.nio.file.Path;

/**
 * A disk image in a local file (or block device), opened by {@link FileChannelBackend} or
 * {@link NativeBackend}.
 *
 * @param path the image file
 */
public record LocalImage(Path path) implements ImageLocation {
    /**
     * Checks the path.
     *
     * @throws NullPointerException if {@code path} is null
     */
    public LocalImage {
        Objects.requireNonNull(path, "path");
    }

    /** {@return the path, as the user wrote it} */
    @Override
    public String toString() {
        return path.toString();
    }
}
