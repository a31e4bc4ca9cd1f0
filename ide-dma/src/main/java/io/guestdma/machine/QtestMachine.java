package io.guestdma.machine;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Objects;

/**
 * The {@code bin/qtest-machine} command: a {@link PcMachine} serving QEMU's qtest protocol on
 * standard input and output until end of input.
 *
 * <pre>
 * qtest-machine -m 64M -drive file=disk.img,format=raw[,if=ide][,backend=native|filechannel][,dma=map|copy]
 * </pre>
 *
 * Exit status: 0 at end of input, 1 if an image cannot be opened or the streams fail, 2 for a bad
 * command line (with a message and the usage on standard error).
 */
public final class QtestMachine {
    private QtestMachine() {
    }

    /**
     * Runs the command and exits with its status.
     *
     * @param args the command line
     */
    public static void main(String[] args) {
        int status = run(args, System.in, new FileOutputStream(FileDescriptor.out), System.err);
        System.exit(status);
    }

    /**
     * Runs the command on the given streams.
     *
     * @param args the command line
     * @param in the qtest commands
     * @param out the qtest replies (and the usage for {@code -h})
     * @param err diagnostics
     * @return the exit status: 0, 1 or 2 as described above
     * @throws NullPointerException if an argument is null
     */
    public static int run(String[] args, InputStream in, OutputStream out, PrintStream err) {
        Objects.requireNonNull(in, "in");
        Objects.requireNonNull(out, "out");
        List<String> arguments = List.of(args);
        if (arguments.contains("-h") || arguments.contains("--help")) {
            try {
                out.write((MachineConfig.USAGE + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
                return 0;
            } catch (IOException e) {
                return 1;
            }
        }
        MachineConfig config;
        try {
            config = MachineConfig.parse(arguments);
        } catch (IllegalArgumentException e) {
            err.println("qtest-machine: " + e.getMessage());
            err.println(MachineConfig.USAGE);
            return 2;
        }
        PcMachine machine;
        try {
            machine = new PcMachine(config);
        } catch (IOException | IllegalArgumentException e) {
            err.println("qtest-machine: " + e.getMessage());
            return 1;
        }
        try (machine) {
            new QtestServer(machine, in, out).serve();
            return 0;
        } catch (IOException e) {
            err.println("qtest-machine: " + e.getMessage());
            return 1;
        }
    }
}
