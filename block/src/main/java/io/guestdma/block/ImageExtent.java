package io.guestdma.block;

import io.guestdma.memory.IoVector;

import java.io.IOException;

/**
 * The fixed facts about an open image that every request is checked against: its name for
 * messages (a path, or an NBD URI), its size and whether it may be written. Requests are
 * validated here, before any system call or network request, so that a bad offset never turns
 * into a write past the end that silently grows the image.
 */
record ImageExtent(String name, long size, boolean readOnly) {
    void checkRead(long offset, long length) throws IOException {
        checkRange("read", offset, length);
    }

    /**
     * Checks a vectored read: the range, and that no segment is read-only, since the kernel
     * writes through raw addresses (or session-less buffers) that bypass FFM's read-only check.
     */
    void checkReadInto(long offset, IoVector iov) throws IOException {
        checkRead(offset, iov.size());
        for (int i = 0; i < iov.count(); i++) {
            if (iov.isReadOnly(i)) {
                throw new IllegalArgumentException("readv into " + name + ": segment " + i
                        + " of the I/O vector is read-only (a TO_DEVICE mapping or ROM?); nothing was read");
            }
        }
    }

    void checkWrite(String what, long offset, long length) throws IOException {
        if (readOnly) {
            throw new ReadOnlyImageException(name, what);
        }
        checkRange(what, offset, length);
    }

    private void checkRange(String what, long offset, long length) throws IOException {
        if (offset < 0 || length < 0 || offset > size || length > size - offset) {
            throw new IOException(what + " of " + length + " bytes at offset " + offset
                    + " is outside image " + name + " (" + size + " bytes)");
        }
    }

    IOException truncated(long offset) {
        return new IOException("image " + name + " ended at byte " + offset + " although it had " + size
                + " bytes when opened; was it truncated while in use?");
    }
}
