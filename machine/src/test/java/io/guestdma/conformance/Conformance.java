package io.guestdma.conformance;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * Replays one scenario on two targets, each with a fresh copy of the same disk image, and
 * compares what the guest saw and what ended up on disk.
 */
final class Conformance {

    /** The guest side of a test: drives the registers and records observations. */
    @FunctionalInterface
    interface Scenario {
        void run(IdeDriver ide) throws Exception;
    }

    /**
     * A disk image: {@code sizeBytes} long, sparse, with the first {@code patternBytes} filled
     * with seeded pseudo-random data so reads have something to find.
     */
    record Image(long sizeBytes, long patternBytes, long seed) {
        static Image blank(long sizeBytes) {
            return new Image(sizeBytes, 0, 0);
        }

        static Image patterned(long sizeBytes, long patternBytes, long seed) {
            return new Image(sizeBytes, patternBytes, seed);
        }

        void create(Path file) throws IOException {
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE)) {
                ch.truncate(0);
                Random random = new Random(seed);
                byte[] chunk = new byte[65536];
                for (long off = 0; off < patternBytes; off += chunk.length) {
                    random.nextBytes(chunk);
                    int n = (int) Math.min(chunk.length, patternBytes - off);
                    ch.write(ByteBuffer.wrap(chunk, 0, n), off);
                }
                ch.write(ByteBuffer.wrap(new byte[1]), sizeBytes - 1);
            }
        }
    }

    /** One target's result: its observation log and the image it left behind. */
    record Run(String target, List<String> log, Path image) {
    }

    private static final AtomicInteger IMAGES = new AtomicInteger();

    private Conformance() {
    }

    /** Runs a scenario on one target with a fresh image in {@code dir}. */
    @SuppressWarnings("try") // QtestClient.close() waits for the target and may be interrupted
    static Run run(Target target, Path dir, Image image, String driveOptions, Scenario scenario)
            throws Exception {
        return run(target, dir, image, driveOptions, List.of(), scenario);
    }

    /** {@link #run(Target, Path, Image, String, Scenario)} with extra machine options. */
    static Run run(Target target, Path dir, Image image, String driveOptions, List<String> extraArgs,
                   Scenario scenario) throws Exception {
        Path file = dir.resolve(target.name().replaceAll("[^A-Za-z0-9.-]", "_") + "-"
                + IMAGES.incrementAndGet() + ".img");
        image.create(file);
        Observations log = new Observations();
        try (QtestClient client = target.start(file, driveOptions, extraArgs)) {
            scenario.run(new IdeDriver(client, log));
        }
        return new Run(target.name(), log.lines(), file);
    }

    /**
     * Runs the scenario on the reference and on each of our targets, each with a fresh copy of
     * the image, and asserts the same observations and the same final disk contents.
     *
     * @param context what to print with a failure (scenario name, seed)
     */
    static void assertSame(Target reference, List<Target> ours, Image image, String driveOptions,
                           String context, Scenario scenario) throws Exception {
        assertSame(reference, ours, image, driveOptions, List.of(), context, scenario);
    }

    /** {@link #assertSame(Target, List, Image, String, String, Scenario)} with extra machine options. */
    static void assertSame(Target reference, List<Target> ours, Image image, String driveOptions,
                           List<String> extraArgs, String context, Scenario scenario) throws Exception {
        Path dir = Files.createTempDirectory("guestdma-conformance");
        try {
            Run expected = run(reference, dir, image, driveOptions, extraArgs, scenario);
            for (Target target : ours) {
                Run actual = run(target, dir, image, driveOptions, extraArgs, scenario);
                assertSameLog(expected, actual, context);
                assertSameDisk(expected, actual, context);
                Files.delete(actual.image());
            }
        } finally {
            deleteTree(dir);
        }
    }

    static void assertSameLog(Run expected, Run actual, String context) {
        List<String> e = expected.log();
        List<String> a = actual.log();
        int n = Math.min(e.size(), a.size());
        for (int i = 0; i < n; i++) {
            if (!e.get(i).equals(a.get(i))) {
                fail(mismatch(expected, actual, context, i));
            }
        }
        if (e.size() != a.size()) {
            fail(mismatch(expected, actual, context, n));
        }
    }

    private static String mismatch(Run expected, Run actual, String context, int i) {
        StringBuilder sb = new StringBuilder();
        sb.append(context).append(": ").append(actual.target()).append(" differs from ")
                .append(expected.target()).append(" at observation ").append(i).append('\n');
        for (int j = Math.max(0, i - 6); j < i; j++) {
            sb.append("    ").append(expected.log().get(j)).append('\n');
        }
        sb.append("  ").append(expected.target()).append(": ")
                .append(i < expected.log().size() ? expected.log().get(i) : "<end of log>").append('\n');
        sb.append("  ").append(actual.target()).append(": ")
                .append(i < actual.log().size() ? actual.log().get(i) : "<end of log>");
        return sb.toString();
    }

    static void assertSameDisk(Run expected, Run actual, String context) throws IOException {
        long at = Files.mismatch(expected.image(), actual.image());
        if (at >= 0) {
            fail(context + ": disk images differ from byte " + at + " (sector " + at / 512 + "): "
                    + expected.target() + " has " + byteAt(expected.image(), at) + ", "
                    + actual.target() + " has " + byteAt(actual.image(), at));
        }
    }

    private static String byteAt(Path file, long at) throws IOException {
        try (FileChannel ch = FileChannel.open(file)) {
            if (at >= ch.size()) {
                return "<end of file, size " + ch.size() + ">";
            }
            ByteBuffer b = ByteBuffer.allocate(1);
            ch.read(b, at);
            return String.format("0x%02x", b.get(0) & 0xff);
        }
    }

    static void deleteTree(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
