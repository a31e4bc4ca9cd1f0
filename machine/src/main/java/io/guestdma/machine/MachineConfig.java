package io.guestdma.machine;

import io.guestdma.block.ImageLocation;
import io.guestdma.block.NbdAddress;
import io.guestdma.ide.DmaMode;
import io.guestdma.ide.ErrorPolicy;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * What a {@link PcMachine} is made of: the RAM size and up to four IDE drives.
 *
 * @param ramBytes RAM at guest address 0; a positive multiple of 4 KiB, at most 4 GiB
 * @param drives the drives, at distinct indexes
 * @param globals QEMU's {@code -global DRIVER.PROPERTY=VALUE} device defaults, by
 *     "DRIVER.PROPERTY": {@code ide-hd.serial}, {@code ide-hd.model}, {@code ide-hd.ver} and the
 *     same for {@code ide-cd}
 */
public record MachineConfig(long ramBytes, List<DriveSpec> drives, Map<String, String> globals) {
    /** QEMU's default RAM size. */
    public static final long DEFAULT_RAM = 128L << 20;
    private static final long MAX_RAM = 4L << 30;
    private static final List<String> GLOBALS = List.of("ide-hd.serial", "ide-hd.model", "ide-hd.ver",
            "ide-cd.serial", "ide-cd.model", "ide-cd.ver");

    /** The command-line syntax, for error messages. */
    public static final String USAGE = """
            usage: qtest-machine [-m SIZE] [-drive file=IMAGE|NBD-URI[,format=raw][,if=ide][,index=0-3]
                                 [,media=disk|cdrom][,cache=writeback][,discard=ignore|unmap]
                                 [,rerror=report|ignore][,werror=report|ignore|enospc]
                                 [,backend=filechannel|native][,dma=map|copy]]...
                                 [-global ide-hd|ide-cd.serial|model|ver=VALUE]...
              -m SIZE   RAM size: a number with an optional K, M, G suffix (no suffix: MiB),
                        default 128M
              -drive    a raw disk image on the PIIX IDE controller (index 0 = primary master):
                        a file, or an NBD export as nbd://HOST[:PORT]/EXPORT or
                        nbd+unix:///EXPORT?socket=PATH (backend= does not apply);
                        media=cdrom makes it an ATAPI CD-ROM drive (read-only; no file: empty)
            Serves QEMU's qtest protocol on stdin/stdout until end of input.""";

    /**
     * Validates the configuration.
     *
     * @throws IllegalArgumentException if the RAM size is invalid, two drives share an index or
     *     the drives ask for different DMA modes (the controller has one engine)
     * @throws NullPointerException if drives is null or holds null
     */
    public MachineConfig {
        if (ramBytes <= 0 || ramBytes % 4096 != 0 || ramBytes > MAX_RAM) {
            throw new IllegalArgumentException("RAM size must be a positive multiple of 4 KiB up to 4 GiB, was "
                    + ramBytes + " bytes");
        }
        drives = List.copyOf(drives);
        globals = Map.copyOf(globals);
        for (String key : globals.keySet()) {
            if (!GLOBALS.contains(key)) {
                throw new IllegalArgumentException("-global " + key + " is not supported (known: "
                        + String.join(", ", GLOBALS) + ")");
            }
        }
        boolean[] taken = new boolean[4];
        for (DriveSpec d : drives) {
            if (taken[d.index()]) {
                throw new IllegalArgumentException("two drives use index " + d.index());
            }
            taken[d.index()] = true;
        }
        if (drives.stream().map(DriveSpec::dma).distinct().count() > 1) {
            throw new IllegalArgumentException("all drives must use the same dma= mode: the "
                    + "controller has one DMA engine");
        }
    }

    /**
     * A configuration without {@code -global} settings.
     *
     * @param ramBytes RAM size
     * @param drives the drives
     * @throws IllegalArgumentException as the canonical constructor
     * @throws NullPointerException if drives is null or holds null
     */
    public MachineConfig(long ramBytes, List<DriveSpec> drives) {
        this(ramBytes, drives, Map.of());
    }

    /** {@return the DMA mode the drives agree on ({@link DmaMode#MAP} without drives)} */
    public DmaMode dmaMode() {
        return drives.isEmpty() ? DmaMode.MAP : drives.get(0).dma();
    }

