package io.guestdma.conformance;

import io.guestdma.machine.PcMachine;
import io.guestdma.memory.GuestMemory;
import java.io.File;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The real {@code bin/qtest-machine} script in a child process. The test hands it the class path
 * it was compiled into (GUESTDMA_MACHINE_CLASSPATH), so the script finds the JDK, sets the JVM
 * flags and parses the command line as for a user, without a Maven build inside the test.
 */
final class ProcessTarget implements Target {
    private final Path script;

    ProcessTarget() {
        script = findScript();
    }

    static Path findScript() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path candidate = dir.resolve("bin").resolve("qtest-machine");
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        throw new AssertionError("bin/qtest-machine not found above " + Path.of("").toAbsolutePath());
    }

    /** The directories (or jars) holding our compiled machine, the block layer and memory-core. */
    static String classPath() {
        try {
            return String.join(File.pathSeparator,
                    Path.of(PcMachine.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString(),
                    jarOf(io.guestdma.ide.PiixIde.class),
                    jarOf(io.guestdma.virtio.VirtioPci.class),
                    jarOf(io.guestdma.net.NetBackend.class),
                    jarOf(io.guestdma.migration.DeviceState.class),
                    Path.of(io.guestdma.block.BlockBackend.class.getProtectionDomain().getCodeSource().getLocation()
                            .toURI()).toString(),
                    Path.of(GuestMemory.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString(),
                    jarOf(com.fasterxml.jackson.databind.ObjectMapper.class),
                    jarOf(com.fasterxml.jackson.core.JsonParser.class),
                    jarOf(com.fasterxml.jackson.annotation.JsonProperty.class));
        } catch (URISyntaxException e) {
            throw new AssertionError(e);
        }
    }

    private static String jarOf(Class<?> type) throws URISyntaxException {
        return Path.of(type.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
    }

    @Override
    public String name() {
        return "bin/qtest-machine";
    }

    /** Starts the script with any command line; stderr goes to {@code stderr}. */
    Process launch(List<String> args, Path stderr) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(
                java.util.stream.Stream.concat(java.util.stream.Stream.of(script.toString()), args.stream()).toList());
        pb.environment().put("GUESTDMA_MACHINE_CLASSPATH", classPath());
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        pb.redirectError(stderr.toFile());
        return pb.start();
    }

    @Override
    public QtestClient start(Path image, String driveOptions) throws IOException {
        Path stderr = Files.createTempFile("qtest-machine-stderr", ".txt");
        Process process = launch(List.of("-m", "64M", "-drive",
                "file=" + image + ",if=ide,format=raw" + driveOptions), stderr);
        return new QtestClient(name(), process.getInputStream(), process.getOutputStream(), () -> {
            // End of input ends the machine: no signal needed.
            boolean exited = process.waitFor(20, TimeUnit.SECONDS);
            String errors = Files.readString(stderr).strip();
            Files.deleteIfExists(stderr);
            if (!exited) {
                process.destroyForcibly().waitFor();
                throw new AssertionError("bin/qtest-machine did not exit at end of input; stderr: " + errors);
            }
            if (process.exitValue() != 0 || !errors.isEmpty()) {
                throw new AssertionError("bin/qtest-machine exited with " + process.exitValue()
                        + " and stderr '" + errors + "'");
            }
        });
    }
}
