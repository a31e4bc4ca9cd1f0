package io.guestdma.machine;

import java.io.Closeable;
import java.io.FileDescriptor;
import java.io.FilterInputStream;
import java.io.FilterOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.function.Consumer;
import java.util.List;
import java.util.Objects;

/**
 * The {@code bin/qtest-machine} command: a {@link PcMachine} serving QEMU's qtest protocol on
 * standard input and output until end of input, or launched the way libqtest launches QEMU (see
 * {@link LaunchOptions}): qtest on a Unix socket, a QMP monitor on another, both connected to as a
 * client.
 *
 * <pre>
 * qtest-machine -m 64M -drive file=disk.img,format=raw[,if=ide][,media=cdrom][,backend=native|filechannel][,dma=map|copy]
 * qtest-machine -qtest unix:Q -qtest-log /dev/null -chardev socket,path=M,id=char0 \
 *     -mon chardev=char0,mode=control -display none -accel qtest -drive ...
 * </pre>
 *
 * Exit status: 0 at end of the qtest input, on QMP {@code quit} and on SIGTERM (libqtest ends QEMU
 * with SIGTERM and treats anything but status 0 as a crash); 1 if an image cannot be opened, a
 * socket cannot be reached, the streams fail or an {@code -incoming} migration stream is refused
 * (the machine never runs from it, as QEMU exits); 2 for a bad command line (with a message and the
 * usage on standard error).
 */
