package io.guestdma.block.testing;

import io.guestdma.block.NbdAddress;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.fail;
import static org.assertj.core.api.Assumptions.assumeThat;

/**
 * A real NBD server (qemu-nbd or nbdkit) run by a test on a Unix socket or a loopback port, and
 * stopped after. Start it again with {@link #restart()} on the same address after
 * {@link #kill()}, as an operator would bring a crashed server back.
 */
public final class NbdServer implements AutoCloseable {
    /** Servers still running: a test JVM that ends early must not leave them behind. */
    private static final Set<Process> RUNNING = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> RUNNING.forEach(Process::destroyForcibly)));
    }

    private final List<String> command;
    private final NbdAddress address;
    private final Path log;
    private Process process;

    private NbdServer(List<String> command, NbdAddress address, Path log) throws IOException {
        this.command = command;
        this.address = address;
        this.log = log;
        start();
    }

    /**
     * The tool's path; skips the test when it is missing, except in CI (env CI=true), where a
     * missing server must fail: bin/test installs both.
     */
    public static String require(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/usr/sbin").split(":")) {
            Path candidate = Path.of(dir, tool);
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        String why = tool + " not found (apt-get install " + (tool.equals("nbdkit") ? "nbdkit" : "qemu-utils") + ")";
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail(why + "; CI must have it (bin/test installs it)");
        }
        assumeThat(false).as(why).isTrue();
        return null;
    }

    /**
     * {@code kind}'s server for a raw image on a Unix socket in {@code dir}, for tests that run
     * against both: qemu-nbd under {@code export}, or nbdkit's file plugin (its one unnamed export).
     *
     * @param kind   {@code "qemu-nbd"} or {@code "nbdkit"}
     * @param image  the raw image
     * @param dir    where the socket and the server's log go
     * @param export qemu-nbd's export name; nbdkit's socket and log are named after it
     * @return the server, listening
     * @throws IOException              if the server does not start
     * @throws IllegalArgumentException for another kind
     */
    public static NbdServer servingImage(String kind, Path image, Path dir, String export) throws IOException {
        return switch (kind) {
            case "qemu-nbd" -> qemuNbd(image, dir, export);
            case "nbdkit" -> nbdkit(dir, export, "--exit-with-parent", "file", "file=" + image);
            default -> throw new IllegalArgumentException("no NBD server '" + kind + "'");
        };
    }

    /** qemu-nbd serving a raw image under {@code export} on a Unix socket in {@code dir}. */
    public static NbdServer qemuNbd(Path image, Path dir, String export, String... extra) throws IOException {
        Path socket = dir.resolve("qemu-nbd-" + Math.abs(image.hashCode()) + ".sock");
        List<String> cmd = new ArrayList<>(List.of(require("qemu-nbd"), "-f", "raw", "-t", "-e", "8", "-x", export,
                "-k", socket.toString()));
        cmd.addAll(List.of(extra));
        cmd.add(image.toString());
        return new NbdServer(cmd, new NbdAddress.Unix(socket, export), dir.resolve(socket.getFileName() + ".log"));
    }

    /** qemu-nbd serving a raw image under {@code export} on a free loopback TCP port. */
    public static NbdServer qemuNbdTcp(Path image, Path dir, String export, String... extra) throws IOException {
        int port = freePort();
        List<String> cmd = new ArrayList<>(List.of(require("qemu-nbd"), "-f", "raw", "-t", "-e", "8", "-x", export,
                "-b", "127.0.0.1", "-p", Integer.toString(port)));
        cmd.addAll(List.of(extra));
        cmd.add(image.toString());
        return new NbdServer(cmd, new NbdAddress.Tcp("127.0.0.1", port, export), dir.resolve("qemu-nbd-" + port + ".log"));
    }

    /** nbdkit with the given filters, plugin and parameters, on a Unix socket in {@code dir}. */
    public static NbdServer nbdkit(Path dir, String name, String... pluginAndParameters) throws IOException {
        Path socket = dir.resolve("nbdkit-" + name + ".sock");
        List<String> cmd = new ArrayList<>(List.of(require("nbdkit"), "-f", "-U", socket.toString()));
        cmd.addAll(List.of(pluginAndParameters));
        return new NbdServer(cmd, new NbdAddress.Unix(socket, ""), dir.resolve("nbdkit-" + name + ".log"));
    }

    /** nbdkit on a free loopback TCP port. */
    public static NbdServer nbdkitTcp(Path dir, String name, String... pluginAndParameters) throws IOException {
        int port = freePort();
        List<String> cmd = new ArrayList<>(List.of(require("nbdkit"), "-f", "-i", "127.0.0.1", "-p",
                Integer.toString(port)));
        cmd.addAll(List.of(pluginAndParameters));
        return new NbdServer(cmd, new NbdAddress.Tcp("127.0.0.1", port, ""), dir.resolve("nbdkit-" + name + ".log"));
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    public NbdAddress address() {
        return address;
    }

    /** @return the server's output so far, for failure messages */
    public String output() {
        try {
            return Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
        } catch (IOException e) {
            return "(cannot read " + log + ": " + e + ")";
        }
    }

    private void start() throws IOException {
        if (address instanceof NbdAddress.Unix unix) {
            Files.deleteIfExists(unix.socket());
        }
        process = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
        RUNNING.add(process);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (true) {
            if (!process.isAlive()) {
                throw new IOException("NBD server exited with " + process.exitValue() + ": " + command + "\n" + output());
            }
            if (listening()) {
                return;
            }
            if (System.nanoTime() > deadline) {
                process.destroyForcibly();
                throw new IOException("NBD server did not start listening within 20 s: " + command + "\n" + output());
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted", e);
            }
        }
    }

    private boolean listening() {
        if (address instanceof NbdAddress.Unix unix && !Files.exists(unix.socket())) {
            return false;
        }
        try (SocketChannel probe = SocketChannel.open(address instanceof NbdAddress.Tcp tcp
                ? new InetSocketAddress(tcp.host(), tcp.port()) : address.socketAddress())) {
            return probe.isConnected();
        } catch (IOException e) {
            return false;
        }
    }

    /** SIGKILL: the server dies on the spot, with whatever it had in flight. */
    public void kill() {
        process.destroyForcibly();
        waitFor();
    }

    /** Starts the same command again on the same address. */
    public void restart() throws IOException {
        if (process.isAlive()) {
            throw new IllegalStateException("still running");
        }
        start();
    }

    private void waitFor() {
        RUNNING.remove(process);
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** SIGTERM, then SIGKILL if it lingers. */
    @Override
    public void close() {
        if (process.isAlive()) {
            process.destroy();
            waitFor();
        }
    }

    /** Runs a command to completion and returns its output; fails the test if it fails. */
    public static String run(String... command) {
        try {
            Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                fail(List.of(command) + " did not finish within 60 s");
            }
            if (p.exitValue() != 0) {
                fail(List.of(command) + " exited with " + p.exitValue() + ": " + out);
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
