package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.testing.NbdServer;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command's exit statuses and messages (the script around it is tested in the conformance package). */
class QtestMachineTest {
    @TempDir
    Path dir;

    private record Result(int status, String out, String err) {
    }

    private static Result run(String input, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = QtestMachine.run(args, new ByteArrayInputStream(input.getBytes(StandardCharsets.UTF_8)), out,
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void servesUntilEndOfInputAndExitsZero() throws IOException {
        Path image = Files.write(dir.resolve("d.img"), new byte[1 << 20]);
        Result r = run("inb 0x1f7\nendianness\n", "-m", "64M", "-drive", "file=" + image + ",format=raw");
        assertThat(r).isEqualTo(new Result(0, "OK 0x0050\nOK little\n", ""));
    }

    @Test
    void aBadCommandLineExitsTwoWithTheReasonAndTheUsage() {
        Result r = run("", "-m", "64M", "-drive", "file=x.img,format=qcow2");
        assertThat(r.status()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).startsWith("qtest-machine: -drive: format=qcow2 is not supported (use raw)\n")
                .contains("usage: qtest-machine");
    }

    @Test
    void anImageThatCannotBeOpenedExitsOne() {
        Result r = run("", "-drive", "file=" + dir.resolve("absent.img"));
        assertThat(r.status()).isEqualTo(1);
        assertThat(r.err()).startsWith("qtest-machine: ").contains("absent.img");
    }

    @Test
    void aDriveOnAnNbdExportIsWrittenThroughTheServer() throws IOException {
        Path image = Files.write(dir.resolve("remote.img"), new byte[1 << 20]);
        StringBuilder script = new StringBuilder("outb 0x1f6 0xe0\noutb 0x1f2 0x1\noutb 0x1f3 0x2\n"
                + "outb 0x1f4 0x0\noutb 0x1f5 0x0\noutb 0x1f7 0x30\n");
        script.append("outw 0x1f0 0xbeef\n".repeat(256));
        script.append("inb 0x1f7\noutb 0x1f7 0xe7\ninb 0x1f7\n");
        try (NbdServer server = NbdServer.qemuNbd(image, dir, "remote")) {
            Result r = run(script.toString(), "-m", "64M", "-drive", "file=" + server.address() + ",format=raw");
            assertThat(r.err()).isEmpty();
            assertThat(r.status()).isZero();
            assertThat(r.out()).endsWith("OK 0x0050\nOK\nOK 0x0050\n");
        }
        byte[] disk = Files.readAllBytes(image);
        for (int i = 0; i < 512; i += 2) {
            assertThat(new byte[] {disk[1024 + i], disk[1025 + i]}).containsExactly(0xef, 0xbe);
        }
        assertThat(disk[1023]).isZero();
        assertThat(disk[1536]).isZero();
    }

    @Test
    void anNbdServerThatIsNotThereExitsOneNamingIt() {
        Result r = run("", "-drive", "file=nbd+unix:///x?socket=" + dir.resolve("nobody.sock"));
        assertThat(r.status()).isEqualTo(1);
        assertThat(r.err()).startsWith("qtest-machine: ").contains("cannot connect to nbd+unix:///x?socket=");
    }

    @Test
    void helpGoesToStandardOutput() {
        Result r = run("", "--help");
        assertThat(r.status()).isZero();
        assertThat(r.out()).contains("usage: qtest-machine", "-drive");
    }
}
