package io.guestdma.bench;

import java.io.IOException;
import java.io.InputStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The physical limit line of the report: {@code pwritev_reference.c} (a resource of this module)
 * compiled with the machine's C compiler and run on the machine that ran the suite, moving the IDE
 * benchmark's transfer shapes with bare {@code pwritev}/{@code preadv}. Without a C compiler the
 * report says it was not measured, and why.
 */
sealed interface CReference {

    /** Where the C source sits on the class path. */
    String SOURCE = "pwritev_reference.c";

    /**
     * Figures from a run on this machine.
     *
     * @param opsPerSecond per case ({@code write.64k}, {@code read.1m}, ...), operations per second
     * @param compiler     the compiler that built it
     */
    record Measured(Map<String, Double> opsPerSecond, String compiler) implements CReference {
        /** Copies the map. */
        public Measured {
            opsPerSecond = Map.copyOf(opsPerSecond);
        }
    }

    /**
     * No figures, and why: no compiler, a failed build or a failed run.
     *
     * @param reason what stopped it, for the report
     */
    record NotMeasured(String reason) implements CReference {
    }

    /**
     * {@return operations per second of one case, if it was measured}
     *
     * @param direction {@code write} or {@code read}
     * @param size      {@code 4k}, {@code 64k} or {@code 1m}
     */
    default OptionalDouble ops(String direction, String size) {
        if (this instanceof Measured m && m.opsPerSecond().get(direction + "." + size) instanceof Double d) {
            return OptionalDouble.of(d);
        }
        return OptionalDouble.empty();
    }

    /**
     * Compiles and runs the reference with the first of {@code $CC}, {@code cc}, {@code gcc} and
     * {@code clang} found on the {@code PATH}.
     *
     * @param imageDirectory where its 64 MiB image goes (deleted when it ends)
     * @param secondsPerCase measurement time of each of the six cases
     * @return the figures, or why there are none; never throws for a missing or failing compiler
     */
    static CReference measure(Path imageDirectory, double secondsPerCase) {
        List<String> names = new ArrayList<>();
        String cc = System.getenv("CC");
        if (cc != null && !cc.isBlank()) {
            names.add(cc.strip());
        }
        names.addAll(List.of("cc", "gcc", "clang"));
        Optional<Path> compiler = names.stream().map(CReference::onPath).flatMap(Optional::stream).findFirst();
        if (compiler.isEmpty()) {
            return new NotMeasured("no C compiler found (looked for " + String.join(", ", names) + " on the PATH)");
        }
        return measure(compiler.get(), imageDirectory, secondsPerCase);
    }

    /**
     * Compiles the reference with {@code compiler} and runs it.
     *
     * @param compiler       a C compiler accepting {@code -O2 -o}
     * @param imageDirectory where its image goes
     * @param secondsPerCase measurement time of each case
     * @return the figures, or why there are none
     */
    static CReference measure(Path compiler, Path imageDirectory, double secondsPerCase) {
        Path work = null;
        try {
            work = Files.createTempDirectory("guestdma-c-reference");
            Path source = work.resolve(SOURCE);
            try (InputStream in = CReference.class.getResourceAsStream(SOURCE)) {
                if (in == null) {
                    return new NotMeasured(SOURCE + " is missing from the class path");
                }
                Files.copy(in, source);
            }
            Path binary = work.resolve("pwritev_reference");
            Exec build = Exec.run(List.of(compiler.toString(), "-O2", "-o", binary.toString(), source.toString()),
                    work.resolve("build.log"), 120);
            if (build.status() != 0) {
                return new NotMeasured(compiler + " could not build " + SOURCE + ": " + build.output().strip());
            }
            Files.createDirectories(imageDirectory);
            long timeout = (long) Math.ceil(10 * secondsPerCase) + 120;
            Exec run = Exec.run(List.of(binary.toString(), imageDirectory.toString(),
                    String.format(Locale.ROOT, "%.3f", secondsPerCase)), work.resolve("run.log"), timeout);
            if (run.status() != 0) {
                return new NotMeasured(SOURCE + " failed (exit status " + run.status() + "): " + run.output().strip());
            }
            Properties p = new Properties();
            p.load(new StringReader(run.output()));
            Map<String, Double> ops = new TreeMap<>();
            for (String key : p.stringPropertyNames()) {
                ops.put(key, Double.parseDouble(p.getProperty(key)));
            }
            return new Measured(ops, compiler.toString());
        } catch (IOException | NumberFormatException e) {
            return new NotMeasured(SOURCE + ": " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new NotMeasured(SOURCE + ": interrupted");
        } finally {
            ScratchDirectory.delete(work);
        }
    }

    /** {@return {@code name} if it is an executable path, else the first executable of that name on the PATH} */
    static Optional<Path> onPath(String name) {
        if (name.contains("/")) {
            Path p = Path.of(name);
            return Files.isExecutable(p) ? Optional.of(p) : Optional.empty();
        }
        String path = System.getenv("PATH");
        return path == null ? Optional.empty() : Stream.of(path.split(":")).filter(d -> !d.isEmpty())
                .map(d -> Path.of(d, name)).filter(p -> Files.isRegularFile(p) && Files.isExecutable(p)).findFirst();
    }

    /** A finished process: its exit status and its standard output and error, merged. */
    record Exec(int status, String output) {
        /** Runs {@code command}; its output goes to {@code log}, so a hung child cannot block the read. */
        static Exec run(List<String> command, Path log, long timeoutSeconds) throws IOException, InterruptedException {
            Process process = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(log.toFile()).redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                    .start();
            if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
                return new Exec(-1, "timed out after " + timeoutSeconds + " s");
            }
            return new Exec(process.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        }
    }
}
