package io.guestdma.vhostuser.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A vhost-user-blk back end in a process of its own, as a user runs it: ours
 * ({@code io.guestdma.vhostuser.VhostUserBlkCommand}, what {@code bin/vhost-user-blk} starts) or
 * the reference, qemu-storage-daemon's vhost-user-blk export over QEMU's block layer. Both serve a
 * raw image through the page cache, listen on a Unix socket, and are started only when that socket
 * exists.
 *
 * @param name    "guestdma" or "qemu-storage-daemon", for messages
 * @param process the back end's process
 * @param log     its standard output and error
 */
public record GuestBackEnd(String name, Process process, Path log) implements AutoCloseable {
    /**
     * Starts our back end in a JVM with this JVM's class path.
     *
     * @param socket where it listens (must not exist)
     * @param image  the raw image
     * @param queues its queue count
     * @return the back end, listening
     * @throws IOException if it does not start listening within 30 s (its output in the message)
     */
    public static GuestBackEnd guestdma(Path socket, Path image, int queues) throws IOException, InterruptedException {
        Path log = socket.resolveSibling(socket.getFileName() + ".guestdma.log");
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
                "io.guestdma.vhostuser.VhostUserBlkCommand", "--socket", socket.toString(),
                "--drive", "file=" + image + ",format=raw", "--num-queues", Integer.toString(queues))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return awaitListening(new GuestBackEnd("guestdma", p, log), socket);
    }

    /**
     * Starts {@code qemu-storage-daemon} exporting {@code image} as vhost-user-blk.
     *
     * @param socket where it listens (must not exist)
     * @param image  the raw image
     * @param queues its queue count
     * @return the back end, listening
     * @throws IOException if it is missing or does not start listening within 30 s
     */
    public static GuestBackEnd qemuStorageDaemon(Path socket, Path image, int queues)
            throws IOException, InterruptedException {
        Path log = socket.resolveSibling(socket.getFileName() + ".qsd.log");
        Process p = new ProcessBuilder(List.of("qemu-storage-daemon",
                "--blockdev", "driver=file,node-name=file0,filename=" + image,
                "--blockdev", "driver=raw,node-name=disk0,file=file0",
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,writable=on,addr.type=unix,addr.path="
                        + socket + ",num-queues=" + queues))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return awaitListening(new GuestBackEnd("qemu-storage-daemon", p, log), socket);
    }

    private static GuestBackEnd awaitListening(GuestBackEnd backEnd, Path socket)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!Files.exists(socket)) {
            if (!backEnd.process().isAlive() || System.nanoTime() > deadline) {
                backEnd.kill();
                throw new IOException(backEnd.name() + " did not listen on " + socket + ": "
                        + Files.readString(backEnd.log(), StandardCharsets.UTF_8).strip());
            }
            Thread.sleep(20);
        }
        return backEnd;
    }

    /**
     * How the back end is, for a failure message: alive or its exit status, and the last lines of
     * its output.
     *
     * @return e.g. {@code "guestdma (pid 42) alive, log: ..."}
     */
    public String state() {
        String log;
        try {
            List<String> lines = Files.readAllLines(this.log, StandardCharsets.UTF_8);
            log = lines.isEmpty() ? "empty" : String.join(" | ", lines.subList(Math.max(0, lines.size() - 5), lines.size()));
        } catch (IOException e) {
            log = "unreadable (" + e.getMessage() + ")";
        }
        return name + " (pid " + process.pid() + ") " + (process.isAlive() ? "alive" : "exited " + process.exitValue())
                + ", log: " + log;
    }

    /** Kills the back end with SIGKILL, as a crash would, and waits for it to be gone. */
    public void kill() throws InterruptedException {
        process.destroyForcibly().waitFor();
    }

    /**
     * Stops the back end with SIGTERM (SIGKILL after 10 s).
     *
     * @throws InterruptedException if interrupted while waiting
     */
    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            kill();
        }
    }
}
