package io.guestdma.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

/**
 * The bench's temporary directories for images and sockets: in {@code /dev/shm} when it is there
 * and writable, so that no measurement waits for the disk's write-back (the NBD comparison is of
 * two NBD clients, not of whichever one the kernel chose to flush under; the guest's two back ends
 * likewise), and removed when done. A directory in {@code /dev/shm} that is left behind holds its
 * images in RAM until the machine reboots (the guest bench's two images are 512 MiB), so a JVM
 * stopped before it got to remove one (SIGTERM, Ctrl-C, {@code System.exit}) removes it in a
 * shutdown hook, after stopping the processes it started that may still write there (qemu-nbd,
 * QEMU, qemu-storage-daemon, a back end's JVM). Only SIGKILL leaves one behind. Thread-safe.
 */
final class ScratchDirectory {
    /** Directories created and not yet deleted, which the shutdown hook deletes. */
    private static final Set<Path> LIVE = ConcurrentHashMap.newKeySet();
    /** How long the shutdown hook waits for a child process to end after asking it to. */
    private static final long CHILD_EXIT_SECONDS = 2;

    static {
        Runtime.getRuntime().addShutdownHook(Thread.ofPlatform().name("guestdma-bench-scratch").unstarted(
                ScratchDirectory::deleteLeftovers));
    }

    private ScratchDirectory() {
    }

    /**
     * Creates an empty directory, in {@code /dev/shm} if possible, else in the default temporary
     * directory, which this JVM deletes at exit unless {@link #delete} did first.
     *
     * @param prefix the start of its name
     * @return the directory
     * @throws IOException if it cannot be created
     */
    static Path create(String prefix) throws IOException {
        Path shm = Path.of("/dev/shm");
        Path dir = Files.isDirectory(shm) && Files.isWritable(shm) ? Files.createTempDirectory(shm, prefix)
                : Files.createTempDirectory(prefix);
        LIVE.add(dir);
        return dir;
    }

    /**
     * Deletes a directory and everything in it, as far as it can: a file that cannot be deleted is
     * left (with the directories above it), which is not worth failing a benchmark for. Does nothing
     * for null or a directory that is gone.
     *
     * @param dir the directory, usually one {@link #create} returned
     */
    static void delete(Path dir) {
        if (dir == null) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // Gone already, or a file the bench cannot remove: nothing better to do here.
        }
        LIVE.remove(dir);
    }

    /** The shutdown hook: stops this JVM's child processes, then deletes the directories left. */
    private static void deleteLeftovers() {
        if (LIVE.isEmpty()) {
            return;
        }
        List<ProcessHandle> children = ProcessHandle.current().descendants().toList();
        children.forEach(ProcessHandle::destroy);
        for (ProcessHandle child : children) {
            try {
                child.onExit().get(CHILD_EXIT_SECONDS, TimeUnit.SECONDS);
            } catch (TimeoutException | ExecutionException e) {
                child.destroyForcibly();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                child.destroyForcibly();
            }
        }
        List.copyOf(LIVE).forEach(ScratchDirectory::delete);
    }
}
