package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.fail;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioBlkConfig;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QEMU 7.2's vhost-user-blk-pci against our back end: QEMU connects, negotiates features and
 * protocol features, reads the configuration space and realizes the device (a failed GET_CONFIG or
 * queue count makes it exit); killed, it leaves the back end ready for the next QEMU.
 */
class QemuNegotiationTest {
    static final String QEMU = "qemu-system-x86_64";

    @TempDir
    Path dir;

    static Path qemu() {
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path candidate = Path.of(d.isEmpty() ? "." : d, QEMU);
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        String why = QEMU + " is not on the PATH";
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail(why + "; CI must have it (bin/test installs qemu-system-x86 with apt-get)");
        }
        Assumptions.abort(why + "; skipped (install qemu-system-x86)");
        throw new AssertionError("unreachable");
    }

    Process startQemu(Path socket, Path stderr) throws IOException {
        return new ProcessBuilder(qemu().toString(), "-machine", "pc", "-nodefaults", "-display", "none", "-S",
                "-m", "64M", "-object", "memory-backend-memfd,id=mem,size=64M,share=on", "-numa", "node,memdev=mem",
                "-chardev", "socket,id=c,path=" + socket, "-device", "vhost-user-blk-pci,chardev=c,addr=04.0",
                "-monitor", "none", "-serial", "none")
                .redirectError(stderr.toFile()).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    }

    @Test
    void qemuRealizesVhostUserBlk_andTheNextQemuIsServedAfterTheFirstIsKilled() throws Exception {
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[4 << 20]);
        Path socket = dir.resolve("blk.sock");
        Path stderr = dir.resolve("qemu.err");
        try (FileChannelBackend disk = FileChannelBackend.open(image, BlockOptions.defaults())) {
            VhostUserBackend backend = new VhostUserBackend(m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults()));
            try {
                backend.listen(socket);
                for (int round = 1; round <= 2; round++) {
                    Process qemu = startQemu(socket, stderr);
                    try {
                        awaitRealized(backend, qemu, stderr, round);
                        VhostUserBackend.Status s = backend.status();
                        assertThat(s.protocolFeatures() & (Protocol.PF_MQ | Protocol.PF_REPLY_ACK | Protocol.PF_CONFIG))
                                .as("protocol features QEMU set").isEqualTo(Protocol.PF_MQ | Protocol.PF_REPLY_ACK
                                        | Protocol.PF_CONFIG);
                        assertThat(s.lastError()).isNull();
                    } finally {
                        qemu.destroy();
                        if (!qemu.waitFor(10, TimeUnit.SECONDS)) {
                            qemu.destroyForcibly().waitFor();
                        }
                    }
                    long deadline = System.nanoTime() + 10_000_000_000L;
                    while (backend.status().connected()) {
                        assertThat(System.nanoTime()).as("the back end never saw QEMU go").isLessThan(deadline);
                        Thread.sleep(10);
                    }
                    assertThat(backend.status().connections()).isEqualTo(round);
                    assertThat(backend.status().lastError()).as("a VMM that goes away is no error").isNull();
                }
            } finally {
                backend.close();
                ((VirtioBlk) backend.device()).close();
            }
            assertThat(socket).doesNotExist();
        }
    }

    /**
     * Waits until QEMU has set its protocol features and then stayed up for a while: QEMU realizes
     * vhost-user-blk-pci (GET_CONFIG among the rest) before the machine is created, and exits with
     * an error if any of it fails.
     */
    static void awaitRealized(VhostUserBackend backend, Process qemu, Path stderr, int connection) throws Exception {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (backend.status().connections() < connection || backend.status().protocolFeatures() == 0) {
            if (!qemu.isAlive()) {
                fail("QEMU exited with " + qemu.exitValue() + ": " + Files.readString(stderr));
            }
            assertThat(System.nanoTime()).as("QEMU never negotiated").isLessThan(deadline);
            Thread.sleep(10);
        }
        // QEMU prints nothing and stays up once the device is realized; a refused step ends it.
        for (int i = 0; i < 100 && qemu.isAlive(); i++) {
            Thread.sleep(10);
        }
        assertThat(qemu.isAlive()).as("QEMU is up; its stderr: %s", Files.readString(stderr)).isTrue();
        assertThat(Files.readString(stderr)).isEmpty();
        assertThat(backend.status().connected()).isTrue();
    }
}
