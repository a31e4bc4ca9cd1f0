package io.guestdma.machine;

import io.guestdma.block.BlkdebugBackend;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * QEMU's human monitor (HMP) as QMP's {@code human-monitor-command} reaches it, with the commands
 * QEMU's IDE tests use: {@code qemu-io [-d] DRIVE "COMMAND"} with the blkdebug commands
 * {@code break EVENT TAG}, {@code remove_break TAG}, {@code resume TAG} and {@code wait_break TAG};
 * and {@code stop}, {@code cont}, {@code system_reset}, {@code info status}. Output is text with
 * CR LF line ends, as QEMU's; errors are output too (HMP has no error replies). What qemu-io
 * commands print (e.g. "Could not resume request: ...") goes, as in QEMU, not to the monitor but
 * to the process's output: the {@code console} stream.
 */
final class HumanMonitor {
    /** How long {@code wait_break} waits for a request to reach its breakpoint (QEMU waits forever). */
    private static final long WAIT_BREAK_SECONDS = 30;

    private final PcMachine machine;
    private final java.io.PrintStream console;

    HumanMonitor(PcMachine machine, java.io.PrintStream console) {
        this.machine = Objects.requireNonNull(machine, "machine");
        this.console = Objects.requireNonNull(console, "console");
    }

    /**
     * Runs one command line.
     *
     * @param commandLine e.g. {@code qemu-io ide0-hd0 "break flush_to_os A"}
     * @return what the monitor prints, "" for nothing
     */
    String execute(String commandLine) {
        List<String> words;
        try {
            words = words(commandLine);
        } catch (IllegalArgumentException e) {
            return "Error: " + e.getMessage() + "\r\n";
        }
        if (words.isEmpty()) {
            return "";
        }
        String command = words.get(0);
        return switch (command) {
            case "qemu-io" -> {
                String printed = qemuIo(words.subList(1, words.size()));
                if (printed.startsWith("Error: ")) {
                    yield printed; // the monitor's own error, before qemu-io runs
                }
                console.print(printed.replace("\r\n", "\n"));
                console.flush();
                yield "";
            }
            case "stop" -> {
                machine.stop();
                yield "";
            }
            case "cont", "c" -> {
                machine.cont();
                yield "";
            }
            case "system_reset" -> {
                machine.reset();
                yield "";
            }
            case "info" -> words.size() == 2 && words.get(1).equals("status")
                    ? "VM status: " + switch (machine.runState()) {
                        case "running" -> "running";
                        case "io-error" -> "paused (io-error)";
                        default -> "paused";
                    } + "\r\n"
                    : "info " + String.join(" ", words.subList(1, words.size())) + ": only 'info status' is supported\r\n";
            default -> "unknown command: '" + command + "'\r\n";
        };
    }

    private String qemuIo(List<String> args) {
        List<String> rest = new ArrayList<>(args);
        rest.remove("-d"); // the drive is named by its device id: the same name here
        if (rest.size() != 2) {
            return "Error: usage: qemu-io [-d] DRIVE \"COMMAND\"\r\n";
        }
        String drive = rest.get(0);
        if (!machine.hasDrive(drive)) {
            return "Error: Cannot find device='" + drive + "' nor node-name='" + drive + "'\r\n";
        }
        Optional<BlkdebugBackend> debug = machine.blkdebug(drive);
        List<String> io = words(rest.get(1));
        if (io.isEmpty()) {
            return "";
        }
        String name = io.get(0);
        int wanted = switch (name) {
            case "break" -> 2;
            case "remove_break", "resume", "wait_break" -> 1;
            default -> -1;
        };
        if (wanted < 0) {
            return "command \"" + name + "\" is not supported here (break, remove_break, resume, wait_break)\r\n";
        }
        if (io.size() != wanted + 1) {
            return "bad argument count " + (io.size() - 1) + " to " + name + ", expected " + wanted + "\r\n";
        }
        // qemu-io's messages; ENOTSUP when the drive has no blkdebug layer, as in QEMU
        return switch (name) {
            case "break" -> {
                if (debug.isEmpty()) {
                    yield "Could not set breakpoint: Operation not supported\r\n";
                }
                try {
                    debug.get().breakpoint(io.get(1), io.get(2));
                    yield "";
                } catch (IllegalArgumentException e) {
                    yield "Could not set breakpoint: No such file or directory (" + e.getMessage() + ")\r\n";
                }
            }
            case "remove_break" -> debug.isEmpty() ? "Could not remove breakpoint " + io.get(1)
                    + ": Operation not supported\r\n"
                    : debug.get().removeBreakpoint(io.get(1)) ? ""
                    : "Could not remove breakpoint " + io.get(1) + ": No such file or directory\r\n";
            case "resume" -> debug.isEmpty() ? "Could not resume request: Operation not supported\r\n"
                    : debug.get().resume(io.get(1)) ? "" : "Could not resume request: No such file or directory\r\n";
            default -> waitBreak(debug, io.get(1));
        };
    }

    private static String waitBreak(Optional<BlkdebugBackend> debug, String tag) {
        if (debug.isEmpty()) {
            return "wait_break: the drive has no blkdebug layer\r\n";
        }
        try {
            return debug.get().awaitHeld(tag, WAIT_BREAK_SECONDS, TimeUnit.SECONDS) ? ""
                    : "wait_break: no request reached breakpoint " + tag + " within " + WAIT_BREAK_SECONDS + " s\r\n";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "wait_break: interrupted\r\n";
        }
    }

    /** HMP's word splitting: blanks separate words; "..." quotes one, with \" and \\ inside. */
    static List<String> words(String line) {
        List<String> words = new ArrayList<>();
        int i = 0;
        while (i < line.length()) {
            char c = line.charAt(i);
            if (Character.isWhitespace(c)) {
                i++;
                continue;
            }
            StringBuilder word = new StringBuilder();
            if (c == '"') {
                i++;
                while (true) {
                    if (i >= line.length()) {
                        throw new IllegalArgumentException("unterminated string literal");
                    }
                    char d = line.charAt(i++);
                    if (d == '"') {
                        break;
                    }
                    if (d == '\\' && i < line.length()) {
                        d = line.charAt(i++);
                        d = d == 'n' ? '\n' : d == 'r' ? '\r' : d;
                    }
                    word.append(d);
                }
            } else {
                while (i < line.length() && !Character.isWhitespace(line.charAt(i))) {
                    word.append(line.charAt(i++));
                }
            }
            words.add(word.toString());
        }
        return words;
    }
}
