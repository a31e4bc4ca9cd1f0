package io.guestdma.block;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.internal.Posix;
import io.guestdma.memory.posix.PosixException;

import java.io.IOException;
import java.nio.file.Path;

/**
 * An advisory {@code flock} on an image, held through a descriptor of its own for as long as the
 * backend is open. Both backends lock the same way, so a FileChannel emulator and a native one
 * exclude each other too. (flock, unlike fcntl locks, is not dropped when some other descriptor of
 * the same file is closed in this process.)
 */
final class ImageLock implements AutoCloseable {
    private final int fd;

    private ImageLock(int fd) {
        this.fd = fd;
    }

    static ImageLock acquire(Path image, boolean shared) throws IOException {
        int fd = Posix.open(image, Posix.O_RDONLY, 0);
        try {
            Posix.flock(fd, (shared ? Posix.LOCK_SH : Posix.LOCK_EX) | Posix.LOCK_NB);
            return new ImageLock(fd);
        } catch (PosixException e) {
            try {
                Posix.close(fd);
            } catch (PosixException suppressed) {
                e.addSuppressed(suppressed);
            }
            if (e.errno() == Errno.EAGAIN) {
                throw new ImageLockedException(image, shared);
            }
            throw e;
        }
    }

    @Override
    public void close() throws IOException {
        Posix.close(fd);
    }
}
