package io.guestdma.vhostuser.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link LinuxGuest}'s boot description and its wait for a guest's report, with a stand-in for
 * QEMU (a process that never exits) and a console file written here: no guest is booted.
 */
class LinuxGuestTest {
    @TempDir
    Path dir;

    @Test
    void aGuestThatGoesQuiet_isKilledEarly_namingItsStageAndItsBackEnds() throws Exception {
        Path console = Files.writeString(dir.resolve("console"), "GUEST ready fio\nGUEST stage round 2, randread on guestdma\n");
        Path stderr = Files.createFile(dir.resolve("stderr"));
        Path log = Files.writeString(dir.resolve("back-end.log"), "listening\n");
        Process qemu = new ProcessBuilder("sleep", "60").start();
        Process backEnd = new ProcessBuilder("sleep", "60").start();
        try (var running = new LinuxGuest.Running(qemu, console, stderr)) {
            long start = System.nanoTime();
            assertThatThrownBy(() -> running.awaitReport(30, 1, List.of(new GuestBackEnd("guestdma", backEnd, log))))
                    .isInstanceOf(LinuxGuest.WentQuiet.class)
                    .hasMessageContaining("reported nothing for 1 s")
                    .hasMessageContaining("last stage: GUEST stage round 2, randread on guestdma")
                    .hasMessageContaining("guestdma (pid " + backEnd.pid() + ") alive, log: listening");
            assertThat((System.nanoTime() - start) / 1e9).as("seconds waited").isLessThan(10);
            assertThat(qemu.isAlive()).as("QEMU killed").isFalse();
        } finally {
            backEnd.destroyForcibly().waitFor();
        }
    }

    @Test
    void theBootHasItsOwnQuietBound_andEachLaterLineTheShorterOne() throws Exception {
        Path console = Files.createFile(dir.resolve("console"));
        Path stderr = Files.createFile(dir.resolve("stderr"));
        // Boots (no line) for 2 s, then one line, then nothing.
        Process qemu = new ProcessBuilder("sh", "-c", "sleep 2; echo GUEST stage round 1 >> " + console + "; sleep 60").start();
        try (var running = new LinuxGuest.Running(qemu, console, stderr)) {
            long start = System.nanoTime();
            assertThatThrownBy(() -> running.awaitReport(30, 5, 1, List.of())).isInstanceOf(LinuxGuest.WentQuiet.class)
                    .hasMessageContaining("reported nothing for 1 s")
                    .hasMessageContaining("last stage: GUEST stage round 1");
            assertThat((System.nanoTime() - start) / 1e9).as("seconds waited: the boot's 2, then 1").isBetween(2.5, 6.5);
        }
    }

    @Test
    void aGuestThatKeepsReporting_isBoundByTheWholeWait() throws Exception {
        Path console = Files.createFile(dir.resolve("console"));
        Path stderr = Files.createFile(dir.resolve("stderr"));
        Process qemu = new ProcessBuilder("sh", "-c", "while :; do echo GUEST tick >> " + console + "; sleep 0.3; done").start();
        try (var running = new LinuxGuest.Running(qemu, console, stderr)) {
            assertThatThrownBy(() -> running.awaitReport(2, 1, List.of())).isInstanceOf(IOException.class)
                    .isNotInstanceOf(LinuxGuest.WentQuiet.class)
                    .hasMessageContaining("did not power off within 2 s").hasMessageContaining("last stage: GUEST tick");
        }
    }

    @Test
    void aBootHasOneToEightDisks() {
        var disk = new LinuxGuest.Disk(dir.resolve("s"), 1, false);
        assertThat(new LinuxGuest.Boot("w", 1, dir.resolve("s"), 2, true).disks())
                .containsExactly(new LinuxGuest.Disk(dir.resolve("s"), 2, true));
        assertThatThrownBy(() -> new LinuxGuest.Boot("w", 1, List.of())).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new LinuxGuest.Boot("w", 1, java.util.Collections.nCopies(LinuxGuest.MAX_DISKS + 1, disk)))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new LinuxGuest.Disk(dir.resolve("s"), 0, false)).isInstanceOf(IllegalArgumentException.class);
    }
}