    /**
     * Parses a QEMU-style command line: {@code -m SIZE} and any number of {@code -drive
     * key=value,...} (a comma inside a value is written twice, as in QEMU).
     *
     * @param args the arguments
     * @return the configuration
     * @throws IllegalArgumentException with a message naming the offending argument if the
     *     command line is invalid
     */
    public static MachineConfig parse(List<String> args) {
        Objects.requireNonNull(args, "args");
        long ram = DEFAULT_RAM;
        List<Map<String, String>> driveOptions = new ArrayList<>();
        Map<String, String> globals = new LinkedHashMap<>();
        for (int i = 0; i < args.size(); i++) {
            String arg = args.get(i);
            switch (arg) {
                case "-m", "--m" -> ram = parseRamSize(value(args, ++i, arg));
                case "-drive", "--drive" -> driveOptions.add(parseKeyValues(value(args, ++i, arg)));
                case "-global", "--global" -> {
                    String global = value(args, ++i, arg);
                    int eq = global.indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("-global " + global + ": use DRIVER.PROPERTY=VALUE");
                    }
                    globals.put(global.substring(0, eq), global.substring(eq + 1));
                }
                default -> throw new IllegalArgumentException("unknown argument '" + arg + "'");
            }
        }
        List<DriveSpec> drives = new ArrayList<>();
        boolean[] taken = new boolean[4];
        for (Map<String, String> options : driveOptions) {
            DriveSpec d = parseDrive(options, taken);
            taken[d.index()] = true;
            drives.add(d);
        }
        return new MachineConfig(ram, drives, globals);
    }

    private static String value(List<String> args, int i, String option) {
        if (i >= args.size()) {
            throw new IllegalArgumentException("option " + option + " needs a value");
        }
        return args.get(i);
    }

    /** QEMU's -m syntax: "64M", "1G", "512" (MiB), optionally as "size=64M". */
    static long parseRamSize(String text) {
        String s = text.startsWith("size=") ? text.substring(5) : text;
        if (s.isEmpty()) {
            throw new IllegalArgumentException("-m needs a size, e.g. -m 64M");
        }
        char last = Character.toUpperCase(s.charAt(s.length() - 1));
        int shift = switch (last) {
            case 'K' -> 10;
            case 'M' -> 20;
            case 'G' -> 30;
            case 'T' -> 40;
            case 'B' -> 0;
            default -> -1;
        };
        String digits = shift < 0 ? s : s.substring(0, s.length() - 1);
        if (shift < 0) {
            shift = 20;
        }
        long number;
        try {
            number = Long.parseLong(digits);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("-m: '" + text + "' is not a size (e.g. 64M)");
        }
        if (number <= 0 || number > (MAX_RAM >> shift)) {
            throw new IllegalArgumentException("-m: '" + text + "' must be above 0 and at most 4G");
        }
        long bytes = number << shift;
        if (bytes % 4096 != 0) {
            throw new IllegalArgumentException("-m: '" + text + "' is not a multiple of 4K");
        }
        return bytes;
    }

    /** Splits "a=1,b=2" with QEMU's ",," escape for a literal comma. */
    private static Map<String, String> parseKeyValues(String text) {
        Map<String, String> result = new LinkedHashMap<>();
        int i = 0;
        while (i < text.length()) {
            StringBuilder item = new StringBuilder();
            while (i < text.length()) {
                char c = text.charAt(i);
                if (c == ',') {
                    if (i + 1 < text.length() && text.charAt(i + 1) == ',') {
                        item.append(',');
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                item.append(c);
                i++;
            }
            int eq = item.indexOf("=");
            if (eq <= 0) {
                throw new IllegalArgumentException("-drive: '" + item + "' is not key=value");
            }
            String key = item.substring(0, eq);
            if (result.put(key, item.substring(eq + 1)) != null) {
                throw new IllegalArgumentException("-drive: option '" + key + "' given twice");
            }
        }
        return result;
    }

    private static DriveSpec parseDrive(Map<String, String> options, boolean[] taken) {
        Map<String, String> o = new LinkedHashMap<>(options);
        String file = o.remove("file");
        boolean cdrom = parseMedia(o.remove("media"));
        if ((file == null || file.isEmpty()) && !cdrom) {
            throw new IllegalArgumentException("-drive needs file=IMAGE");
        }
        expect(o.remove("format"), "format", "raw");
        expect(o.remove("if"), "if", "ide");
        int index = parseIndex(o.remove("index"), taken);
        // The guest switches the write cache itself (SET FEATURES); only QEMU's default is offered.
        expect(o.remove("cache"), "cache", "writeback");
        boolean discard = switch (orDefault(o.remove("discard"), "ignore")) {
            case "ignore", "off" -> false;
            case "unmap", "on" -> true;
            default -> throw invalid("discard", options.get("discard"), "ignore, unmap");
        };
        ErrorPolicy read = policy("rerror", o.remove("rerror"));
        ErrorPolicy write = policy("werror", o.remove("werror"));
        ImageLocation image;
        try {
            image = file == null || file.isEmpty() ? null : ImageLocation.parse(file); // an empty CD-ROM drive
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("-drive: file=" + file + ": " + e.getMessage(), e);
        }
        String backendName = o.remove("backend");
        if (image instanceof NbdAddress && backendName != null) {
            throw new IllegalArgumentException("-drive: backend=" + backendName + " applies to image files; "
                    + file + " is an NBD export, which the NBD client opens");
        }
        BackendType backend = image instanceof NbdAddress ? BackendType.NBD
                : switch (orDefault(backendName, "filechannel")) {
                    case "filechannel" -> BackendType.FILE_CHANNEL;
                    case "native" -> BackendType.NATIVE;
                    default -> throw invalid("backend", backendName, "filechannel, native");
                };
        DmaMode dma = switch (orDefault(o.remove("dma"), "map")) {
            case "map" -> DmaMode.MAP;
            case "copy" -> DmaMode.COPY;
            default -> throw invalid("dma", options.get("dma"), "map, copy");
        };
        if (!o.isEmpty()) {
            throw new IllegalArgumentException("-drive: unknown option '" + o.keySet().iterator().next()
                    + "' (known: file, format, if, index, media, cache, discard, rerror, werror, backend, dma)");
        }
        return new DriveSpec(image, index, backend, dma, discard, read, write, cdrom);
    }

    /** QEMU's {@code media=disk|cdrom}: true for a CD-ROM drive (which may have no file). */
    private static boolean parseMedia(String text) {
        return switch (orDefault(text, "disk").toLowerCase(Locale.ROOT)) {
            case "disk" -> false;
            case "cdrom" -> true;
            default -> throw invalid("media", text, "disk, cdrom");
        };
    }

    private static int parseIndex(String text, boolean[] taken) {
        if (text == null) {
            for (int i = 0; i < taken.length; i++) {
                if (!taken[i]) {
                    return i;
                }
            }
            throw new IllegalArgumentException("-drive: at most 4 IDE drives (indexes 0-3)");
        }
        int index;
        try {
            index = Integer.parseInt(text);
        } catch (NumberFormatException e) {
            throw invalid("index", text, "0, 1, 2, 3");
        }
        if (index < 0 || index > 3) {
            throw invalid("index", text, "0, 1, 2, 3");
        }
        if (taken[index]) {
            throw new IllegalArgumentException("-drive: index " + index + " is already in use");
        }
        return index;
    }

    private static ErrorPolicy policy(String key, String text) {
        return switch (orDefault(text, "report")) {
            case "report" -> ErrorPolicy.REPORT;
            case "ignore" -> ErrorPolicy.IGNORE;
            // QEMU's default werror: stops only when the host disk is full, otherwise reports.
            case "enospc" -> {
                if (key.equals("rerror")) {
                    throw invalid(key, text, "report, ignore");
                }
                yield ErrorPolicy.REPORT;
            }
            case "stop" -> throw new IllegalArgumentException("-drive: " + key
                    + "=stop needs a monitor to resume the machine, and qtest-machine has none");
            default -> throw invalid(key, text, key.equals("rerror") ? "report, ignore" : "report, ignore, enospc");
        };
    }

    private static void expect(String actual, String key, String only) {
        if (actual != null && !actual.toLowerCase(Locale.ROOT).equals(only)) {
            throw invalid(key, actual, only);
        }
    }

    private static String orDefault(String value, String fallback) {
        return value == null ? fallback : value;
    }

    private static IllegalArgumentException invalid(String key, String value, String allowed) {
        return new IllegalArgumentException("-drive: " + key + "=" + value + " is not supported (use "
                + allowed + ")");
    }
}
