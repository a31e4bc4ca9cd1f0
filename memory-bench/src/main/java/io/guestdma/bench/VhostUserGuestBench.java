package io.guestdma.bench;

import io.guestdma.vhostuser.testing.GuestBackEnd;
import io.guestdma.vhostuser.testing.LinuxGuest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * fio inside a real Linux guest (QEMU 7.2, TCG, Debian's kernel: {@link LinuxGuest}) against our
 * vhost-user-blk back end ({@code bin/vhost-user-blk}'s program in its own JVM) and against
 * qemu-storage-daemon's vhost-user-blk export, on the same image, in alternating boots of the same
 * run. Each boot runs 4 KiB random reads at queue depth 32 and 64 KiB sequential writes at depth 1
 * ({@code --direct=1}, libaio, {@link #SECONDS} s each after {@link #RAMP_SECONDS} s unmeasured);
 * the keys are our IOPS over
 * qemu-storage-daemon's, one ratio per pair of boots.
 *
 * <p>Measured only when QEMU, qemu-storage-daemon and the guest packages are present
 * ({@code bin/lib/install-guest.sh}); otherwise the keys are null and the report says why.
 */
final class VhostUserGuestBench {
    static final String RANDREAD = "vhost_user_blk_guest_randread_4k_qd32_vs_qsd";
    static final String SEQWRITE = "vhost_user_blk_guest_seqwrite_64k_qd1_vs_qsd";
    /** Pairs of boots (ours, then qemu-storage-daemon's) in the full suite; each gives one ratio per key. */
    static final int PAIRS = 3;
    /** Pairs of boots with {@code --quick}. */
    static final int PAIRS_QUICK = 2;
    /** fio's measured time per job. */
    static final int SECONDS = 8;
    /**
     * fio's unmeasured start of each job, on both back ends: our back end is a fresh JVM per boot,
     * whose JIT compiles the request path (on the cores the guest runs on) during the first
     * seconds of I/O; a long-running back end has done that long before.
     */
    static final int RAMP_SECONDS = 3;
    static final long IMAGE_BYTES = 256L << 20;
    private static final String FIO = "fio --minimal --thread --ioengine=libaio --direct=1 --filename=$D"
            + " --time_based --runtime=" + SECONDS + " --ramp_time=" + RAMP_SECONDS + " --randseed=1";
    /** fio's terse (version 3) line: read IOPS is field 8, write IOPS field 49. */
    static final String WORKLOAD = """
            echo "GUEST randread $(%1$s --name=rr --rw=randread --bs=4k --iodepth=32 | cut -d';' -f8)"
            echo "GUEST seqwrite $(%1$s --name=sw --rw=write --bs=64k --iodepth=1 | cut -d';' -f49)"
            """.formatted(FIO);

    private VhostUserGuestBench() {
    }

    /**
     * Runs only this measurement (without the JMH suite) and prints each key's ratios.
     *
     * @param args none
     */
    public static void main(String[] args) {
        measure(PAIRS).forEach((key, ratios) -> System.out.println(key + " " + ratios));
    }

    /**
     * Runs the pairs of boots.
     *
     * @param pairs how many pairs of boots
     * @return each key's ratios, one per pair whose two boots worked (a failed pair is left out,
     *     the reason on standard error); empty when the guest cannot be built here
     */
    static Map<String, List<Double>> measure(int pairs) {
        var missing = LinuxGuest.missing();
        if (missing.isPresent() || LinuxGuest.onPath("qemu-storage-daemon").isEmpty()) {
            System.err.println("guestdma bench: vhost-user guest keys not measured: "
                    + missing.orElse("qemu-storage-daemon is not on the PATH (apt-get install qemu-system-common)"));
            return Map.of();
        }
        Map<String, List<Double>> ratios = new LinkedHashMap<>();
        ratios.put(RANDREAD, new ArrayList<>());
        ratios.put(SEQWRITE, new ArrayList<>());
        Path dir = null;
        try {
            dir = QemuImgBench.imageDirectory("guestdma-vhost-guest-bench");
            System.err.println("guestdma bench: fio in a Linux guest over vhost-user-blk, ours against"
                    + " qemu-storage-daemon, " + pairs + " pairs of boots...");
            LinuxGuest guest = LinuxGuest.build(Files.createDirectory(dir.resolve("guest")), Map.of("fio", WORKLOAD));
            Path image = dir.resolve("disk.img");
            byte[] chunk = new byte[1 << 20];
            new Random(1).nextBytes(chunk);
            try (var out = Files.newOutputStream(image)) {
                for (long written = 0; written < IMAGE_BYTES; written += chunk.length) {
                    out.write(chunk);
                }
            }
            for (int pair = 0; pair < pairs; pair++) {
                Map<String, String> ours;
                Map<String, String> qsd;
                try {
                    ours = boot(guest, dir, image, true, pair);
                    qsd = boot(guest, dir, image, false, pair);
                } catch (IOException e) {
                    // One boot that hangs or fails (either back end) costs its pair, not the others.
                    System.err.println("guestdma bench:   pair " + (pair + 1) + " left out: " + e.getMessage());
                    continue;
                }
                for (var key : List.of(Map.entry(RANDREAD, "randread"), Map.entry(SEQWRITE, "seqwrite"))) {
                    double theirs = Double.parseDouble(qsd.get(key.getValue()));
                    ratios.get(key.getKey()).add(Double.parseDouble(ours.get(key.getValue())) / theirs);
                }
                System.err.printf("guestdma bench:   pair %d: randread %s vs %s IOPS, seqwrite %s vs %s IOPS%n",
                        pair + 1, ours.get("randread"), qsd.get("randread"), ours.get("seqwrite"), qsd.get("seqwrite"));
            }
            return ratios;
        } catch (IOException | RuntimeException e) {
            System.err.println("guestdma bench: vhost-user guest keys not measured: " + e.getMessage());
            return Map.of();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Map.of();
        } finally {
            if (dir != null) {
                deleteTree(dir);
            }
        }
    }

    private static Map<String, String> boot(LinuxGuest guest, Path dir, Path image, boolean ours, int pair)
            throws IOException, InterruptedException {
        Path socket = dir.resolve((ours ? "guestdma-" : "qsd-") + pair + ".sock");
        try (GuestBackEnd backEnd = ours ? GuestBackEnd.guestdma(socket, image, 1)
                : GuestBackEnd.qemuStorageDaemon(socket, image, 1);
             LinuxGuest.Running running = guest.start(new LinuxGuest.Boot("fio", 1, socket, 1, false),
                     dir.resolve(socket.getFileName() + ".console"))) {
            Map<String, String> report = running.awaitReport(300);
            for (String key : List.of("randread", "seqwrite")) {
                String value = report.getOrDefault(key, "");
                if (!value.matches("[0-9.]+") || Double.parseDouble(value) <= 0) {
                    throw new IOException(backEnd.name() + ": fio gave no " + key + " IOPS " + running.describe());
                }
            }
            return report;
        }
    }

    private static void deleteTree(Path dir) {
        try (var walk = Files.walk(dir)) {
            for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // A temporary directory left behind is harmless.
        }
    }
}
