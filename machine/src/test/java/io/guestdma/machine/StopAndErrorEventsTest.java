package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * werror/rerror policies end to end in one JVM: BLOCK_IO_ERROR events with QEMU's fields, STOP
 * and io-error for a stop policy, cont retrying, and the monitor's qemu-io commands. The same
 * against QEMU 7.2 over libqtest's sockets: IdeTestUnderLibqtestTest.
 */
class StopAndErrorEventsTest {
    @TempDir
    Path dir;

    private final List<MachineEvent> events = new CopyOnWriteArrayList<>();

    private PcMachine machine(String rules, String driveOptions) throws IOException {
        Path image = Files.write(dir.resolve("disk.img"), new byte[1 << 20]);
        Path config = Files.writeString(dir.resolve("rules.conf"), rules);
        PcMachine m = new PcMachine(MachineConfig.parse(List.of("-m", "16M",
                "-drive", "file=blkdebug:" + config + ":" + image + ",if=ide,format=raw" + driveOptions)));
        m.eventListener(events::add);
        return m;
    }

    /** WRITE SECTORS of sector 1 by PIO (dirtying the image), then FLUSH CACHE; returns the status. */
    private static int writeThenFlush(PcMachine m) {
        m.ports().write(0x1f6, 1, 0xe0);
        m.ports().write(0x1f2, 1, 1);
        m.ports().write(0x1f3, 1, 1);
        m.ports().write(0x1f4, 1, 0);
        m.ports().write(0x1f5, 1, 0);
        m.ports().write(0x1f7, 1, 0x30);
        for (int i = 0; i < 256; i++) {
            m.ports().write(0x1f0, 2, 0x5a5a);
        }
        m.ports().write(0x1f7, 1, 0xe7);
        return m.ports().read(0x1f7, 1);
    }

    private static final String FAIL_FLUSH_ONCE = """
            [inject-error]
            event = "flush_to_disk"
            errno = "%d"
            once = "on"
            """;

    @Test
    void stopPolicyStopsTheMachineAndContRetries() throws IOException {
        try (PcMachine m = machine(FAIL_FLUSH_ONCE.formatted(5), ",werror=stop")) {
            assertThat(writeThenFlush(m)).as("held: busy").isEqualTo(0xc0);
            assertThat(events).containsExactly(
                    new MachineEvent.BlockIoError("ide0-hd0", "#block-ide0-hd0", "write", "stop", false,
                            "Input/output error"),
                    new MachineEvent.Stopped());
            assertThat(m.runState()).isEqualTo("io-error");
            m.stop(); // already stopped: nothing happens
            assertThat(events).hasSize(2);
            m.cont();
            assertThat(events.get(2)).isEqualTo(new MachineEvent.Resumed());
            assertThat(m.ports().read(0x1f7, 1)).as("the retried flush succeeded").isEqualTo(0x50);
            assertThat(m.runState()).isEqualTo("running");
        }
    }

    @Test
    void reportAndIgnorePoliciesReportTheErrorToo() throws IOException {
        // no stop or enospc policy: QEMU keeps no I/O status, and the event has no nospace member
        try (PcMachine m = machine(FAIL_FLUSH_ONCE.formatted(28), ",werror=report")) {
            assertThat(writeThenFlush(m)).as("reported: ERR").isEqualTo(0x41);
            assertThat(events).containsExactly(new MachineEvent.BlockIoError("ide0-hd0", "#block-ide0-hd0", "write",
                    "report", null, "No space left on device"));
        }
        events.clear();
        try (PcMachine m = machine(FAIL_FLUSH_ONCE.formatted(5), ",werror=ignore,rerror=stop")) {
            assertThat(writeThenFlush(m)).as("ignored: success").isEqualTo(0x50);
            assertThat(events).containsExactly(new MachineEvent.BlockIoError("ide0-hd0", "#block-ide0-hd0", "write",
                    "ignore", false, "Input/output error"));
            assertThat(m.runState()).isEqualTo("running");
        }
    }

