package io.guestdma.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.conformance.Conformance.Image;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real {@code bin/qtest-machine} in a child process: JDK discovery, JVM flags (no native
 * access warning on stderr), command-line errors, end of input, and one ide-test case replayed
 * against QEMU through it.
 */
class QtestMachineScriptTest {
    @TempDir
    Path dir;

    @Test
    void servesQtestOnStdioAndExitsCleanlyAtEndOfInput() throws Exception {
        Path image = Files.write(dir.resolve("disk.img"), new byte[1 << 20]);
        Path stderr = dir.resolve("stderr.txt");
        Process p = new ProcessTarget().launch(List.of("-m", "16M", "-drive", "file=" + image + ",format=raw"), stderr);
        try (OutputStream in = p.getOutputStream()) {
            in.write("endianness\ninb 0x1f7\nreadq 0x1000000\n".getBytes(StandardCharsets.US_ASCII));
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(out).isEqualTo("OK little\nOK 0x0050\nOK 0x0000000000000000\n");
        assertThat(p.exitValue()).isZero();
        assertThat(Files.readString(stderr)).as("nothing on stderr, no JVM warning either").isEmpty();
    }

    @Test
    void aBadCommandLineExitsTwoWithAMessage() throws IOException, InterruptedException {
        Path stderr = dir.resolve("stderr.txt");
        Process p = new ProcessTarget().launch(List.of("-m", "64M", "-drive", "format=raw"), stderr);
        p.getOutputStream().close();
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).isEqualTo(2);
        assertThat(Files.readString(stderr)).startsWith("qtest-machine: -drive needs file=IMAGE").contains("usage:");
        assertThat(p.getInputStream().readAllBytes()).isEmpty();
    }

    @Test
    void matchesQemuOnSimpleReadWrite() throws Exception {
        Target qemu = QemuTarget.require();
        Conformance.assertSame(qemu, List.of(new ProcessTarget()), Image.blank(64 << 20), "",
                "bmdma/simple_rw through bin/qtest-machine", IdeConformanceTest.SIMPLE_RW);
    }

    @Test
    void cdromMatchesQemuThroughTheScript() throws Exception {
        Target qemu = QemuTarget.require();
        Conformance.assertSame(qemu, List.of(new ProcessTarget()), AtapiConformanceTest.DISC,
                AtapiConformanceTest.CDROM, "CD-ROM PIO reads through bin/qtest-machine", AtapiConformanceTest.PIO_READS);
        Conformance.assertSame(qemu, List.of(new ProcessTarget()), AtapiConformanceTest.DISC,
                AtapiConformanceTest.CDROM, "CD-ROM DMA reads through bin/qtest-machine", AtapiConformanceTest.DMA_READS);
    }
}