public final class QtestMachine {
    /** Machines already closed (identity), so that a signal and end of input never close twice. */
    private static final java.util.Set<PcMachine> CLOSED =
            java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());

    private QtestMachine() {
    }

    /**
     * Runs the command and exits with its status.
     *
     * @param args the command line
     */
    public static void main(String[] args) {
        int status = run(args, System.in, new FileOutputStream(FileDescriptor.out), System.err,
                QtestMachine::endOnSignal, () -> Runtime.getRuntime().halt(0), () -> Runtime.getRuntime().halt(1));
        System.exit(status);
    }

    /** SIGTERM: close the images (flushing them) and end with status 0, as QEMU does. */
    @SuppressWarnings("sunapi")
    private static void endOnSignal(PcMachine machine) {
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), signal -> {
            closeQuietly(machine);
            Runtime.getRuntime().halt(0);
        });
    }

    /**
     * Closes the machine once, whoever gets there first: end of input on the main thread, SIGTERM
     * on the signal thread, QMP quit; the others wait here until it is done (and a signal then
     * halts).
     */
    private static void closeQuietly(PcMachine machine) {
        synchronized (CLOSED) {
            if (!CLOSED.add(machine)) {
                return;
            }
            try {
                machine.close();
            } catch (RuntimeException e) {
                // ending anyway: the images are closed as far as they could be
            }
        }
    }

    /**
     * Runs the command on the given streams (used when {@code -qtest stdio}), without signal
     * handling; QMP {@code quit} ends the qtest session and returns 0.
     *
     * @param args the command line
     * @param in the qtest commands
     * @param out the qtest replies (and the usage for {@code -h}); with {@code -qtest unix:} what
     *     {@code qemu-io} monitor commands print, as QEMU prints them on its standard output
     * @param err diagnostics
     * @return the exit status: 0, 1 or 2 as described above
     * @throws NullPointerException if an argument is null
     */
    public static int run(String[] args, InputStream in, OutputStream out, PrintStream err) {
        return run(args, in, out, err, machine -> { }, () -> { }, () -> { });
    }

    private static int run(String[] args, InputStream in, OutputStream out, PrintStream err,
                           Consumer<PcMachine> onStart, Runnable afterQuit, Runnable afterRefusedIncoming) {
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
        LaunchOptions launch;
        MachineConfig config;
        try {
            launch = LaunchOptions.parse(arguments);
            config = MachineConfig.parse(launch.machineArgs());
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
        onStart.accept(machine);
        List<Closeable> connections = new ArrayList<>();
        try {
            if (launch.incoming() != null) {
                // Listening before the monitor connects: once QMP answers, a source can migrate here.
                machine.migration().listen(launch.incoming(), e -> {
                    err.println("qtest-machine: load of migration failed: " + e.getMessage());
                    closeQuietly(machine);
                    afterRefusedIncoming.run();
                });
            }
            InputStream qtestIn = in;
            OutputStream qtestOut = out;
            Closeable qtestConnection = in;
            if (launch.qtestSocket() != null) {
                SocketChannel qtest = connect(launch.qtestSocket(), "-qtest");
                connections.add(qtest);
                qtestConnection = qtest;
                qtestIn = Channels.newInputStream(qtest);
                qtestOut = Channels.newOutputStream(qtest);
            }
            if (launch.qtestLog() != null) {
                OutputStream log = Files.newOutputStream(launch.qtestLog());
                connections.add(log);
                qtestIn = new TeeInputStream(qtestIn, log);
                qtestOut = new TeeOutputStream(qtestOut, log);
            }
            if (launch.monitorSocket() != null) {
                SocketChannel monitor = connect(launch.monitorSocket(), "-mon");
                connections.add(monitor);
                Closeable endsQtest = qtestConnection;
                QmpMonitor qmp = new QmpMonitor(machine, Channels.newInputStream(monitor),
                        Channels.newOutputStream(monitor), () -> {
                            closeQuietly(machine);
                            afterQuit.run();
                            // in-process: ending the qtest connection ends serve() below
                            closeQuietly(endsQtest);
                        }, launch.qtestSocket() != null ? new PrintStream(out, true, StandardCharsets.UTF_8) : err);
                Thread.ofPlatform().daemon().name("qmp").start(() -> {
                    try {
                        qmp.serve();
                    } catch (ClosedChannelException e) {
                        // the machine ended and closed the monitor's connection
                    } catch (IOException e) {
                        err.println("qtest-machine: QMP: " + e.getMessage());
                    }
                });
            }
            try {
                new QtestServer(machine, qtestIn, qtestOut).serve();
            } catch (ClosedChannelException e) {
                // QMP quit closed the qtest connection
            } catch (java.net.SocketException e) {
                // The test program went away without reading everything (a reset, not an end of
                // stream): for the machine that is the end of its input, as for QEMU.
                if (!String.valueOf(e.getMessage()).contains("Connection reset")) {
                    throw e;
                }
            }
            return 0;
        } catch (IOException e) {
            err.println("qtest-machine: " + e.getMessage());
            return 1;
        } finally {
            closeQuietly(machine);
            for (Closeable c : connections) {
                closeQuietly(c);
            }
        }
    }

    private static SocketChannel connect(Path socket, String option) throws IOException {
        try {
            return SocketChannel.open(UnixDomainSocketAddress.of(socket));
        } catch (IOException e) {
            throw new IOException(option + ": cannot connect to " + socket + ": " + e.getMessage(), e);
        }
    }

    private static void closeQuietly(Closeable c) {
        try {
            c.close();
        } catch (IOException e) {
            // closing a connection that already failed
        }
    }

    /** Copies what is read to the qtest log. */
    private static final class TeeInputStream extends FilterInputStream {
        private final OutputStream copy;

        TeeInputStream(InputStream in, OutputStream copy) {
            super(in);
            this.copy = copy;
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0) {
                copy.write(b);
            }
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            if (n > 0) {
                copy.write(b, off, n);
            }
            return n;
        }
    }

    /** Copies what is written to the qtest log. */
    private static final class TeeOutputStream extends FilterOutputStream {
        private final OutputStream copy;

        TeeOutputStream(OutputStream out, OutputStream copy) {
            super(out);
            this.copy = copy;
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            copy.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            copy.write(b, off, len);
        }

        @Override
        public void flush() throws IOException {
            out.flush();
            copy.flush();
        }
    }
}