    @Test
    void theDefaultEnospcPolicyStopsOnlyForAFullDisk() throws IOException {
        try (PcMachine m = machine(FAIL_FLUSH_ONCE.formatted(28), "")) {
            assertThat(writeThenFlush(m)).as("held: busy").isEqualTo(0xc0);
            assertThat(events).containsExactly(
                    new MachineEvent.BlockIoError("ide0-hd0", "#block-ide0-hd0", "write", "stop", true,
                            "No space left on device"),
                    new MachineEvent.Stopped());
            m.cont();
            assertThat(m.ports().read(0x1f7, 1)).as("the retried flush succeeded").isEqualTo(0x50);
        }
        events.clear();
        try (PcMachine m = machine(FAIL_FLUSH_ONCE.formatted(5), ",werror=enospc")) {
            assertThat(writeThenFlush(m)).as("reported: ERR").isEqualTo(0x41);
            assertThat(events).containsExactly(new MachineEvent.BlockIoError("ide0-hd0", "#block-ide0-hd0", "write",
                    "report", false, "Input/output error"));
            assertThat(m.runState()).isEqualTo("running");
        }
    }

    @Test
    void qemuIoBreakpointsThroughTheMonitor() throws IOException {
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        try (PcMachine m = machine("", "")) {
            HumanMonitor hmp = new HumanMonitor(m, new PrintStream(printed, true, StandardCharsets.UTF_8));
            assertThat(hmp.execute("qemu-io ide0-hd0 \"break flush_to_os A\"")).isEmpty();
            assertThat(writeThenFlush(m)).as("held at the breakpoint: busy").isEqualTo(0xc0);
            assertThat(m.blkdebug("ide0-hd0").orElseThrow().isHeld("A")).isTrue();
            assertThat(hmp.execute("qemu-io -d ide0-hd0 \"wait_break A\"")).isEmpty();
            assertThat(hmp.execute("qemu-io ide0-hd0 \"resume A\"")).isEmpty();
            long deadline = System.nanoTime() + 10_000_000_000L;
            while ((m.ports().read(0x1f7, 1) & 0x80) != 0) {
                assertThat(System.nanoTime()).isLessThan(deadline);
            }
            assertThat(m.ports().read(0x1f7, 1)).isEqualTo(0x50);
            assertThat(printed.toString(StandardCharsets.UTF_8)).isEmpty();
            hmp.execute("qemu-io ide0-hd0 \"resume A\"");
            hmp.execute("qemu-io ide0-hd0 \"break no_such_event B\"");
            hmp.execute("qemu-io ide0-hd0 \"read 0 512\"");
            assertThat(printed.toString(StandardCharsets.UTF_8)).isEqualTo("""
                    Could not resume request: No such file or directory
                    Could not set breakpoint: No such file or directory (blkdebug event 'no_such_event' is not \
                    raised by a raw image here (events: read_aio, write_aio, pwritev, pwritev_done, flush_to_os, \
                    flush_to_disk))
                    command "read" is not supported here (break, remove_break, resume, wait_break)
                    """);
            assertThat(hmp.execute("qemu-io nosuch \"resume A\""))
                    .isEqualTo("Error: Cannot find device='nosuch' nor node-name='nosuch'\r\n");
            assertThat(hmp.execute("info status")).isEqualTo("VM status: running\r\n");
            assertThat(hmp.execute("stop")).isEmpty();
            assertThat(hmp.execute("info status")).isEqualTo("VM status: paused\r\n");
            assertThat(hmp.execute("bogus")).isEqualTo("unknown command: 'bogus'\r\n");
            assertThat(hmp.execute("qemu-io ide0-hd0 \"unterminated")).isEqualTo("Error: unterminated string literal\r\n");
        }
    }

    @Test
    void aDriveWithoutBlkdebugCannotBreak() throws IOException {
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        Path image = Files.write(dir.resolve("plain.img"), new byte[1 << 20]);
        try (PcMachine m = new PcMachine(MachineConfig.parse(List.of("-drive", "file=" + image)))) {
            new HumanMonitor(m, new PrintStream(printed, true, StandardCharsets.UTF_8))
                    .execute("qemu-io ide0-hd0 \"break flush_to_os A\"");
            assertThat(printed.toString(StandardCharsets.UTF_8))
                    .isEqualTo("Could not set breakpoint: Operation not supported\n");
        }
    }

    @Test
    void closingReleasesARequestHeldAtABreakpoint() throws IOException {
        PcMachine m = machine("", "");
        new HumanMonitor(m, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8))
                .execute("qemu-io ide0-hd0 \"break flush_to_os A\"");
        assertThat(writeThenFlush(m)).isEqualTo(0xc0);
        m.close(); // must not wait for the held flush forever
    }
}
