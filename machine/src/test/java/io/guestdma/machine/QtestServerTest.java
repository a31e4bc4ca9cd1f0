package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The qtest protocol as our server speaks it (replies QEMU would give are checked against QEMU in the conformance tests). */
class QtestServerTest {
    @TempDir
    Path dir;

    /** Feeds the whole script, serves to end of input, returns the reply lines. */
    private List<String> serve(String... commands) throws IOException {
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (PcMachine machine = new PcMachine(MachineConfig.parse(List.of("-m", "16M",
                "-drive", "file=" + image)))) {
            String script = String.join("\n", commands) + "\n";
            new QtestServer(machine, new ByteArrayInputStream(script.getBytes(StandardCharsets.ISO_8859_1)), out)
                    .serve();
        }
        return out.toString(StandardCharsets.ISO_8859_1).lines().toList();
    }

    @Test
    void portAndMemoryRepliesUseQemusFormats() throws IOException {
        assertThat(serve("endianness", "inb 0x80", "inl 0x80", "outb 0x1f6 0x1a0", "inb 0x1f6",
                "writew 0x1000 0xabcd", "readw 0x1000", "readq 0x1000", "writeq 0x2000 -1", "readq 0x2000",
                "read 0x1000 3", "b64read 0x1000 2", "b64read 0x1000 0", "inb 0200", "readb 010000"))
                .containsExactly("OK little", "OK 0x00ff", "OK 0xffffffff", "OK", "OK 0x00a0",
                        "OK", "OK 0x000000000000abcd", "OK 0x000000000000abcd", "OK", "OK 0xffffffffffffffff",
                        "OK 0xcdab00", "OK zas=", "OK ", "OK 0x00ff", "OK 0x00000000000000cd");
    }

    @Test
    void writeZeroFillsShortDataAndTruncatesLongData() throws IOException {
        assertThat(serve("write 0x100 4 0x12", "read 0x100 4", "write 0x100 2 0x123456", "read 0x100 4",
                "write 0x100 3 0x12345", "read 0x100 3", "write 0x100 2 0x", "write 0x100 2 0xzz"))
                .containsExactly("OK", "OK 0x12000000", "OK", "OK 0x12340000", "OK", "OK 0x123400",
                        "ERR invalid argument size", "FAIL write: 'zz' is not a hex byte");
    }

    @Test
    void base64AndMemsetRoundTrip() throws IOException {
        byte[] data = new byte[100_000];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 7);
        }
        String b64 = Base64.getEncoder().encodeToString(data);
        List<String> replies = serve("b64write 0x10000 100000 " + b64, "b64read 0x10000 100000",
                "memset 0x10000 3 0x1ff", "read 0x10000 4", "b64write 0x0 4 AQ", "b64write 0x0 4 !!!!");
        assertThat(replies.get(0)).isEqualTo("OK");
        assertThat(replies.get(1)).isEqualTo("OK " + b64);
        assertThat(replies.subList(2, 6)).containsExactly("OK", "OK 0xffffff" + String.format("%02x", data[3] & 0xff),
                "ERR invalid argument size", "OK");
    }

    @Test
    void memoryOutsideRamReadsZeroAndDropsWrites() throws IOException {
        assertThat(serve("writel 0x1000000 0x12345678", "readl 0x1000000", "memset 0xfffffe 4 0x5a",
                "read 0xfffffe 4", "readq 0xfffffffffffffffc"))
                .containsExactly("OK", "OK 0x0000000000000000", "OK", "OK 0x5a5a0000", "OK 0x0000000000000000");
    }

    @Test
    void interruptsAreReportedOnlyAfterInterceptionAndBeforeTheReplyThatCausedThem() throws IOException {
        // FLUSH CACHE completes inside the port write and interrupts; reading the status acknowledges.
        assertThat(serve("outb 0x1f7 0xe7", "inb 0x1f7", "irq_intercept_in i8259", "irq_intercept_in ioapic",
                "irq_intercept_in ioapic", "outb 0x1f7 0xe7", "inb 0x3f6", "inb 0x1f7", "inb 0x1f7"))
                .containsExactly("OK", "OK 0x0050", "FAIL Unknown device", "OK", "OK",
                        "IRQ raise 14", "OK", "OK 0x0050", "IRQ lower 14", "OK 0x0050", "OK 0x0050");
    }

    @Test
    void interceptingOutputsCatchesNothingAndLocksTheDevice() throws IOException {
        assertThat(serve("irq_intercept_out ioapic", "irq_intercept_in ioapic", "outb 0x1f7 0xe7", "inb 0x1f7"))
                .containsExactly("OK", "OK", "OK", "OK 0x0050");
    }

    @Test
    void malformedCommandsFailWithAReasonAndTheServerCarriesOn() throws IOException {
        assertThat(serve("outb 0x10000 1", "inb", "inb banana", "outb 0x80 0x1ffffffffffffffff", "read 0 0",
                "read 0 0x100000000", "frobnicate 1 2", "", "   ", "memset 0 1", "endianness"))
                .containsExactly(
                        "FAIL outb: port 0x10000 is outside 0-0xffff",
                        "FAIL inb: missing port",
                        "FAIL inb: port 'banana' is not a number",
                        "FAIL outb: value '0x1ffffffffffffffff' is not a number",
                        "FAIL read: size must not be 0",
                        "FAIL read: size 0x100000000 is above the limit of 1073741824 bytes",
                        "FAIL Unknown command 'frobnicate'",
                        "FAIL memset: missing value",
                        "OK little");
    }

    @Test
    void clockCommandsAdvanceAVirtualClockWithoutTimers() throws IOException {
        assertThat(serve("clock_step", "clock_step 100", "clock_set 50", "clock_set 1000", "clock_step -5"))
                .containsExactly("OK 0", "OK 100", "OK 100", "OK 1000", "OK 1000");
    }

    @Test
    void aLastCommandWithoutNewlineIsStillServed() throws IOException {
        Path image = dir.resolve("d.img");
        Files.write(image, new byte[1 << 20]);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (PcMachine machine = new PcMachine(MachineConfig.parse(List.of("-m", "1M", "-drive", "file=" + image)))) {
            new QtestServer(machine, new ByteArrayInputStream("endianness\r\ninb 0x80".getBytes(StandardCharsets.ISO_8859_1)),
                    out).serve();
        }
        assertThat(out.toString(StandardCharsets.ISO_8859_1)).isEqualTo("OK little\nOK 0x00ff\n");
    }
}
