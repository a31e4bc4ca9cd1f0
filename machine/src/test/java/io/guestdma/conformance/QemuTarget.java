package io.guestdma.conformance;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * QEMU 7.2's {@code pc} machine under qtest, with a BIOS that only halts, as the reference:
 * {@code qemu-system-x86_64 -machine pc -nodefaults -display none -bios HALT.bin -qtest stdio
 * -qtest-log none -monitor none -serial none -m 64M -drive file=IMG,if=ide,format=raw}.
 */
final class QemuTarget implements Target {
    static final String BINARY = "qemu-system-x86_64";
    private static Path haltBios;

    private final Path binary;

    private QemuTarget(Path binary) {
        this.binary = binary;
    }

    /**
     * The reference, or the end of the test: in CI (CI=true) a missing QEMU fails the test;
     * elsewhere the test is skipped with a message saying what to install.
     */
    static QemuTarget require() {
        Optional<Path> found = find();
        if (found.isPresent()) {
            return new QemuTarget(found.get());
        }
        String why = BINARY + " is not on the PATH: the conformance tests compare our IDE with QEMU 7.2's";
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail(why + "; CI must have it (bin/test installs qemu-system-x86 with apt-get)");
        }
        Assumptions.abort(why + "; skipped (install qemu-system-x86, or run bin/test as root to have it installed)");
        throw new AssertionError("unreachable");
    }

    private static Optional<Path> find() {
        String path = System.getenv("PATH");
        if (path == null) {
            return Optional.empty();
        }
        for (String dir : path.split(File.pathSeparator)) {
            Path candidate = Path.of(dir.isEmpty() ? "." : dir, BINARY);
            if (Files.isExecutable(candidate)) {
                return Optional.of(candidate);
            }
        }
        return Optional.empty();
    }

    /** 64 KiB of "cli; hlt": the CPU stops at the reset vector and never touches memory. */
    private static synchronized Path haltBios() {
        if (haltBios == null) {
            try {
                Path dir = Files.createTempDirectory("guestdma-qemu");
                byte[] bios = new byte[65536];
                for (int i = 0; i < bios.length; i += 2) {
                    bios[i] = (byte) 0xfa;
                    bios[i + 1] = (byte) 0xf4;
                }
                haltBios = Files.write(dir.resolve("HALT.bin"), bios);
                haltBios.toFile().deleteOnExit();
                dir.toFile().deleteOnExit();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return haltBios;
    }

    @Override
    public String name() {
        return "qemu";
    }

    @Override
    public QtestClient start(Path image, String driveOptions) throws IOException {
        return start(image, driveOptions, List.of());
    }

    /** The command line up to the machine's own options: a pc with the halting BIOS on qtest stdio. */
    List<String> baseCommand() {
        return List.of(binary.toString(), "-machine", "pc", "-nodefaults", "-display", "none",
                "-bios", haltBios().toString(),
                "-qtest", "stdio", "-qtest-log", "none", "-monitor", "none", "-serial", "none");
    }

    @Override
    public QtestClient start(Path image, String driveOptions, List<String> extraArgs) throws IOException {
        List<String> args = new ArrayList<>(List.of("-m", "64M", "-drive", "file=" + image + ",if=ide,format=raw"
                + driveOptions));
        args.addAll(extraArgs);
        return startWith(args);
    }

    @Override
    public QtestClient startWith(List<String> machineArgs) throws IOException {
        List<String> command = new ArrayList<>(baseCommand());
        command.addAll(machineArgs);
        Path stderr = Files.createTempFile("qemu-stderr", ".txt");
        Process process = new ProcessBuilder(command)
                .redirectError(stderr.toFile())
                .start();
        return new QtestClient("qemu", process.getInputStream(), process.getOutputStream(), () -> {
            // QEMU does not exit at the end of its qtest input: libqtest kills it, and so do we.
            process.destroy();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
            String errors = Files.readString(stderr).strip();
            Files.deleteIfExists(stderr);
            if (!errors.isEmpty()) {
                System.err.println("qemu stderr: " + errors);
            }
        });
    }
}
