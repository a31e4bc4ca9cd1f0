package io.guestdma.block;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The fixed facts about an open image that every request is checked against: its name for
 * messages, its size and whether it may be written. Requests are validated here, before any
 * system call, so that a bad offset never turns into a write past the end that silently grows
 * the image.
 */
record ImageExtent(Path path, long size, boolean readOnly) {
    void checkRead(long offset, long length) throws IOException {
        checkRange("read", offset, length);
    }

    void checkWrite(String what, long offset, long length) throws IOException {
        if (readOnly) {
            throw new ReadOnlyImageException(path, what);
        }
        checkRange(what, offset, length);
    }

    private void checkRange(String what, long offset, long length) throws IOException {
        if (offset < 0 || length < 0 || offset > size || length > size - offset) {
            throw new IOException(what + " of " + length + " bytes at offset " + offset
                    + " is outside image " + path + " (" + size + " bytes)");
        }
    }

    IOException truncated(long offset) {
        return new IOException("image " + path + " ended at byte " + offset + " although it had " + size
                + " bytes when opened; was it truncated while in use?");
    }
}
