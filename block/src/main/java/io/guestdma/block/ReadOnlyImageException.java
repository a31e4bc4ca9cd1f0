package io.guestdma.block;

import java.io.IOException;
import java.nio.file.Path;

/** A write, discard or other modification was asked of an image opened read-only. */
public final class ReadOnlyImageException extends IOException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception with a message naming the image and the refused operation.
     *
     * @param image     the image
     * @param operation what was attempted, for the message
     */
    public ReadOnlyImageException(Path image, String operation) {
        this(image.toString(), operation);
    }

    /**
     * Creates the exception with a message naming the image and the refused operation.
     *
     * @param image     the image's name (a path or an NBD URI), for the message
     * @param operation what was attempted, for the message
     */
    public ReadOnlyImageException(String image, String operation) {
        super(operation + " refused: image " + image + " is open read-only");
    }
}
