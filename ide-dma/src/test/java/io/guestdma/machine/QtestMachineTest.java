package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;

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
    void helpGoesToStandardOutput() {
        Result r = run("", "--help");
        assertThat(r.status()).isZero();
        assertThat(r.out()).contains("usage: qtest-machine", "-drive");
    }
}
