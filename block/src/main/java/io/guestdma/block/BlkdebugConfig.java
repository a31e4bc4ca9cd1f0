package io.guestdma.block;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * The rules of a QEMU blkdebug configuration file ({@code file=blkdebug:CONFIG:IMAGE}), in QEMU's
 * syntax: groups {@code [inject-error]} and {@code [set-state]}, each followed by lines
 * {@code key = "value"} (the value in double quotes); {@code #} starts a comment line.
 *
 * <pre>
 * [inject-error]
 * event = "flush_to_disk"
 * errno = "5"
 * state = "1"
 * once = "on"
 *
 * [set-state]
 * event = "flush_to_disk"
 * new_state = "2"
 * </pre>
 *
 * <p>{@code [inject-error]} takes {@code event} (required), {@code state} (0 or absent: any
 * state), {@code errno} (default 5, EIO), {@code sector} (only requests covering that 512-byte
 * sector; absent: any request), {@code once} (remove the rule when it fires), {@code immediately}
 * (accepted; QEMU's difference between failing at once and after a yield is invisible here) and
 * {@code iotype} ({@code read}, {@code write}, {@code flush} or {@code discard}; absent: all).
 * {@code [set-state]} takes {@code event}, {@code state} and {@code new_state}. Numbers are C
 * literals (decimal, 0x hexadecimal); booleans are on/off, yes/no, true/false. The events are
 * those a raw image raises in QEMU: see {@link Event}.
 *
 * @param rules the rules in file order
 */
public record BlkdebugConfig(List<Rule> rules) {

    /** The blkdebug events a raw image over this layer raises, with QEMU's names. */
    public enum Event {
        /** Before every read (QEMU's raw format driver raises it). */
        READ_AIO("read_aio"),
        /** Before every write. */
        WRITE_AIO("write_aio"),
        /** Before a write reaches the image, after {@link #WRITE_AIO}. */
        PWRITEV("pwritev"),
        /** After a write has reached the image (whether it succeeded or failed). */
        PWRITEV_DONE("pwritev_done"),
        /** At the start of every flush. */
        FLUSH_TO_OS("flush_to_os"),
        /** When a flush goes on to the disk: only if something was written since the last flush. */
        FLUSH_TO_DISK("flush_to_disk");

        private final String qemuName;

        Event(String qemuName) {
            this.qemuName = qemuName;
        }

        /** {@return QEMU's name for the event, e.g. {@code flush_to_disk}} */
        public String qemuName() {
            return qemuName;
        }

        /**
         * Finds an event by QEMU's name.
         *
         * @param name e.g. {@code flush_to_os}
         * @return the event
         * @throws IllegalArgumentException if no event of this layer has that name
         */
        public static Event of(String name) {
            for (Event e : values()) {
                if (e.qemuName.equals(name)) {
                    return e;
                }
            }
            List<String> known = new ArrayList<>();
            for (Event e : values()) {
                known.add(e.qemuName);
            }
            throw new IllegalArgumentException("blkdebug event '" + name + "' is not raised by a raw image here "
                    + "(events: " + String.join(", ", known) + ")");
        }
    }

    /** The kinds of request an {@code [inject-error]} rule may fail (QEMU's {@code iotype}). */
    public enum IoType {
        /** Reads. */
        READ,
        /** Writes. */
        WRITE,
        /** Flushes. */
        FLUSH,
        /** Discards. */
        DISCARD
    }

    /** One rule of the file. */
    public sealed interface Rule {
        /** {@return the event that triggers the rule} */
        Event event();

        /** {@return the state the rule applies in, or 0 for any state} */
        long state();
    }

    /**
     * {@code [inject-error]}: when the event happens (in the state), the next matching request
     * fails with the errno, as do the ones after it until another event injects errors or, with
     * {@code once}, right after the first.
     *
     * @param event the triggering event
     * @param state the state, 0 for any
     * @param errno the errno the request fails with, above 0
     * @param sector the 512-byte sector a failing read or write must cover, or -1 for any
     * @param once whether the rule is removed when it fails a request
     * @param immediately QEMU's {@code immediately}, kept for completeness
     * @param ioTypes the kinds of request that fail
     */
    public record InjectError(Event event, long state, int errno, long sector, boolean once, boolean immediately,
                              Set<IoType> ioTypes) implements Rule {
        /**
         * Validates the rule.
         *
         * @throws NullPointerException if event or ioTypes is null
         * @throws IllegalArgumentException if errno is below 1, sector below -1 or ioTypes empty
         */
        public InjectError {
            Objects.requireNonNull(event, "event");
            ioTypes = Set.copyOf(ioTypes);
            if (errno < 1 || sector < -1 || ioTypes.isEmpty()) {
                throw new IllegalArgumentException("inject-error needs errno > 0, sector >= -1 and an iotype");
            }
        }
    }

    /**
     * {@code [set-state]}: when the event happens (in the state), the state becomes newState once
     * every rule of the event has been considered.
     *
     * @param event the triggering event
     * @param state the state, 0 for any
     * @param newState the next state
     */
    public record SetState(Event event, long state, long newState) implements Rule {
        /**
         * Validates the rule.
         *
         * @throws NullPointerException if event is null
         */
        public SetState {
            Objects.requireNonNull(event, "event");
        }
    }

    /**
     * Copies the rules.
     *
     * @throws NullPointerException if rules is null or holds null
     */
    public BlkdebugConfig {
        rules = List.copyOf(rules);
    }

    /**
     * Reads a configuration file.
     *
     * @param file the file
     * @return the rules
     * @throws IOException if the file cannot be read
     * @throws IllegalArgumentException naming the file and line if the text is not a valid
     *     configuration
     */
    public static BlkdebugConfig read(Path file) throws IOException {
        return parse(Files.readString(file, StandardCharsets.UTF_8), file.toString());
    }

    /**
     * Parses the text of a configuration file.
     *
     * @param text the text
     * @param source where it came from, for messages
     * @return the rules
     * @throws IllegalArgumentException as {@code SOURCE:LINE: what is wrong} if the text is not a
     *     valid configuration
     */
    public static BlkdebugConfig parse(String text, String source) {
        List<Rule> rules = new ArrayList<>();
        String group = null;
        int groupLine = 0;
        Map<String, String> options = new LinkedHashMap<>();
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            int number = i + 1;
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            if (line.startsWith("[")) {
                if (group != null) {
                    rules.add(rule(group, options, source + ":" + groupLine));
                }
                if (!line.endsWith("]")) {
                    throw new IllegalArgumentException(source + ":" + number + ": parse error: '" + line + "'");
                }
                group = line.substring(1, line.length() - 1).strip();
                if (!group.equals("inject-error") && !group.equals("set-state")) {
                    throw new IllegalArgumentException(source + ":" + number + ": there is no option group '"
                            + group + "' (use inject-error or set-state)");
                }
                groupLine = number;
                options.clear();
                continue;
            }
            int eq = line.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException(source + ":" + number + ": parse error: '" + line + "'");
            }
            String key = line.substring(0, eq).strip();
            String value = line.substring(eq + 1).strip();
            if (value.length() < 2 || !value.startsWith("\"") || !value.endsWith("\"")
                    || value.indexOf('"', 1) != value.length() - 1) {
                throw new IllegalArgumentException(source + ":" + number + ": parse error: the value of '" + key
                        + "' must be in double quotes");
            }
            if (group == null) {
                throw new IllegalArgumentException(source + ":" + number + ": no group defined");
            }
            if (options.put(key, value.substring(1, value.length() - 1)) != null) {
                throw new IllegalArgumentException(source + ":" + number + ": '" + key + "' given twice");
            }
        }
        if (group != null) {
            rules.add(rule(group, options, source + ":" + groupLine));
        }
        return new BlkdebugConfig(rules);
    }

    private static Rule rule(String group, Map<String, String> options, String where) {
        Map<String, String> o = new LinkedHashMap<>(options);
        try {
            String eventName = o.remove("event");
            if (eventName == null) {
                throw new IllegalArgumentException("[" + group + "] needs event");
            }
            Event event = Event.of(eventName);
            long state = number(o.remove("state"), 0, "state");
            Rule rule;
            if (group.equals("inject-error")) {
                long errno = number(o.remove("errno"), 5, "errno");
                if (errno < 1 || errno > 4095) {
                    throw new IllegalArgumentException("errno must be 1..4095, was " + errno);
                }
                long sector = number(o.remove("sector"), -1, "sector");
                boolean once = bool(o.remove("once"), "once");
                boolean immediately = bool(o.remove("immediately"), "immediately");
                String iotype = o.remove("iotype");
                Set<IoType> types = iotype == null ? EnumSet.allOf(IoType.class) : EnumSet.of(ioType(iotype));
                rule = new InjectError(event, state, (int) errno, sector, once, immediately, types);
            } else {
                rule = new SetState(event, state, number(o.remove("new_state"), 0, "new_state"));
            }
            if (!o.isEmpty()) {
                throw new IllegalArgumentException("Invalid parameter '" + o.keySet().iterator().next() + "' in ["
                        + group + "]");
            }
            return rule;
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
        }
    }

    private static long number(String text, long absent, String key) {
        if (text == null) {
            return absent;
        }
        try {
            String t = text.strip();
            boolean negative = t.startsWith("-");
            String digits = negative ? t.substring(1) : t;
            long value = digits.startsWith("0x") || digits.startsWith("0X")
                    ? Long.parseLong(digits.substring(2), 16) : Long.parseLong(digits);
            return negative ? -value : value;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("Parameter '" + key + "' expects a number, was '" + text + "'");
        }
    }

    private static boolean bool(String text, String key) {
        if (text == null) {
            return false;
        }
        return switch (text.toLowerCase(Locale.ROOT)) {
            case "on", "yes", "true", "y" -> true;
            case "off", "no", "false", "n" -> false;
            default -> throw new IllegalArgumentException("Parameter '" + key + "' expects 'on' or 'off', was '"
                    + text + "'");
        };
    }

    private static IoType ioType(String text) {
        return switch (text) {
            case "read" -> IoType.READ;
            case "write" -> IoType.WRITE;
            case "flush" -> IoType.FLUSH;
            case "discard" -> IoType.DISCARD;
            default -> throw new IllegalArgumentException("iotype '" + text
                    + "' is not supported (read, write, flush, discard)");
        };
    }
}
