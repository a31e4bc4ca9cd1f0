package io.guestdma.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A raw disk image for benchmarks: fully written (not sparse), so reads come from real page-cache
 * pages and writes overwrite existing ones, as for a guest disk in steady state. Deleted on close.
 */
public final class ImageFile implements AutoCloseable {
    private final Path path;

    private ImageFile(Path path) {
        this.path = path;
    }

    /**
     * Creates the image in {@link #directory()} filled with a non-zero pattern.
     *
     * @param bytes the image size, a multiple of 512
     * @return the image
     * @throws IOException if it cannot be created or written
     */
    public static ImageFile create(long bytes) throws IOException {
        Path dir = directory();
        Files.createDirectories(dir);
        Path path = Files.createTempFile(dir, "guestdma-bench", ".img");
        ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
        for (int i = 0; i < chunk.capacity(); i++) {
            chunk.put(i, (byte) (i * 31 + 7));
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE)) {
            for (long at = 0; at < bytes; ) {
                chunk.clear().limit((int) Math.min(chunk.capacity(), bytes - at));
                at += ch.write(chunk, at);
            }
        }
        return new ImageFile(path);
    }

    /**
     * @return where benchmark images go: {@code $GUESTDMA_BENCH_DIR} (set by {@code bin/bench}; an
     *         environment variable because JMH's forked JVMs inherit the environment, not system
     *         properties), else {@code java.io.tmpdir}
     */
    public static Path directory() {
        String dir = System.getenv("GUESTDMA_BENCH_DIR");
        return Path.of(dir != null && !dir.isBlank() ? dir : System.getProperty("java.io.tmpdir")).toAbsolutePath();
    }

    /** @return where the image is */
    public Path path() {
        return path;
    }

    /** Deletes the image. */
    @Override
    public void close() throws IOException {
        Files.deleteIfExists(path);
    }
}
