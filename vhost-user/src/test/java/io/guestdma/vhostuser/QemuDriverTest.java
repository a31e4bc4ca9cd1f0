package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.fail;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioBlkConfig;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole path with QEMU 7.2 as the VMM: QEMU's vhost-user-blk-pci, started through qtest as a
 * guest driver would start it (PCI BAR, virtio-pci common configuration, one ring, DRIVER_OK), hands
 * its memfd RAM and eventfds to our back end; requests written into guest RAM and notified through
 * QEMU's notify register are done by our virtio-blk on the image, and completed in the used ring.
 */
class QemuDriverTest {
    static final long BAR = 0xe000_0000L;
    /** QEMU 7.2's modern virtio-pci layout in BAR 4: common configuration, then notify at 0x3000. */
    static final long COMMON = BAR;
    static final long NOTIFY = BAR + 0x3000;
    static final long RING = 0x100000;
    static final int QSIZE = 16;

    @TempDir
    Path dir;

    /** QEMU under qtest on stdin/stdout, one command at a time. */
    static final class Qtest implements AutoCloseable {
        final Process process;
        final BufferedReader in;
        final OutputStream out;

        Qtest(Process process) {
            this.process = process;
            this.in = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.US_ASCII));
            this.out = process.getOutputStream();
        }

        String command(String line) throws IOException {
            out.write((line + "\n").getBytes(StandardCharsets.US_ASCII));
            out.flush();
            while (true) {
                String reply = in.readLine();
                if (reply == null) {
                    throw new IOException("QEMU exited during '" + line + "'");
                }
                if (reply.startsWith("IRQ")) {
                    continue;
                }
                if (!reply.startsWith("OK")) {
                    throw new IOException("'" + line + "': " + reply);
                }
                return reply.length() > 3 ? reply.substring(3) : "";
            }
        }

        long value(String line) throws IOException {
            return Long.decode(command(line).trim());
        }

        void pciWrite(int reg, long value) throws IOException {
            command(String.format("outl 0xcf8 0x%x", 0x8000_0000L | (4 << 11) | reg));
            command(String.format("outl 0xcfc 0x%x", value));
        }

        long pciRead(int reg) throws IOException {
            command(String.format("outl 0xcf8 0x%x", 0x8000_0000L | (4 << 11) | reg));
            return value("inl 0xcfc");
        }

        void write(long address, int width, long value) throws IOException {
            String op = switch (width) {
                case 1 -> "writeb";
                case 2 -> "writew";
                case 4 -> "writel";
                default -> "writeq";
            };
            command(String.format("%s 0x%x 0x%x", op, address, value));
        }

        long read(long address, int width) throws IOException {
            String op = switch (width) {
                case 1 -> "readb";
                case 2 -> "readw";
                case 4 -> "readl";
                default -> "readq";
            };
            return value(String.format("%s 0x%x", op, address));
        }

        void writeBytes(long address, byte[] bytes) throws IOException {
            command(String.format("write 0x%x 0x%x 0x%s", address, bytes.length, HexFormat.of().formatHex(bytes)));
        }

        byte[] readBytes(long address, int length) throws IOException {
            String hex = command(String.format("read 0x%x 0x%x", address, length)).trim();
            return HexFormat.of().parseHex(hex.substring(2));
        }

        @Override
        public void close() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
        }
    }

    Qtest startQemu(Path stderr, String... device) throws IOException {
        byte[] halt = new byte[65536];
        for (int i = 0; i < halt.length; i += 2) {
            halt[i] = (byte) 0xfa; // cli
            halt[i + 1] = (byte) 0xf4; // hlt
        }
        Path bios = Files.write(dir.resolve("HALT.bin"), halt);
        ProcessBuilder builder = new ProcessBuilder(QemuNegotiationTest.qemu().toString(), "-machine", "pc", "-nodefaults",
                "-display", "none", "-bios", bios.toString(), "-qtest", "stdio", "-qtest-log", "none",
                "-monitor", "none", "-serial", "none", "-m", "64M",
                "-object", "memory-backend-memfd,id=mem,size=64M,share=on", "-numa", "node,memdev=mem",
                "-device")
                .redirectError(stderr.toFile());
        builder.command().addAll(Arrays.asList(device));
        Process p = builder.start();
        return new Qtest(p);
    }

    /** What the driver script saw. */
    record Observed(long writeStatus, long readStatus, long readLength, byte[] readBack, byte[] image) {
    }

    @Test
    void requestsNotifiedThroughQemu_areDoneOnTheImage_asQemusOwnVirtioBlkDoesThem() throws Exception {
        Path stderr = dir.resolve("qemu.err");
        Observed ours;
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[4 << 20]);
        Path socket = dir.resolve("blk.sock");
        try (FileChannelBackend disk = FileChannelBackend.open(image, BlockOptions.defaults())) {
            VhostUserBackend backend = new VhostUserBackend(m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults()));
            try {
                backend.listen(socket);
                try (Qtest q = startQemu(stderr, "vhost-user-blk-pci,chardev=c,addr=04.0,num-queues=1",
                        "-chardev", "socket,id=c,path=" + socket)) {
                    ours = drive(q, stderr, image, backend);
                }
            } finally {
                backend.close();
                ((VirtioBlk) backend.device()).close();
            }
        }
        assertThat(ours.writeStatus()).as("write status").isEqualTo(VirtioBlk.S_OK);
        assertThat(ours.readStatus()).as("read status").isEqualTo(VirtioBlk.S_OK);
        assertThat(Arrays.copyOfRange(ours.image(), 16 * 512, 16 * 512 + PATTERN.length))
                .as("the image behind our back end").isEqualTo(PATTERN);
        assertThat(ours.readBack()).as("read back through QEMU's RAM").isEqualTo(PATTERN);

        // The same script against QEMU's own virtio-blk-pci on an image of its own.
        Path reference = dir.resolve("reference.img");
        Files.write(reference, new byte[4 << 20]);
        Observed qemus;
        try (Qtest q = startQemu(stderr, "virtio-blk-pci,drive=d,addr=04.0,num-queues=1",
                "-drive", "file=" + reference + ",if=none,id=d,format=raw")) {
            qemus = drive(q, stderr, reference, null);
        }
        assertThat(ours.writeStatus()).isEqualTo(qemus.writeStatus());
        assertThat(ours.readStatus()).isEqualTo(qemus.readStatus());
        assertThat(ours.readLength()).as("used length of the read").isEqualTo(qemus.readLength());
        assertThat(ours.readBack()).isEqualTo(qemus.readBack());
        assertThat(ours.image()).as("the two images, byte for byte").isEqualTo(qemus.image());
    }

    @Test
    void aBackEndRestartedUnderReconnect_takesTheRingOverWhereTheLastOneLeftIt() throws Exception {
        Path stderr = dir.resolve("qemu.err");
        Path image = dir.resolve("disk.img");
        Files.write(image, new byte[4 << 20]);
        Path socket = dir.resolve("blk.sock");
        try (FileChannelBackend disk = FileChannelBackend.open(image, BlockOptions.defaults())) {
            VhostUserBackend[] current = {new VhostUserBackend(m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults()))};
            try {
                current[0].listen(socket);
                Observed seen;
                try (Qtest q = startQemu(stderr, "vhost-user-blk-pci,chardev=c,addr=04.0,num-queues=1",
                        "-chardev", "socket,id=c,path=" + socket + ",reconnect=1")) {
                    seen = drive(q, stderr, image, current[0], () -> {
                        // The first back end goes away after the write; a new one takes the same socket.
                        current[0].close();
                        ((VirtioBlk) current[0].device()).close();
                        current[0] = new VhostUserBackend(m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults()));
                        current[0].listen(socket);
                        return current[0];
                    });
                }
                assertThat(seen.writeStatus()).isEqualTo(VirtioBlk.S_OK);
                assertThat(seen.readStatus()).isEqualTo(VirtioBlk.S_OK);
                assertThat(seen.readBack()).as("read by the second back end").isEqualTo(PATTERN);
                assertThat(current[0].status().connections()).isEqualTo(1);
            } finally {
                current[0].close();
                ((VirtioBlk) current[0].device()).close();
            }
        }
    }

    static final byte[] PATTERN = new byte[8192];

    static {
        new Random(7).nextBytes(PATTERN);
    }

    /** Runs the driver script; fails with QEMU's stderr if QEMU refuses a step. */
    private Observed drive(Qtest q, Path stderr, Path image, VhostUserBackend backend) throws Exception {
        return drive(q, stderr, image, backend, null);
    }

    private Observed drive(Qtest q, Path stderr, Path image, VhostUserBackend backend, Restart restart)
            throws Exception {
        try {
            return script(q, image, backend, restart);
        } catch (IOException | AssertionError e) {
            throw new AssertionError(e.getMessage() + "; QEMU's stderr: " + Files.readString(stderr), e);
        }
    }

    /** The driver: PCI, features, ring 0, DRIVER_OK, then a write and a read of 8 KiB at sector 16. */
    private static Observed script(Qtest q, Path image, VhostUserBackend backend) throws Exception {
        return script(q, image, backend, null);
    }

    /** Between the write and the read: replaces the back end, returning the new one. */
    @FunctionalInterface
    interface Restart {
        VhostUserBackend replace() throws Exception;
    }

    private static void awaitRunning(VhostUserBackend backend) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (backend.status().runningQueues() != 1) {
            assertThat(System.nanoTime()).as("QEMU never started ring 0 on the back end: %s", backend.status())
                    .isLessThan(deadline);
            Thread.sleep(10);
        }
        assertThat(backend.status().memoryRegions()).as("regions QEMU shared").isPositive();
    }

    private static Observed script(Qtest q, Path image, VhostUserBackend backend, Restart restart) throws Exception {
        assertThat(q.pciRead(0) & 0xffff).as("vendor").isEqualTo(0x1af4);
        q.pciWrite(0x20, BAR | 0x4); // BAR 4: 64-bit memory
        q.pciWrite(0x24, 0);
        q.pciWrite(0x04, 0x6); // memory space and bus mastering
        q.write(COMMON + 0x14, 1, 0);
        q.write(COMMON + 0x14, 1, 1);
        q.write(COMMON + 0x14, 1, 3);
        q.write(COMMON + 0x00, 4, 1);
        assertThat(q.read(COMMON + 0x04, 4) & 1).as("VIRTIO_F_VERSION_1 offered").isEqualTo(1);
        q.write(COMMON + 0x08, 4, 0);
        q.write(COMMON + 0x0c, 4, VirtioBlk.F_FLUSH);
        q.write(COMMON + 0x08, 4, 1);
        q.write(COMMON + 0x0c, 4, 1);
        q.write(COMMON + 0x14, 1, 0xb);
        assertThat(q.read(COMMON + 0x14, 1)).as("FEATURES_OK accepted").isEqualTo(0xb);
        q.write(COMMON + 0x16, 2, 0);
        q.write(COMMON + 0x18, 2, QSIZE);
        long desc = RING;
        long avail = RING + 0x1000;
        long used = RING + 0x2000;
        q.write(COMMON + 0x20, 8, desc);
        q.write(COMMON + 0x28, 8, avail);
        q.write(COMMON + 0x30, 8, used);
        long notifyOff = q.read(COMMON + 0x1e, 2);
        q.write(COMMON + 0x1c, 2, 1);
        q.write(COMMON + 0x14, 1, 0xf); // DRIVER_OK: QEMU starts the vhost-user device now
        if (backend != null) {
            awaitRunning(backend);
        }
        long header = 0x200000;
        long data = 0x201000;
        long status = 0x204000;
        q.writeBytes(data, PATTERN);
        submit(q, desc, avail, 0, header, VirtioBlk.T_OUT, 16, data, PATTERN.length, false, status, notifyOff);
        awaitUsed(q, used, 1);
        long writeStatus = q.read(status, 1);
        if (restart != null) {
            awaitRunning(restart.replace());
        }
        long back = 0x208000;
        submit(q, desc, avail, 1, header, VirtioBlk.T_IN, 16, back, PATTERN.length, true, status, notifyOff);
        awaitUsed(q, used, 2);
        return new Observed(writeStatus, q.read(status, 1), q.read(used + 4 + 8 + 4, 4),
                q.readBytes(back, PATTERN.length), Files.readAllBytes(image));
    }

    /** Request {@code n} (descriptors 3n..3n+2): header, data, status; then the avail ring and the notify. */
    private static void submit(Qtest q, long desc, long avail, int n, long header, int type, long sector,
                               long data, int length, boolean deviceWrites, long status, long notifyOff)
            throws IOException {
        q.write(header, 4, type);
        q.write(header + 4, 4, 0);
        q.write(header + 8, 8, sector);
        q.write(status, 1, 0xff);
        int d = 3 * n;
        long[][] bufs = {{header, 16, 0}, {data, length, deviceWrites ? 2 : 0}, {status, 1, 2}};
        for (int i = 0; i < 3; i++) {
            long at = desc + 16L * (d + i);
            q.write(at, 8, bufs[i][0]);
            q.write(at + 8, 4, bufs[i][1]);
            q.write(at + 12, 2, bufs[i][2] | (i < 2 ? 1 : 0));
            q.write(at + 14, 2, d + i + 1);
        }
        q.write(avail + 4 + 2L * n, 2, d);
        q.write(avail + 2, 2, n + 1);
        q.write(NOTIFY + 4 * notifyOff, 2, 0);
    }

    private static void awaitUsed(Qtest q, long used, int expected) throws Exception {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (q.read(used + 2, 2) != expected) {
            if (System.nanoTime() > deadline) {
                fail("the used index never reached " + expected);
            }
            Thread.sleep(5);
        }
    }
}
