package io.guestdma.vhostuser;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.ImageLocation;
import io.guestdma.block.LocalImage;
import io.guestdma.block.NativeBackend;
import io.guestdma.block.NbdAddress;
import io.guestdma.block.NbdBackend;
import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioBlkConfig;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;

/**
 * {@code bin/vhost-user-blk}: serves a disk image (a file, or an NBD export) as a vhost-user-blk
 * device on a Unix socket until SIGTERM or SIGINT.
 *
 * <pre>
 * bin/vhost-user-blk --socket PATH --drive file=IMG,format=raw[,readonly=on] [--num-queues N]
 *                    [--poll-max-ns N]
 * </pre>
 *
 * <p>{@code --poll-max-ns} is the longest a queue's thread polls an empty ring before it sleeps on
 * the guest's kick (QEMU's I/O thread property of that name; default 200000, 0 turns polling off; see
 * {@link VhostUserBackend#VhostUserBackend(java.util.function.Function, Duration)}).
 *
 * <p>Prints {@code listening on PATH} once QEMU may connect; a bad option or an image that cannot
 * be opened is one line on standard error and exit status 2 or 1.
 */
public final class VhostUserBlkCommand {
    private VhostUserBlkCommand() {
    }

    /** The parsed command line. */
    record Options(Path socket, ImageLocation image, boolean readOnly, int queues, long pollMaxNanos) {
    }

    /**
     * {@code --poll-max-ns} when not given: 200 us, not QEMU's 32 us. A Linux guest under TCG on a
     * 2-core host makes its requests about 50 us apart at a queue depth of 32, so a 32 us poll never
     * found one and changed nothing; with 200 us the guest's fio against this back end did 4 KiB
     * random reads at depth 32 at a median 1.17 times qemu-storage-daemon's (0.97 without polling)
     * and 64 KiB writes at depth 1 at 2.0 times (1.38 without; README, "Polling"): the request found by the poll costs
     * the guest no kick and this thread no wake-up, and waking an idle virtual CPU is what a queue
     * depth of 1 waits for most. The poll stops by itself when requests come further apart.
     */
    static final long POLL_MAX_NS_DEFAULT = 200_000;

    static final String USAGE = "usage: vhost-user-blk --socket PATH --drive file=IMG,format=raw[,readonly=on]"
            + " [--num-queues N] [--poll-max-ns N]   (file= takes a path or nbd://HOST[:PORT]/EXPORT,"
            + " nbd+unix:///EXPORT?socket=PATH; --poll-max-ns 0..1000000000, default " + POLL_MAX_NS_DEFAULT + ")";

    /**
     * Runs the command.
     *
     * @param args the command line
     */
    public static void main(String[] args) {
        Options options;
        try {
            options = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("vhost-user-blk: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        if (options == null) {
            System.out.println(USAGE);
            return;
        }
        try {
            serve(options, System.out);
        } catch (IOException | RuntimeException e) {
            System.err.println("vhost-user-blk: " + e.getMessage());
            System.exit(1);
        }
    }

    /**
     * Parses the command line.
     *
     * @param args the arguments
     * @return the options, or null if help was asked for
     * @throws IllegalArgumentException naming the first thing wrong
     */
    static Options parse(String[] args) {
        Path socket = null;
        String drive = null;
        int queues = 1;
        long pollMax = POLL_MAX_NS_DEFAULT;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("--help")) {
                return null;
            }
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException(a.startsWith("-") ? a + " needs a value" : "unexpected '" + a + "'");
            }
            String value = args[++i];
            switch (a) {
                case "--socket" -> socket = Path.of(value);
                case "--drive" -> drive = value;
                case "--num-queues" -> {
                    try {
                        queues = Integer.parseInt(value);
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("--num-queues: '" + value + "' is not a number");
                    }
                    if (queues < 1 || queues > 256) {
                        throw new IllegalArgumentException("--num-queues must be 1 to 256, was " + queues);
                    }
                }
                case "--poll-max-ns" -> {
                    try {
                        pollMax = Long.parseLong(value);
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("--poll-max-ns: '" + value + "' is not a number");
                    }
                    if (pollMax < 0 || pollMax > 1_000_000_000L) {
                        throw new IllegalArgumentException("--poll-max-ns must be 0 to 1000000000, was " + pollMax);
                    }
                }
                default -> throw new IllegalArgumentException("unknown option '" + a + "'");
            }
        }
        if (socket == null) {
            throw new IllegalArgumentException("--socket is required");
        }
        if (drive == null) {
            throw new IllegalArgumentException("--drive is required");
        }
        String file = null;
        boolean readOnly = false;
        for (String pair : drive.split(",", -1)) { // QEMU's ",," escape is not read: no commas in paths
            int eq = pair.indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("--drive: '" + pair + "' is not key=value");
            }
            String key = pair.substring(0, eq);
            String value = pair.substring(eq + 1);
            switch (key) {
                case "file" -> file = value;
                case "format" -> {
                    if (!value.equals("raw")) {
                        throw new IllegalArgumentException("--drive: format '" + value + "' is not supported (raw only)");
                    }
                }
                case "readonly" -> readOnly = switch (value) {
                    case "on", "true", "yes" -> true;
                    case "off", "false", "no" -> false;
                    default -> throw new IllegalArgumentException("--drive: readonly must be on or off, was '" + value + "'");
                };
                default -> throw new IllegalArgumentException("--drive: unknown key '" + key + "'");
            }
        }
        if (file == null || file.isEmpty()) {
            throw new IllegalArgumentException("--drive: file= is required");
        }
        return new Options(socket, ImageLocation.parse(file), readOnly, queues, pollMax);
    }

    /** Opens the image, listens, and blocks until the JVM is asked to stop. */
    private static void serve(Options options, PrintStream out) throws IOException {
        BlockOptions blockOptions = BlockOptions.defaults().withReadOnly(options.readOnly());
        BlockBackend disk = switch (options.image()) {
            // preadv/pwritev straight from the mapped guest buffers: one system call a request, no
            // seek and no NIO buffers (the FileChannel backend costs a seek, a position lock and
            // NIO's per-buffer objects each time).
            case LocalImage local -> NativeBackend.open(local.path(), blockOptions);
            case NbdAddress nbd -> NbdBackend.open(nbd, blockOptions);
        };
        VhostUserBackend backend;
        try {
            // Each ring has a kick thread of the back end's already: it does the requests itself,
            // with no hand-off to an I/O thread of the device's (a wake-up and allocation per kick).
            backend = new VhostUserBackend(m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults()
                    .withQueues(options.queues()).withIoThreads(false)), Duration.ofNanos(options.pollMaxNanos()));
        } catch (RuntimeException e) {
            disk.close();
            throw e;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            backend.close();
            ((VirtioBlk) backend.device()).close();
            try {
                disk.close();
            } catch (IOException e) {
                System.err.println("vhost-user-blk: closing the image: " + e.getMessage());
            }
            stopped.countDown();
        }, "vhost-user-blk-stop"));
        backend.listen(options.socket());
        out.println("vhost-user-blk: listening on " + options.socket() + " (" + options.image() + ", "
                + options.queues() + " queue" + (options.queues() == 1 ? "" : "s") + ")");
        out.flush();
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
