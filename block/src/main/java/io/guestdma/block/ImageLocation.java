package io.guestdma.block;

import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Where a disk image lives, as a user writes it after {@code file=}: a local file, or an NBD
 * export in QEMU's URI syntax ({@code nbd://HOST[:PORT]/EXPORT},
 * {@code nbd+unix:///EXPORT?socket=PATH}).
 */
public sealed interface ImageLocation permits LocalImage, NbdAddress {
    /**
     * Reads a location: a string with an NBD scheme ({@code nbd}, {@code nbd+tcp},
     * {@code nbd+unix}, or QEMU's older {@code nbd:HOST:PORT} form) is an {@link NbdAddress};
     * anything else is a path to a local file.
     *
     * @param text what the user wrote
     * @return the location
     * @throws IllegalArgumentException if {@code text} is empty, names an NBD export in a form
     *                                  {@link NbdAddress#parse} rejects, or is not a valid path
     * @throws NullPointerException     if {@code text} is null
     */
    static ImageLocation parse(String text) {
        Objects.requireNonNull(text, "text");
        if (text.isEmpty()) {
            throw new IllegalArgumentException("an image location must not be empty");
        }
        if (NbdAddress.looksLikeNbd(text)) {
            return NbdAddress.parse(text);
        }
        try {
            return new LocalImage(Path.of(text));
        } catch (InvalidPathException e) {
            throw new IllegalArgumentException("'" + text + "' is not a valid image path: " + e.getReason(), e);
        }
    }
}
