package io.guestdma.machine;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The part of QEMU's command line that says how the machine is reached rather than what it is made
 * of: the options libqtest (QEMU's tests/qtest/libqtest.c) passes to every binary it starts.
 *
 * <ul>
 *   <li>{@code -qtest stdio} or {@code -qtest unix:PATH}: where the qtest protocol runs; with a
 *       Unix socket the machine connects to PATH as a client (libqtest listens);</li>
 *   <li>{@code -qtest-log FILE}: a copy of the qtest traffic ({@code none} or {@code /dev/null}:
 *       no copy);</li>
 *   <li>{@code -chardev socket,path=P,id=ID} with {@code -mon chardev=ID,mode=control}: a QMP
 *       monitor on the Unix socket P, again as a client;</li>
 *   <li>{@code -display none}, {@code -audio none}, {@code -accel qtest}, {@code -machine pc} or
 *       {@code -M pc} (with an optional {@code accel=qtest}), {@code -nodefaults}: what this
 *       machine is anyway; other values are refused. {@code -trace ...} is accepted and ignored
 *       (there are no trace points).</li>
 *   <li>{@code -incoming tcp:HOST:PORT}, {@code -incoming unix:PATH} or {@code -incoming file:PATH}:
 *       the machine waits in run state {@code inmigrate} for a migration stream, loads it and then
 *       runs (see {@link MachineMigration}).</li>
 * </ul>
 *
 * @param qtestSocket the qtest Unix socket to connect to, or null for standard input/output
 * @param qtestLog where to copy the qtest traffic, or null for nowhere
 * @param monitorSocket the QMP monitor's Unix socket, or null for no monitor
 * @param machineArgs the rest of the command line, for {@link MachineConfig#parse}
 * @param incoming where an incoming migration arrives, or null to start the machine fresh
 */
public record LaunchOptions(Path qtestSocket, Path qtestLog, Path monitorSocket, List<String> machineArgs,
                            io.guestdma.migration.MigrationUri incoming) {

    /**
     * Copies the argument list.
     *
     * @throws NullPointerException if machineArgs is null
     */
    public LaunchOptions {
        machineArgs = List.copyOf(machineArgs);
    }

    /**
     * Takes the launch options out of a command line.
     *
     * @param args the whole command line
     * @return the launch options and the remaining arguments
     * @throws IllegalArgumentException naming the offending option if a launch option is malformed,
     *     asks for something this machine is not (e.g. {@code -machine q35}), or a monitor names a
     *     chardev that was not defined
     * @throws NullPointerException if args is null
     */
    public static LaunchOptions parse(List<String> args) {
        Objects.requireNonNull(args, "args");
        Path qtest = null;
        Path log = null;
        Map<String, Path> chardevs = new HashMap<>();
        String monitorChardev = null;
        io.guestdma.migration.MigrationUri incoming = null;
        List<String> rest = new ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            String arg = args.get(i);
            String option = arg.startsWith("--") ? arg.substring(1) : arg;
            switch (option) {
                case "-qtest" -> {
                    String value = value(args, ++i, arg);
                    if (value.startsWith("unix:")) {
                        qtest = Path.of(beforeComma(value.substring(5)));
                    } else if (!value.equals("stdio")) {
                        throw new IllegalArgumentException("-qtest " + value + ": use stdio or unix:PATH");
                    }
                }
                case "-qtest-log" -> {
                    String value = value(args, ++i, arg);
                    log = value.equals("none") || value.equals("/dev/null") ? null : Path.of(value);
                }
                case "-chardev" -> {
                    Map<String, String> o = keyValues(value(args, ++i, arg), "socket");
                    if (!"socket".equals(o.get(""))) {
                        throw new IllegalArgumentException("-chardev: only socket,path=P,id=ID is supported");
                    }
                    String id = o.get("id");
                    String path = o.get("path");
                    if (id == null || path == null) {
                        throw new IllegalArgumentException("-chardev socket needs path= and id=");
                    }
                    chardevs.put(id, Path.of(path));
                }
                case "-mon" -> {
                    Map<String, String> o = keyValues(value(args, ++i, arg), "chardev");
                    String mode = o.getOrDefault("mode", "readline");
                    if (!mode.equals("control")) {
                        throw new IllegalArgumentException("-mon: only mode=control (QMP) is supported");
                    }
                    monitorChardev = o.get("chardev");
                    if (monitorChardev == null) {
                        throw new IllegalArgumentException("-mon needs chardev=ID");
                    }
                }
                case "-display", "-audio" -> expect(arg, value(args, ++i, arg), "none");
                case "-accel" -> expect(arg, beforeComma(value(args, ++i, arg)), "qtest");
                case "-machine", "-M" -> {
                    Map<String, String> o = keyValues(value(args, ++i, arg), "type");
                    expect(arg, o.getOrDefault("type", o.getOrDefault("", "pc")), "pc");
                    String accel = o.get("accel");
                    if (accel != null) {
                        expect(arg + " accel", accel, "qtest");
                    }
                }
                case "-trace" -> value(args, ++i, arg); // no trace points here
                case "-nodefaults" -> { }
                case "-incoming" -> {
                    String value = value(args, ++i, arg);
                    try {
                        incoming = io.guestdma.migration.MigrationUri.parse(value);
                    } catch (IllegalArgumentException e) {
                        throw new IllegalArgumentException("-incoming " + value + ": " + e.getMessage(), e);
                    }
                }
                default -> rest.add(arg);
            }
        }
        Path monitor = null;
        if (monitorChardev != null) {
            monitor = chardevs.get(monitorChardev);
            if (monitor == null) {
                throw new IllegalArgumentException("-mon: no -chardev with id=" + monitorChardev);
            }
        }
        return new LaunchOptions(qtest, log, monitor, rest, incoming);
    }

    private static String value(List<String> args, int i, String option) {
        if (i >= args.size()) {
            throw new IllegalArgumentException("option " + option + " needs a value");
        }
        return args.get(i);
    }

    private static String beforeComma(String s) {
        int comma = s.indexOf(',');
        return comma < 0 ? s : s.substring(0, comma);
    }

    private static void expect(String option, String value, String only) {
        if (!value.equals(only)) {
            throw new IllegalArgumentException(option + " " + value + " is not supported (only " + only + ")");
        }
    }

    /** "a,b=1,c=2": a bare first item is stored under "" (QEMU's implied key, e.g. the backend). */
    private static Map<String, String> keyValues(String text, String impliedKey) {
        Map<String, String> result = new HashMap<>();
        String[] items = text.split(",");
        for (int i = 0; i < items.length; i++) {
            String item = items[i];
            int eq = item.indexOf('=');
            if (eq < 0) {
                if (i != 0) {
                    throw new IllegalArgumentException("'" + item + "' in '" + text + "' is not key=value");
                }
                result.put("", item);
                result.put(impliedKey, item);
            } else {
                result.put(item.substring(0, eq), item.substring(eq + 1));
            }
        }
        return result;
    }
}
