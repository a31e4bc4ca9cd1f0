package io.guestdma.conformance;

import io.guestdma.block.testing.NbdServer;
import io.guestdma.machine.MachineConfig;
import io.guestdma.machine.PcMachine;
import io.guestdma.machine.QtestServer;
import java.io.IOException;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Our machine in this JVM: a {@link QtestServer} on a pair of pipes, parsed from the same
 * command line as {@code bin/qtest-machine} with some drive options of ours appended
 * (e.g. ",backend=native,dma=copy"). Over NBD, the image is served by a qemu-nbd started for the
 * run and the drive is {@code file=nbd+unix:///...}; the server stops when the machine has.
 *
 * @param overNbd whether the drive reaches the image through qemu-nbd
 */
record MachineTarget(String name, String ourDriveOptions, boolean overNbd) implements Target {

    MachineTarget(String name, String ourDriveOptions) {
        this(name, ourDriveOptions, false);
    }

    @Override
    public QtestClient start(Path image, String driveOptions) throws IOException {
        return start(image, driveOptions, List.of());
    }

    @Override
    public QtestClient startWith(List<String> machineArgs) throws IOException {
        return serve(new PcMachine(MachineConfig.parse(machineArgs)), null);
    }

    @Override
    public QtestClient start(Path image, String driveOptions, List<String> extraArgs) throws IOException {
        NbdServer nbd = overNbd ? NbdServer.qemuNbd(image, image.toAbsolutePath().getParent(), "conformance") : null;
        PcMachine machine;
        try {
            List<String> args = new java.util.ArrayList<>(List.of("-m", "64M", "-drive",
                    "file=" + (nbd != null ? nbd.address().toString() : image.toString()) + ",if=ide,format=raw"
                            + driveOptions + ourDriveOptions));
            args.addAll(extraArgs);
            machine = new PcMachine(MachineConfig.parse(args));
        } catch (IOException | RuntimeException e) {
            if (nbd != null) {
                nbd.close();
            }
            throw e;
        }
        return serve(machine, nbd);
    }

    private QtestClient serve(PcMachine machine, NbdServer nbd) throws IOException {
        PipedOutputStream commands = new PipedOutputStream();
        PipedInputStream serverIn = new PipedInputStream(commands, 1 << 16);
        PipedOutputStream serverOut = new PipedOutputStream();
        PipedInputStream replies = new PipedInputStream(serverOut, 1 << 16);
        QtestServer server = new QtestServer(machine, serverIn, serverOut);
        Thread thread = Thread.ofPlatform().daemon().name("qtest-server-" + name).start(() -> {
            try (machine; serverOut) {
                server.serve();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        return new QtestClient(name, replies, commands, () -> {
            thread.join(TimeUnit.SECONDS.toMillis(10));
            if (nbd != null) {
                nbd.close();
            }
            if (thread.isAlive()) {
                throw new AssertionError(name + ": the server did not stop at end of input");
            }
        });
    }
}
