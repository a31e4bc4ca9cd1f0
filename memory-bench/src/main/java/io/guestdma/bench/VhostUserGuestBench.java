package io.guestdma.bench;

import io.guestdma.vhostuser.testing.GuestBackEnd;
import io.guestdma.vhostuser.testing.LinuxGuest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * fio inside a real Linux guest (QEMU 7.2, TCG, Debian's kernel: {@link LinuxGuest}) against our
 * vhost-user-blk back end ({@code bin/vhost-user-blk}'s program in its own JVM) and against
 * qemu-storage-daemon's vhost-user-blk export, in one boot with two disks: one served by each back
 * end, each on its own copy of the same image (same content, same host file system).
 *
 * <p>Both back ends are measured in the same boot, the same minutes and the same load, job by job:
 * after an unmeasured warm-up on our disk (our back end is a fresh JVM whose JIT compiles the
 * request path during its first seconds of I/O), each round runs 4 KiB random reads at queue depth
 * 32, then 64 KiB sequential writes at depth 1 ({@code --direct=1}, libaio), each as four 1 s jobs
 * in the order A B B A (one back end, the other twice, the first again), A being ours in odd rounds
 * and qemu-storage-daemon's in even ones. Each round gives one ratio per key: our two jobs' IOPS
 * over qemu-storage-daemon's two; the report takes their median and spread. Why so: the TCG
 * guest's speed drifts with the host, both back ends' IOPS together (in one boot of 16 rounds,
 * from 8 000-12 000 random reads per second in some minutes to 17 000-25 000 in others), so a
 * ratio is only as good as its two sides are close in time; A B B A cancels a drift that is
 * steady over the round's seconds. (With one 2 s job per back end and key, the per-round random
 * read ratio of one boot ran from 0.71 to 1.56.)
 *
 * <p>The guest tells its disks apart by a marker line each image starts with, not by their names,
 * and says which it found. A guest that does not power off within {@link Plan#boundSeconds()},
 * does not reach its first progress line within {@link Plan#bootQuietSeconds()} or then prints none
 * for {@link Plan#quietSeconds()}, is killed, and the message names the last stage it reached and
 * whether each back end is alive. A guest that went quiet (a disk stopped answering) is booted
 * once more.
 *
 * <p>Both disks are offered without EVENT_IDX ({@code event_idx=off}): qemu-storage-daemon 7.2's
 * vhost-user-blk export takes requests with libvhost-user's {@code vu_queue_pop}, which publishes
 * avail_event and later reads the avail index again with no full fence in between, and never
 * turns notifications off and on around its loop (where QEMU's own devices get that fence). A
 * store-load reordering then lets the guest skip a kick that the export waits for, and its queue
 * stalls: its disk stopped answering in both boots of a quiet-machine run, in its random reads.
 * Without EVENT_IDX the guest kicks whenever the device has not asked it not to, which that export
 * never does. Both back ends get the same setting, so the ratio compares the same protocol.
 *
 * <p>Measured only when QEMU, qemu-storage-daemon and the guest packages are present
 * ({@code bin/lib/install-guest.sh}); otherwise the keys are left out and standard error says why.
 */
final class VhostUserGuestBench {
    static final String RANDREAD = "vhost_user_blk_guest_randread_4k_qd32_vs_qsd";
    static final String SEQWRITE = "vhost_user_blk_guest_seqwrite_64k_qd1_vs_qsd";
    static final String OURS = "guestdma";
    static final String THEIRS = "qemu-storage-daemon";
    /** The jobs of a round, by report name: the key, fio's arguments and the terse field with the IOPS. */
    static final List<Job> JOBS = List.of(
            new Job("randread", RANDREAD, "--rw=randread --bs=4k --iodepth=32", 8),
            new Job("seqwrite", SEQWRITE, "--rw=write --bs=64k --iodepth=1", 49));
    /**
     * The full suite's rounds: 8 of 8 jobs of 1 s, after 5 s of each job warming our back end;
     * about 2 min 20 s with the guest's build and boot on 2 busy cores. Its jobs are {@code --quick}'s
     * jobs, more of them: with 3 s jobs here and 2 s in {@code --quick} (until session 25), the
     * sequential writes' ratio was 1.29-1.36 in every quick run against 1.44 in the full run.
     */
    static final Plan FULL = new Plan(8, 1, 0, 5);
    /**
     * {@code --quick}'s rounds: 4 of 8 jobs of 1 s, after the full suite's warm-up (without it
     * the first round's random reads still ran at half speed now and then); about 1 min 30 s. (With
     * 3, one quick run's random reads gave rounds of 1.02, 1.05 and 1.28 against a full run's 1.19.)
     */
    static final Plan QUICK = new Plan(4, 1, 0, 5);
    /** How many jobs each back end runs per key in a round (the order A B B A). */
    static final int JOBS_PER_SIDE = 2;
    static final long IMAGE_BYTES = 256L << 20;
    /** What the first line of each image says, which the guest reads to know whose disk it is. */
    static final String MARKER = "guestdma-bench-disk ";
    /** The boot itself (QEMU start, kernel, init, the disks' handshakes) on a busy 2-core machine. */
    static final int BOOT_SECONDS = 60;

    /**
     * One fio job of a round.
     *
     * @param name   its name in the guest's report lines
     * @param key    the summary key its ratios go to
     * @param fio    fio's arguments for it
     * @param field  the field of fio's terse (version 3) line with its IOPS: 8 reads, 49 writes
     */
    record Job(String name, String key, String fio, int field) {
    }

    /**
     * How long the measurement runs.
     *
     * @param rounds      rounds, each one ratio per key
     * @param seconds     fio's measured time per job
     * @param rampSeconds fio's unmeasured start of each job (the queue filling)
     * @param warmSeconds each warm-up job's time on our disk before the first round
     */
    record Plan(int rounds, int seconds, int rampSeconds, int warmSeconds) {
        Plan {
            if (rounds < 1 || seconds < 1 || rampSeconds < 0 || warmSeconds < 0) {
                throw new IllegalArgumentException("bad plan: " + rounds + " rounds of " + seconds + " + "
                        + rampSeconds + " s, warm-up " + warmSeconds + " s");
            }
        }

        /** {@return the fio jobs of the boot, the warm-up's included} */
        int jobs() {
            return rounds * JOBS.size() * 2 * JOBS_PER_SIDE + JOBS.size();
        }

        /** {@return the seconds fio runs in the boot, by its own clock} */
        int fioSeconds() {
            return rounds * JOBS.size() * 2 * JOBS_PER_SIDE * (seconds + rampSeconds) + JOBS.size() * warmSeconds;
        }

        /**
         * {@return how long the boot may take in all: the boot itself, fio's time (by the guest's
         * clock, which keeps the host's time), 2 s per fio start (TCG and a loaded host stretch
         * it) and 30 s to spare}
         */
        long boundSeconds() {
            return BOOT_SECONDS + fioSeconds() + 2L * jobs() + 30;
        }

        /**
         * {@return how long the guest may take to its first progress line: the boot's time, plus
         * the longest job}
         */
        long bootQuietSeconds() {
            return BOOT_SECONDS + Math.max(seconds + rampSeconds, warmSeconds);
        }

        /**
         * {@return how long the guest may go without a progress line after the boot before it
         * counts as hung: the longest stretch between two lines (the warm-up's jobs, or one job),
         * plus 5 s per fio start (TCG and a loaded host stretch it) and 10 s to spare}
         */
        long quietSeconds() {
            return Math.max(seconds + rampSeconds, JOBS.size() * warmSeconds) + 5L * JOBS.size() + 10;
        }

        /** {@return the guest's shell script (busybox sh) for this plan} */
        String workload() {
            String fio = "fio --minimal --thread --ioengine=libaio --direct=1 --time_based --randseed=1";
            StringBuilder s = new StringBuilder("""
                    O=
                    Q=
                    # The disks' nodes may appear a moment after the drivers loaded (devtmpfs adds
                    # them from its own thread; a busy host slows the back ends' handshakes).
                    t=0
                    while [ $t -lt 30 ]; do
                        for d in /dev/vd?; do
                            [ -b "$d" ] || continue
                            case "$(dd if=$d bs=4k count=1 iflag=direct 2>/dev/null | head -n 1)" in
                                "%1$s%2$s") O=$d ;;
                                "%1$s%3$s") Q=$d ;;
                            esac
                        done
                        [ -n "$O" ] && [ -n "$Q" ] && break
                        sleep 1
                        t=$((t + 1))
                    done
                    echo "GUEST disks %2$s=$O %3$s=$Q"
                    [ -n "$O" ] && [ -n "$Q" ] || exit 3
                    # job ROUND NAME BACKEND DISK TIME FIELD FIO-ARGS...: one measured job, its IOPS
                    # reported as ROUND-NAME-BACKEND-TIME (TIME: the back end's first or second job of the round)
                    job() {
                        r=$1; n=$2; b=$3; d=$4; k=$5; f=$6; shift 6
                        echo "GUEST stage round $r, $n on $b ($k)"
                        echo "GUEST $r-$n-$b-$k $(%4$s --filename=$d --runtime=%5$d --ramp_time=%6$d --name=$n "$@" | cut -d';' -f$f)"
                    }
                    """.formatted(MARKER, OURS, THEIRS, fio, seconds, rampSeconds));
            if (warmSeconds > 0) {
                s.append("echo \"GUEST stage warm-up on ").append(OURS).append("\"\n");
                for (Job j : JOBS) {
                    s.append(fio).append(" --filename=$O --runtime=").append(warmSeconds).append(" --name=warm ")
                            .append(j.fio()).append(" >/dev/null\n");
                }
            }
            s.append("r=1\nwhile [ $r -le ").append(rounds).append(" ]; do\n")
                    .append("    if [ $((r % 2)) = 1 ]; then A=\"").append(OURS).append(" $O\"; B=\"").append(THEIRS)
                    .append(" $Q\"; else A=\"").append(THEIRS).append(" $Q\"; B=\"").append(OURS).append(" $O\"; fi\n");
            for (Job j : JOBS) {
                for (String who : List.of("A 1", "B 1", "B 2", "A 2")) {
                    s.append("    job $r ").append(j.name()).append(" $").append(who).append(' ').append(j.field())
                            .append(' ').append(j.fio()).append('\n');
                }
            }
            return s.append("    r=$((r + 1))\ndone\n").toString();
        }
    }

    private VhostUserGuestBench() {
    }

    /**
     * Runs only this measurement (without the JMH suite) and prints each key's ratios.
     *
     * @param args {@code [--quick]}
     */
    public static void main(String[] args) {
        boolean quick = args.length == 1 && args[0].equals("--quick");
        if (args.length > (quick ? 1 : 0)) {
            System.err.println("usage: VhostUserGuestBench [--quick]");
            System.exit(2);
        }
        measure(quick ? QUICK : FULL).forEach((key, ratios) -> System.out.println(key + " " + ratios));
    }

    /**
     * Boots the guest once and runs the plan's rounds.
     *
     * @param plan the rounds and their times
     * @return each key's ratios, one per round; empty when the guest cannot be built here or the
     *     boot fails (the reason on standard error)
     */
    static Map<String, List<Double>> measure(Plan plan) {
        var missing = LinuxGuest.missing();
        if (missing.isPresent() || LinuxGuest.onPath(THEIRS).isEmpty()) {
            System.err.println("guestdma bench: vhost-user guest keys not measured: "
                    + missing.orElse(THEIRS + " is not on the PATH (apt-get install qemu-system-common)"));
            return Map.of();
        }
        Path dir = null;
        try {
            dir = ScratchDirectory.create("guestdma-vhost-guest-bench");
            System.err.printf("guestdma bench: fio in a Linux guest over vhost-user-blk, ours against %s, one boot"
                    + " with a disk for each, %d rounds of %d + %d s jobs...%n", THEIRS, plan.rounds(), plan.rampSeconds(),
                    plan.seconds());
            LinuxGuest guest = LinuxGuest.build(Files.createDirectory(dir.resolve("guest")), Map.of("fio", plan.workload()));
            Path ours = dir.resolve("guestdma.img");
            Path theirs = dir.resolve("qsd.img");
            long start = System.nanoTime();
            Map<String, String> report;
            try {
                report = boot(guest, dir, images(ours, theirs), plan);
            } catch (LinuxGuest.WentQuiet e) {
                // A disk stopped answering (qemu-storage-daemon 7.2's did with EVENT_IDX, see the
                // class comment): one fresh boot, on fresh images (fio's writes start at the
                // markers), rather than no figure.
                System.err.println("guestdma bench:   " + e.summary() + "; booting once more");
                report = boot(guest, dir, images(ours, theirs), plan);
            }
            Map<String, List<Double>> ratios = ratios(report, plan.rounds());
            for (int r = 1; r <= plan.rounds(); r++) {
                StringBuilder line = new StringBuilder("guestdma bench:   round " + r + ":");
                for (Job j : JOBS) {
                    line.append(String.format(" %s %s vs %s IOPS (%.2f)", j.name(), sides(report, r, j, OURS),
                            sides(report, r, j, THEIRS), ratios.get(j.key()).get(r - 1)));
                }
                System.err.println(line);
            }
            System.err.printf("guestdma bench:   the boot took %.0f s%n", (System.nanoTime() - start) / 1e9);
            return ratios;
        } catch (IOException | RuntimeException e) {
            System.err.println("guestdma bench: vhost-user guest keys not measured: " + e.getMessage());
            return Map.of();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Map.of();
        } finally {
            ScratchDirectory.delete(dir);
        }
    }

    /**
     * The ratios of a guest's report.
     *
     * @param report the guest's {@code GUEST <key> <value>} lines
     * @param rounds the rounds it ran
     * @return each key's ratios, one per round in order: the IOPS of our jobs of the round over
     *         those of qemu-storage-daemon's (sums of {@link #JOBS_PER_SIDE} jobs each)
     * @throws IOException if a job's IOPS is missing, not a number or not positive (fio failed)
     */
    static Map<String, List<Double>> ratios(Map<String, String> report, int rounds) throws IOException {
        Map<String, List<Double>> ratios = new LinkedHashMap<>();
        for (Job j : JOBS) {
            List<Double> perRound = new ArrayList<>();
            for (int r = 1; r <= rounds; r++) {
                perRound.add(sideIops(report, r, j, OURS) / sideIops(report, r, j, THEIRS));
            }
            ratios.put(j.key(), List.copyOf(perRound));
        }
        return ratios;
    }

    /** The IOPS of one back end's jobs of a round, summed. */
    private static double sideIops(Map<String, String> report, int round, Job job, String backEnd) throws IOException {
        double sum = 0;
        for (int k = 1; k <= JOBS_PER_SIDE; k++) {
            sum += iops(report, round + "-" + job.name() + "-" + backEnd + "-" + k);
        }
        return sum;
    }

    /** One back end's jobs of a round as the guest reported them, for the progress line: "a+b". */
    private static String sides(Map<String, String> report, int round, Job job, String backEnd) {
        List<String> values = new ArrayList<>();
        for (int k = 1; k <= JOBS_PER_SIDE; k++) {
            values.add(report.get(round + "-" + job.name() + "-" + backEnd + "-" + k));
        }
        return String.join("+", values);
    }

    private static double iops(Map<String, String> report, String key) throws IOException {
        String value = report.getOrDefault(key, "");
        if (!value.matches("[0-9]+(\\.[0-9]+)?") || Double.parseDouble(value) <= 0) {
            throw new IOException("fio gave no IOPS for " + key + " ('" + value + "'), the guest reported " + report);
        }
        return Double.parseDouble(value);
    }

    /** Writes the two images, the same content but for each one's marker; returns them, ours first. */
    private static List<Path> images(Path ours, Path theirs) throws IOException {
        writeImage(ours);
        Files.copy(ours, theirs, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        mark(ours, OURS);
        mark(theirs, THEIRS);
        return List.of(ours, theirs);
    }

    private static Map<String, String> boot(LinuxGuest guest, Path dir, List<Path> images, Plan plan)
            throws IOException, InterruptedException {
        Path ours = images.get(0);
        Path theirs = images.get(1);
        Path ourSocket = dir.resolve("guestdma.sock");
        Path theirSocket = dir.resolve("qsd.sock");
        // A back end killed in an earlier boot may have left its socket behind.
        Files.deleteIfExists(ourSocket);
        Files.deleteIfExists(theirSocket);
        try (GuestBackEnd our = GuestBackEnd.guestdma(ourSocket, ours, 1);
             GuestBackEnd their = GuestBackEnd.qemuStorageDaemon(theirSocket, theirs, 1);
             LinuxGuest.Running running = guest.start(new LinuxGuest.Boot("fio", 1,
                     List.of(new LinuxGuest.Disk(ourSocket, 1, false, false),
                             new LinuxGuest.Disk(theirSocket, 1, false, false))),
                     dir.resolve("console"))) {
            Map<String, String> report = running.awaitReport(plan.boundSeconds(), plan.bootQuietSeconds(),
                    plan.quietSeconds(), List.of(our, their));
            String workloadExit = report.getOrDefault("workload-exit", "");
            if (!workloadExit.equals("0")) {
                throw new IOException("the guest's workload exited " + workloadExit + " " + running.describe());
            }
            return report;
        }
    }

    /** Fills {@code image} with {@link #IMAGE_BYTES} of random bytes from a fixed seed. */
    private static void writeImage(Path image) throws IOException {
        byte[] chunk = new byte[1 << 20];
        new Random(1).nextBytes(chunk);
        try (var out = Files.newOutputStream(image)) {
            for (long written = 0; written < IMAGE_BYTES; written += chunk.length) {
                out.write(chunk);
            }
        }
    }

    /** Starts {@code image} with the marker line naming {@code backEnd}, the rest of its first 4 KiB zero. */
    private static void mark(Path image, String backEnd) throws IOException {
        ByteBuffer sector = ByteBuffer.allocate(4096);
        sector.put((MARKER + backEnd + "\n").getBytes(StandardCharsets.US_ASCII)).clear();
        try (FileChannel channel = FileChannel.open(image, StandardOpenOption.WRITE)) {
            while (sector.hasRemaining()) {
                channel.write(sector, sector.position());
            }
        }
    }
}
