package io.guestdma.memory.internal;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PosixTest {

    @Test
    void openFailuresNameThePathAndTheErrno(@TempDir Path dir) {
        Path missing = dir.resolve("missing.img");
        assertThatThrownBy(() -> Posix.open(missing, Posix.O_RDONLY, 0))
                .isInstanceOfSatisfying(PosixException.class, e -> {
                    assertThat(e.errno()).isEqualTo(Errno.ENOENT);
                    assertThat(e.errnoName()).isEqualTo("ENOENT");
                    assertThat(e.call()).isEqualTo("open(" + missing + ")");
                })
                .hasMessage("open(" + missing + "): ENOENT (No such file or directory)");
        assertThatThrownBy(() -> Posix.open(dir, Posix.O_RDWR, 0))
                .isInstanceOf(PosixException.class)
                .hasMessageContaining("EISDIR");
    }

    @Test
    void positionedVectoredIoRoundTripsThroughTheFile(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("disk.img");
        int fd = Posix.open(file, Posix.O_RDWR | Posix.O_CREAT, 0600);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocateFrom("hello, ");
            MemorySegment b = arena.allocateFrom("world");
            MemorySegment iov = arena.allocate(2 * 16, 8);
            iov.set(ValueLayout.ADDRESS, 0, a);
            iov.set(ValueLayout.JAVA_LONG, 8, 7);
            iov.set(ValueLayout.ADDRESS, 16, b);
            iov.set(ValueLayout.JAVA_LONG, 24, 5);
            assertThat(Posix.pwritev(fd, iov, 2, 4096)).isEqualTo(12);
            Posix.fdatasync(fd);
            assertThat(Posix.fileSize(fd)).isEqualTo(4096 + 12);
            assertThat(new String(Files.readAllBytes(file), 4096, 12)).isEqualTo("hello, world");

            MemorySegment back = arena.allocate(12);
            assertThat(Posix.pread(fd, back, 4096)).isEqualTo(12);
            assertThat(new String(back.toArray(ValueLayout.JAVA_BYTE))).isEqualTo("hello, world");
            assertThat(Posix.pread(fd, back, 1 << 20)).as("at end of file").isZero();

            try {
                Posix.fallocate(fd, Posix.FALLOC_FL_PUNCH_HOLE | Posix.FALLOC_FL_KEEP_SIZE, 0, 8192);
                assertThat(Posix.fileSize(fd)).isEqualTo(4096 + 12);
                assertThat(Files.readAllBytes(file)).containsOnly(0);
            } catch (PosixException e) {
                // Some file systems cannot punch holes; the error must still be the named one.
                assertThat(e.errnoName()).isEqualTo("EOPNOTSUPP");
            }
        } finally {
            Posix.close(fd);
        }
        assertThatThrownBy(() -> Posix.fdatasync(fd)).isInstanceOf(PosixException.class).hasMessageContaining("EBADF");
    }

    @Test
    void failedDataPathCallsStillReportTheirErrno(@TempDir Path dir) throws IOException {
        // The fast handles do not capture errno; a -1 must still surface as the call's own errno.
        Path file = Files.write(dir.resolve("ro.img"), new byte[8192]);
        int readOnly = Posix.open(file, Posix.O_RDONLY, 0);
        int directory = Posix.open(dir, Posix.O_RDONLY, 0);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(512);
            MemorySegment iov = arena.allocate(16, 8);
            iov.set(ValueLayout.ADDRESS, 0, buffer);
            iov.set(ValueLayout.JAVA_LONG, 8, buffer.byteSize());
            assertThatThrownBy(() -> Posix.pwritev(readOnly, iov, 1, 512))
                    .hasMessage("pwritev(fd " + readOnly + ", offset 512): EBADF (Bad file descriptor)");
            assertThatThrownBy(() -> Posix.pwrite(readOnly, buffer, 1024))
                    .hasMessage("pwrite(fd " + readOnly + ", offset 1024): EBADF (Bad file descriptor)");
            assertThatThrownBy(() -> Posix.preadv(directory, iov, 1, 0))
                    .isInstanceOfSatisfying(PosixException.class, e -> assertThat(e.errno()).isEqualTo(Errno.EISDIR))
                    .hasMessage("preadv(fd " + directory + ", offset 0): EISDIR (Is a directory)");
            assertThatThrownBy(() -> Posix.pread(directory, buffer, 4096))
                    .hasMessage("pread(fd " + directory + ", offset 4096): EISDIR (Is a directory)");
            assertThat(Posix.pread(readOnly, buffer, 0)).as("the descriptor still works").isEqualTo(512);
        } finally {
            Posix.close(readOnly);
            Posix.close(directory);
        }
    }

    @Test
    void anExclusiveFlockConflictsAcrossOpenFiles(@TempDir Path dir) throws IOException {
        Path file = Files.createFile(dir.resolve("locked.img"));
        int first = Posix.open(file, Posix.O_RDWR, 0);
        int second = Posix.open(file, Posix.O_RDWR, 0);
        try {
            Posix.flock(first, Posix.LOCK_EX | Posix.LOCK_NB);
            assertThatThrownBy(() -> Posix.flock(second, Posix.LOCK_SH | Posix.LOCK_NB))
                    .isInstanceOfSatisfying(PosixException.class,
                            e -> assertThat(e.errno()).isEqualTo(Errno.EAGAIN));
            Posix.flock(first, Posix.LOCK_UN);
            Posix.flock(second, Posix.LOCK_SH | Posix.LOCK_NB);
        } finally {
            Posix.close(first);
            Posix.close(second);
        }
    }

    @Test
    void errnoNamesAreSymbolic() {
        assertThat(Errno.name(Errno.ENOSPC)).isEqualTo("ENOSPC");
        assertThat(Errno.name(Errno.EIO)).isEqualTo("EIO");
        assertThat(Errno.name(4242)).isEqualTo("errno 4242");
    }

    @Test
    void pageSizeIsAPowerOfTwo() {
        assertThat(Long.bitCount(Posix.pageSize())).isEqualTo(1);
        assertThat(Posix.pageSize()).isGreaterThanOrEqualTo(4096);
    }
}
