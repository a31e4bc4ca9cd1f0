package io.guestdma.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * bin/qtest-machine launched exactly as QEMU's libqtest launches QEMU: {@code sh -c "exec BINARY
 * -qtest unix:Q -qtest-log /dev/null -chardev socket,path=M,id=char0 -mon chardev=char0,mode=control
 * -display none -machine pc -accel qtest ARGS"} (and {@code -audio none}, which newer libqtest adds;
 * QEMU itself is started without the last two, see {@link #launch}), with the test listening on both Unix
 * sockets and the machine connecting to them; QMP greeting and {@code qmp_capabilities} first,
 * SIGTERM at the end, which must end the machine with status 0. The same QMP conversation is held
 * with QEMU 7.2 launched the same way and must match it message for message (timestamps and the
 * version aside); ide-test style cases (DMA read/write, CD-ROM PIO and DMA reads) run over the
 * sockets and must match QEMU's.
 */
class LibqtestLaunchTest {
    static final ObjectMapper JSON = new ObjectMapper();

    /** A process started as libqtest does, with its two accepted connections. */
    record Launched(Process process, SocketChannel qtest, SocketChannel qmp, BufferedReader qmpIn, OutputStream qmpOut,
                    Path dir, Path stderr) {

        JsonNode read() throws IOException {
            String line = qmpIn.readLine();
            assertThat(line).as("a QMP message").isNotNull();
            return JSON.readTree(line);
        }

        void send(String json) throws IOException {
            qmpOut.write(json.getBytes(StandardCharsets.UTF_8));
            qmpOut.flush();
        }

        /**
         * SIGTERM, as libqtest's qtest_quit does; then the sockets and the temporary directory go.
         *
         * @return the exit status and what the process wrote on stderr
         */
        Exit terminate() throws Exception {
            process.destroy();
            boolean exited = process.waitFor(20, TimeUnit.SECONDS);
            qtest.close();
            qmp.close();
            if (!exited) {
                process.destroyForcibly().waitFor();
            }
            String errors = Files.readString(stderr).strip();
            Conformance.deleteTree(dir);
            if (!exited) {
                throw new AssertionError("did not exit on SIGTERM; stderr: " + errors);
            }
            return new Exit(process.exitValue(), errors);
        }
    }

    /** How a launched process ended. */
    record Exit(int status, String stderr) {
    }

    /**
     * Listens on two sockets, starts {@code binary} through {@code sh -c "exec ..."} with libqtest's
     * arguments plus {@code extra}, accepts both connections and completes the QMP handshake.
     */
    static Launched launch(List<String> binary, List<String> extra, boolean ours) throws IOException {
        Path dir = Files.createTempDirectory("libqtest");
        Path qtestPath = dir.resolve("qtest.sock");
        Path qmpPath = dir.resolve("qmp.sock");
        try (ServerSocketChannel qtestServer = ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX);
             ServerSocketChannel qmpServer = ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            qtestServer.bind(UnixDomainSocketAddress.of(qtestPath));
            qmpServer.bind(UnixDomainSocketAddress.of(qmpPath));
            List<String> words = new ArrayList<>(binary);
            words.addAll(List.of("-qtest", "unix:" + qtestPath, "-qtest-log", "/dev/null",
                    "-chardev", "socket,path=" + qmpPath + ",id=char0", "-mon", "chardev=char0,mode=control",
                    "-display", "none", "-machine", "pc"));
            if (ours) {
                // libqtest's "-accel qtest": Debian's QEMU 7.2 build has no qtest accelerator (it
                // says "invalid accelerator qtest"), so QEMU gets by without, as with -qtest stdio.
                // "-audio none" is what newer libqtest adds; QEMU 7.2 refuses it.
                words.addAll(List.of("-accel", "qtest", "-audio", "none"));
            }
            words.addAll(extra);
            String command = "exec " + words.stream().map(w -> "'" + w.replace("'", "'\\''") + "'")
                    .collect(Collectors.joining(" "));
            ProcessBuilder pb = new ProcessBuilder("/bin/sh", "-c", command);
            if (ours) {
                pb.environment().put("GUESTDMA_MACHINE_CLASSPATH", ProcessTarget.classPath());
                pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
            }
            Path stderr = dir.resolve("stderr.txt");
            pb.redirectError(stderr.toFile());
            pb.redirectOutput(ProcessBuilder.Redirect.DISCARD);
            Process process = pb.start();
            SocketChannel qtest = accept(qtestServer, process, stderr);
            SocketChannel qmp = accept(qmpServer, process, stderr);
            BufferedReader qmpIn = new BufferedReader(new InputStreamReader(Channels.newInputStream(qmp),
                    StandardCharsets.UTF_8));
            return new Launched(process, qtest, qmp, qmpIn, Channels.newOutputStream(qmp), dir, stderr);
        }
    }

    /** Waits for the process to connect; fails with its stderr if it ends first. */
    private static SocketChannel accept(ServerSocketChannel server, Process process, Path stderr) throws IOException {
        server.configureBlocking(false);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            SocketChannel channel = server.accept();
            if (channel != null) {
                channel.configureBlocking(true);
                return channel;
            }
            if (!process.isAlive() || System.nanoTime() > deadline) {
                process.destroyForcibly();
                throw new AssertionError("the process did not connect; stderr: " + Files.readString(stderr));
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException(e);
            }
        }
    }

    private static List<String> ourBinary() {
        return List.of(ProcessTarget.findScript().toString());
    }

    /** One QMP conversation; every message with its timestamp and the version removed. */
    private static List<String> conversation(Launched m) throws Exception {
        List<String> seen = new ArrayList<>();
        JsonNode greeting = m.read();
        ((ObjectNode) greeting.get("QMP")).remove("version");
        seen.add(greeting.toString());
        // each command with the number of messages it brings (events included)
        Object[][] commands = {
            {"{\"execute\": \"query-status\"}", 1},
            {"{\"execute\": \"qmp_capabilities\"}", 1},
            {"{\"execute\": \"qmp_capabilities\", \"id\": 1}", 1},
            {"{\"execute\": \"query-status\", \"id\": \"a\"}", 1},
            {"{\"execute\": \"stop\"}", 2},
            {"{\"execute\": \"query-status\"}", 1},
            {"{\"execute\": \"stop\"}", 1},
            {"{\"execute\": \"cont\", \"id\": 7}", 2},
            {"{\"execute\": \"query-status\"}", 1},
            {"{\"execute\": \"no-such-command\", \"id\": [1, 2]}", 1},
            {"{\"execute\": \"system_reset\"}", 2},
        };
        for (Object[] command : commands) {
            m.send((String) command[0]);
            for (int i = 0; i < (int) command[1]; i++) {
                JsonNode message = m.read();
                if (message.isObject()) {
                    ((ObjectNode) message).remove("timestamp");
                }
                seen.add(command[0] + " -> " + message);
            }
        }
        return seen;
    }

    @Test
    void qmpMatchesQemuAndSigtermExitsZero() throws Exception {
        QemuTarget.require();
        Launched qemu = launch(List.of(QemuTarget.BINARY), List.of("-nodefaults", "-m", "64M"), false);
        List<String> expected = conversation(qemu);
        assertThat(qemu.terminate().status()).as("QEMU's own status on SIGTERM").isZero();

        Launched ours = launch(ourBinary(), List.of("-nodefaults", "-m", "64M"), true);
        List<String> actual = conversation(ours);
        Exit exit = ours.terminate();
        assertThat(exit.status()).as("exit status on SIGTERM").isZero();
        assertThat(exit.stderr()).isEmpty();
        assertThat(actual).containsExactlyElementsOf(expected);
    }

    @Test
    void quitEndsTheMachineWithStatusZero() throws Exception {
        Launched ours = launch(ourBinary(), List.of("-m", "16M"), true);
        ours.read();
        ours.send("{\"execute\": \"qmp_capabilities\"}");
        assertThat(ours.read().toString()).isEqualTo("{\"return\":{}}");
        ours.send("{\"execute\": \"quit\"}");
        assertThat(ours.read().toString()).isEqualTo("{\"return\":{}}");
        JsonNode shutdown = ours.read();
        assertThat(shutdown.get("event").asText()).isEqualTo("SHUTDOWN");
        assertThat(shutdown.get("data").toString()).isEqualTo("{\"guest\":false,\"reason\":\"host-qmp-quit\"}");
        assertThat(ours.process().waitFor(20, TimeUnit.SECONDS)).isTrue();
        assertThat(ours.process().exitValue()).isZero();
        ours.terminate();
    }

    @Test
    void badLaunchOptionsExitTwo() throws Exception {
        Path stderr = Files.createTempFile("stderr", ".txt");
        Process p = new ProcessTarget().launch(List.of("-machine", "q35", "-m", "16M"), stderr);
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).isEqualTo(2);
        assertThat(Files.readString(stderr)).startsWith("qtest-machine: -machine q35 is not supported");
        Files.delete(stderr);
    }

    /** Our machine launched as libqtest does, as a conformance target: qtest over the socket. */
    static final class LibqtestTarget implements Target {
        @Override
        public String name() {
            return "bin/qtest-machine under libqtest's launch";
        }

        @Override
        public QtestClient start(Path image, String driveOptions) throws IOException {
            Launched m = launch(ourBinary(), List.of("-m", "64M", "-drive",
                    "file=" + image + ",if=ide,format=raw" + driveOptions), true);
            m.read(); // greeting
            m.send("{\"execute\": \"qmp_capabilities\"}");
            if (!m.read().has("return")) {
                throw new AssertionError("qmp_capabilities failed");
            }
            return new QtestClient(name(), Channels.newInputStream(m.qtest()), Channels.newOutputStream(m.qtest()),
                    () -> {
                        Exit exit = m.terminate();
                        if (exit.status() != 0 || !exit.stderr().isEmpty()) {
                            throw new AssertionError("exit status " + exit.status() + ", stderr '"
                                    + exit.stderr() + "'");
                        }
                    });
        }
    }

    @Test
    void ideTestCasesOverTheSockets() throws Exception {
        Target qemu = QemuTarget.require();
        List<Target> ours = List.of(new LibqtestTarget());
        Conformance.assertSame(qemu, ours, Conformance.Image.blank(64 << 20), "",
                "bmdma/simple_rw under libqtest's launch", IdeConformanceTest.SIMPLE_RW);
        Conformance.assertSame(qemu, ours, AtapiConformanceTest.DISC, AtapiConformanceTest.CDROM,
                "CD-ROM PIO reads under libqtest's launch", AtapiConformanceTest.PIO_READS);
        Conformance.assertSame(qemu, ours, AtapiConformanceTest.DISC, AtapiConformanceTest.CDROM,
                "CD-ROM DMA reads under libqtest's launch", AtapiConformanceTest.DMA_READS);
    }
}
