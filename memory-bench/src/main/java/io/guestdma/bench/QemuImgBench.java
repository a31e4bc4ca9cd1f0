package io.guestdma.bench;

import io.guestdma.block.NbdAddress;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalDouble;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * QEMU's own block layer as the reference for {@link NbdWriteBenchmark}: {@code qemu-img bench -w -s
 * 65536 -d DEPTH} against a qemu-nbd export started the same way, measured by {@link BenchSuite} in
 * the same run. Also starts the qemu-nbd both use. Client and server run on one {@link SharedCpu},
 * as ours do.
 */
final class QemuImgBench {
    static final String EXPORT = "bench";
    /** Runs of {@code qemu-img bench} per queue depth; the report takes their median. */
    static final int RUNS = 3;
    private static final Pattern COMPLETED = Pattern.compile("Run completed in ([0-9.]+) seconds");

    private QemuImgBench() {
    }

    /** @return the export address of a server started by {@link #startQemuNbd} in {@code dir} */
    static NbdAddress address(Path dir) {
        return new NbdAddress.Unix(dir.resolve("nbd.sock"), EXPORT);
    }

    /**
     * Starts qemu-nbd serving a raw image on a Unix socket in {@code dir} (writeback cache, up to 32
     * clients) on the {@link SharedCpu} and waits until it listens.
     *
     * @throws IOException if qemu-nbd is missing or does not come up within 10 seconds
     */
    static Process startQemuNbd(Path image, Path dir) throws IOException, InterruptedException {
        Path socket = dir.resolve("nbd.sock");
        Process p = new ProcessBuilder(SharedCpu.command(List.of("qemu-nbd", "-f", "raw", "-t", "-e", "32", "-x",
                EXPORT, "-k", socket.toString(), image.toString())))
                .redirectErrorStream(true).redirectOutput(dir.resolve("qemu-nbd.log").toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!Files.exists(socket)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new IOException("qemu-nbd did not start: "
                        + Files.readString(dir.resolve("qemu-nbd.log"), StandardCharsets.UTF_8));
            }
            Thread.sleep(20);
        }
        return p;
    }

    /**
     * Runs {@code qemu-img bench} {@link #RUNS} times, each against a fresh export.
     *
     * @param depth requests in flight
     * @param count requests to send per run
     * @return requests per second of every run that worked, in order; empty when qemu-nbd or
     *     qemu-img is missing or fails
     */
    static List<Double> writesPerSecond(int depth, int count) {
        List<Double> runs = new java.util.ArrayList<>();
        for (int i = 0; i < RUNS; i++) {
            OptionalDouble ops = writesPerSecondOnce(depth, count);
            if (ops.isEmpty()) {
                break;
            }
            runs.add(ops.getAsDouble());
        }
        return runs;
    }

    /**
     * Runs {@code qemu-img bench} writes of 64 KiB at {@code depth} against a fresh export, both on
     * the {@link SharedCpu}.
     *
     * @param depth requests in flight
     * @param count requests to send
     * @return requests per second, or empty when qemu-nbd or qemu-img is missing or fails
     */
    static OptionalDouble writesPerSecondOnce(int depth, int count) {
        Path dir = null;
        Process server = null;
        try {
            dir = ScratchDirectory.create("guestdma-qemu-img-bench");
            Path image = dir.resolve("disk.img");
            try (var f = new java.io.RandomAccessFile(image.toFile(), "rw")) {
                f.setLength(NbdWriteBenchmark.IMAGE_BYTES);
            }
            server = startQemuNbd(image, dir);
            String target = "nbd+unix:///" + EXPORT + "?socket=" + dir.resolve("nbd.sock");
            Process bench = new ProcessBuilder(SharedCpu.command(List.of("qemu-img", "bench", "-f", "raw", "-w",
                    "-s", "65536", "-d", Integer.toString(depth), "-c", Integer.toString(count), target)))
                    .redirectErrorStream(true).start();
            String out = new String(bench.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!bench.waitFor(5, TimeUnit.MINUTES) || bench.exitValue() != 0) {
                System.err.println("qemu-img bench failed: " + out);
                return OptionalDouble.empty();
            }
            Matcher m = COMPLETED.matcher(out);
            return m.find() ? OptionalDouble.of(count / Double.parseDouble(m.group(1))) : OptionalDouble.empty();
        } catch (IOException e) {
            System.err.println("qemu-img bench not measured: " + e.getMessage());
            return OptionalDouble.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return OptionalDouble.empty();
        } finally {
            if (server != null) {
                server.destroy();
            }
            ScratchDirectory.delete(dir);
        }
    }
}
