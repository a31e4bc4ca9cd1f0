package io.guestdma.vhostuser.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A probe run in a JVM of its own, with this JVM's class path: for what only a fresh JVM shows (the
 * first call of a path, its class loading and handle customization), which a test JVM that ran other
 * tests first has long done.
 */
public final class ChildJvm {
    private ChildJvm() {
    }

    /**
     * Runs {@code mainClass} with native access enabled and returns the line of its output that
     * starts with {@code prefix}, without the prefix.
     *
     * @param dir       where the probe's output goes
     * @param options   JVM options, e.g. {@code -Xint}, {@code -Xmx64m}
     * @param mainClass the probe
     * @param prefix    what the wanted line starts with, e.g. {@code "kick="}
     * @param args      the probe's arguments
     * @return the rest of that line, stripped
     * @throws AssertionError if the probe runs over 2 minutes, exits other than 0 or prints no
     *                        such line (its output in the message)
     * @throws IOException if the JVM cannot be started or its output read
     * @throws InterruptedException if interrupted while waiting for it
     */
    public static String line(Path dir, List<String> options, Class<?> mainClass, String prefix, String... args)
            throws IOException, InterruptedException {
        Path log = Files.createTempFile(dir, mainClass.getSimpleName(), ".out");
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED"));
        command.addAll(options);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass.getName()));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            boolean finished = p.waitFor(120, TimeUnit.SECONDS);
            String output = Files.readString(log, StandardCharsets.UTF_8);
            if (!finished) {
                throw new AssertionError(mainClass.getSimpleName() + " ran over 2 minutes; output so far:\n" + output);
            }
            if (p.exitValue() != 0) {
                throw new AssertionError(mainClass.getSimpleName() + " exited " + p.exitValue() + "; output:\n" + output);
            }
            return output.lines().filter(l -> l.startsWith(prefix)).findFirst()
                    .map(l -> l.substring(prefix.length()).strip())
                    .orElseThrow(() -> new AssertionError("no " + prefix + " line in " + mainClass.getSimpleName()
                            + "'s output:\n" + output));
        } finally {
            p.destroyForcibly();
        }
    }
}
