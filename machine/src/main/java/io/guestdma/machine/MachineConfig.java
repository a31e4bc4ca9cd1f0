package io.guestdma.machine;

import io.guestdma.block.ImageLocation;
import io.guestdma.block.NbdAddress;
import io.guestdma.ide.DmaMode;
import io.guestdma.block.ErrorPolicy;
import io.guestdma.net.NetdevSpec;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * What a {@link PcMachine} is made of: the RAM size, the drives and {@code -blockdev} nodes, and
 * the {@code -device}s that use them.
 *
 * @param ramBytes RAM at guest address 0; a positive multiple of 4 KiB, at most 4 GiB
 * @param drives the {@code -drive}s; those with {@code if=ide} at distinct indexes
 * @param globals QEMU's {@code -global DRIVER.PROPERTY=VALUE} device defaults, by
 *     "DRIVER.PROPERTY", for a driver of {@link DeviceTypes} and one of its properties
 * @param blockdevs the {@code -blockdev} nodes, each {@code raw} node after its file node
 * @param devices the {@code -device}s, created in order after the {@code if=ide} drives are
 *     connected
 * @param netdevs the {@code -netdev} network backends, with distinct ids, opened before the devices
 *     (a NIC's {@code netdev=} names one)
 */
public record MachineConfig(long ramBytes, List<DriveSpec> drives, Map<String, String> globals,
                            List<BlockdevSpec> blockdevs, List<DeviceSpec> devices, List<NetdevSpec> netdevs) {
    /** QEMU's default RAM size. */
    public static final long DEFAULT_RAM = 128L << 20;
    private static final long MAX_RAM = 4L << 30;

    /** The command-line syntax, for error messages. */
    public static final String USAGE = """
            usage: qtest-machine [-m SIZE] [-drive file=IMAGE|NBD-URI[,format=raw][,if=ide|none][,id=ID]
                                 [,index=0-3][,media=disk|cdrom][,cache=writeback][,discard=ignore|unmap]
                                 [,rerror=report|ignore|stop][,werror=report|ignore|enospc|stop]
                                 [,backend=filechannel|native][,dma=map|copy]]...
                                 [-blockdev driver=file,node-name=NODE,filename=IMAGE[,read-only=on]]...
                                 [-blockdev driver=raw,node-name=NODE,file=FILE-NODE]...
                                 [-device ide-hd|ide-cd[,drive=ID|NODE][,bus=ide.0|ide.1][,unit=0|1]
                                          [,serial=S][,model=M][,ver=V]]...
                                 [-device virtio-blk-pci,drive=ID|NODE[,addr=SLOT[.FN]][,serial=S]
                                          [,num-queues=N][,queue-size=N][,vectors=N]]...
                                 [-netdev socket,id=ID,listen=[HOST]:PORT|connect=HOST:PORT]...
                                 [-netdev stream,id=ID,server=on|off,addr.type=inet,addr.host=H,addr.port=P]...
                                 [-netdev stream,id=ID,server=on|off,addr.type=unix,addr.path=PATH]...
                                 [-netdev loopback,id=ID[,loop=on|off][,capture=F.pcap][,replay=F.pcap]]...
                                 [-device virtio-net-pci,netdev=ID[,mac=52:54:00:XX:XX:XX][,addr=SLOT[.FN]]
                                          [,romfile=][,vectors=N][,rx_queue_size=N]]...
                                 [-global ide-hd|ide-cd.serial|model|ver=VALUE]...
                                 [-incoming tcp:HOST:PORT|unix:PATH|file:PATH]
              -m SIZE   RAM size: a number with an optional K, M, G suffix (no suffix: MiB),
                        default 128M
              -drive    a raw disk image: a file, or an NBD export as nbd://HOST[:PORT]/EXPORT or
                        nbd+unix:///EXPORT?socket=PATH (backend= does not apply); if=ide (the
                        default) connects it to the PIIX IDE controller (index 0 = primary
                        master), if=none leaves it for a -device; media=cdrom makes it an ATAPI
                        CD-ROM drive (read-only; no file: empty); file=blkdebug:CONFIG:IMAGE
                        or blkdebug::IMAGE puts QEMU's blkdebug rules and breakpoints over it
              -netdev   a network backend: QEMU's socket or stream netdev (frames with a 4-byte
                        length over TCP or a Unix socket), or a loopback with pcap capture/replay
              -device   a device using a drive (ide-cd without drive= is an empty CD-ROM drive)
                        or a netdev
              -incoming wait (run state inmigrate) for a migration stream from a source's QMP
                        migrate, load it and run; a refused stream ends the machine (status 1)
            Serves QEMU's qtest protocol on stdin/stdout until end of input.""";

    /**
     * Validates the configuration.
     *
     * @throws IllegalArgumentException if the RAM size is invalid, two {@code if=ide} drives
     *     share an index, two drives share an id or two nodes a name (or a node a drive's id), a
     *     {@code raw} node's file node is not defined before it, a {@code -global} names an
     *     unknown driver or property, or the drives ask for different DMA modes (the controller
     *     has one engine), or two netdevs share an id
     * @throws NullPointerException if a list or map is null or holds null
     */
    public MachineConfig {
        if (ramBytes <= 0 || ramBytes % 4096 != 0 || ramBytes > MAX_RAM) {
            throw new IllegalArgumentException("RAM size must be a positive multiple of 4 KiB up to 4 GiB, was "
                    + ramBytes + " bytes");
        }
        drives = List.copyOf(drives);
        globals = Map.copyOf(globals);
        blockdevs = List.copyOf(blockdevs);
        devices = List.copyOf(devices);
        netdevs = List.copyOf(netdevs);
        java.util.Set<String> netdevIds = new java.util.HashSet<>();
        for (NetdevSpec n : netdevs) {
            if (!netdevIds.add(n.id())) {
                throw new IllegalArgumentException("Duplicate ID '" + n.id() + "' for netdev");
            }
        }
        for (String key : globals.keySet()) {
            checkGlobal(key);
        }
        Names names = new Names();
        for (BlockdevSpec b : blockdevs) {
            names.add(b);
        }
        boolean[] taken = new boolean[4];
        for (DriveSpec d : drives) {
            names.add(d);
            if (d.ifNone()) {
                continue;
            }
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
     * A configuration of RAM and drives only.
     *
     * @param ramBytes RAM size
     * @param drives the drives
     * @param globals the {@code -global} defaults
     * @throws IllegalArgumentException as the canonical constructor
     * @throws NullPointerException if an argument is null or holds null
     */
    public MachineConfig(long ramBytes, List<DriveSpec> drives, Map<String, String> globals) {
        this(ramBytes, drives, globals, List.of(), List.of());
    }

    /**
     * A configuration without network backends.
     *
     * @param ramBytes RAM size
     * @param drives the drives
     * @param globals the {@code -global} defaults
     * @param blockdevs the {@code -blockdev} nodes
     * @param devices the {@code -device}s
     * @throws IllegalArgumentException as the canonical constructor
     * @throws NullPointerException if an argument is null or holds null
     */
    public MachineConfig(long ramBytes, List<DriveSpec> drives, Map<String, String> globals,
                         List<BlockdevSpec> blockdevs, List<DeviceSpec> devices) {
        this(ramBytes, drives, globals, blockdevs, devices, List.of());
    }

    /**
     * The names of drives and nodes, checked as QEMU checks them: {@code -blockdev}s first (QEMU
     * opens them before the drives), each {@code raw} node after its file node.
     */
    private static final class Names {
        private final java.util.Set<String> nodes = new java.util.HashSet<>();
        private final java.util.Set<String> fileNodes = new java.util.HashSet<>();
        private final java.util.Set<String> drives = new java.util.HashSet<>();

        void add(BlockdevSpec b) {
            if (!nodes.add(b.nodeName())) {
                throw new IllegalArgumentException("Duplicate nodes with node-name='" + b.nodeName() + "'");
            }
            if (b.file() != null && !fileNodes.contains(b.file())) {
                throw new IllegalArgumentException("Cannot find device='" + b.file() + "' nor node-name='"
                        + b.file() + "'");
            }
            if (b.filename() != null) {
                fileNodes.add(b.nodeName());
            }
        }

        void add(DriveSpec d) {
            if (nodes.contains(d.id())) {
                throw new IllegalArgumentException("Device name '" + d.id() + "' conflicts with an existing node name");
            }
            if (!drives.add(d.id())) {
                throw new IllegalArgumentException("Duplicate ID '" + d.id() + "' for drive");
            }
        }

        boolean hasDrive(String id) {
            return drives.contains(id);
        }
    }

    /** Runs a check, prefixing its message with the option as QEMU does. */
    private static <T> T withPrefix(String option, java.util.function.Supplier<T> check) {
        try {
            return check.get();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
        }
    }

    private static void checkGlobal(String key) {
        int dot = key.indexOf('.');
        String driver = dot < 0 ? key : key.substring(0, dot);
        DeviceType type = DeviceTypes.find(driver).orElseThrow(() -> new IllegalArgumentException(
                "-global " + key + " is not supported: no device driver '" + driver + "' (known: "
                        + String.join(", ", DeviceTypes.names()) + ")"));
        String property = dot < 0 ? "" : key.substring(dot + 1);
        if (!type.properties().contains(property) || property.equals("drive") || property.equals("bus")
                || property.equals("unit")) {
            throw new IllegalArgumentException("-global " + key + " is not supported: Property '" + key
                    + "' not found");
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
     * Parses a QEMU-style command line: {@code -m SIZE} and any number of {@code -drive},
     * {@code -blockdev}, {@code -device} and {@code -global} options (a comma inside a value is
     * written twice, as in QEMU).
     *
     * @param args the arguments
     * @return the configuration
     * @throws IllegalArgumentException with a message naming the offending argument if the
     *     command line is invalid
     */
    public static MachineConfig parse(List<String> args) {
        Objects.requireNonNull(args, "args");
        long ram = DEFAULT_RAM;
        List<String> driveOptions = new ArrayList<>();
        Map<String, String> globals = new LinkedHashMap<>();
        List<BlockdevSpec> blockdevs = new ArrayList<>();
        List<String> blockdevTexts = new ArrayList<>();
        List<DeviceSpec> devices = new ArrayList<>();
        List<NetdevSpec> netdevs = new ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            String arg = args.get(i);
            switch (arg) {
                case "-m", "--m" -> ram = parseRamSize(value(args, ++i, arg));
                case "-drive", "--drive" -> driveOptions.add(value(args, ++i, arg));
                case "-blockdev", "--blockdev" -> {
                    blockdevTexts.add(value(args, ++i, arg));
                    blockdevs.add(parseBlockdev(blockdevTexts.getLast()));
                }
                case "-device", "--device" -> devices.add(DeviceSpec.parse(value(args, ++i, arg)));
                case "-netdev", "--netdev" -> {
                    String text = value(args, ++i, arg);
                    NetdevSpec n = NetdevSpec.parse(text); // its messages name the option already
                    if (netdevs.stream().anyMatch(other -> other.id().equals(n.id()))) {
                        throw new IllegalArgumentException("-netdev " + text + ": Duplicate ID '" + n.id()
                                + "' for netdev");
                    }
                    netdevs.add(n);
                }
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
        Names names = new Names();
        for (int i = 0; i < blockdevs.size(); i++) {
            BlockdevSpec b = blockdevs.get(i);
            withPrefix("-blockdev " + blockdevTexts.get(i), () -> {
                names.add(b);
                return b;
            });
        }
        List<DriveSpec> drives = new ArrayList<>();
        boolean[] taken = new boolean[4];
        for (String text : driveOptions) {
            DriveSpec d = parseDrive(KeyValues.parse("-drive", text, null, false), taken, names);
            withPrefix("-drive " + text, () -> {
                names.add(d);
                return d;
            });
            if (!d.ifNone()) {
                taken[d.index()] = true;
            }
            drives.add(d);
        }
        return new MachineConfig(ram, drives, globals, blockdevs, devices, netdevs);
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

    /** {@code -blockdev driver=file|raw,node-name=N,...}, with QEMU's messages. */
    private static BlockdevSpec parseBlockdev(String text) {
        String option = "-blockdev " + text;
        Map<String, String> o = KeyValues.parse(option, text, null, false);
        String driver = o.remove("driver");
        if (driver == null) {
            throw new IllegalArgumentException(option + ": Parameter 'driver' is missing");
        }
        String name = o.remove("node-name");
        String filename = null;
        String file = null;
        switch (driver) {
            case "file" -> {
                filename = o.remove("filename");
                if (filename == null) {
                    throw new IllegalArgumentException(option + ": Parameter 'filename' is missing");
                }
            }
            case "raw" -> {
                file = o.remove("file");
                if (file == null) {
                    throw new IllegalArgumentException(option + ": Parameter 'file' is missing");
                }
            }
            default -> throw new IllegalArgumentException(option + ": driver=" + driver
                    + " is not supported (use file, or raw over a file node)");
        }
        boolean readOnly = switch (orDefault(o.remove("read-only"), "off")) {
            case "on", "true" -> true;
            case "off", "false" -> false;
            default -> throw new IllegalArgumentException(option + ": Parameter 'read-only' expects 'on' or 'off'");
        };
        if (!o.isEmpty()) {
            throw new IllegalArgumentException(option + ": Parameter '" + o.keySet().iterator().next()
                    + "' is unexpected");
        }
        if (name == null) {
            throw new IllegalArgumentException(option + ": 'node-name' must be specified for the root node");
        }
        try {
            return new BlockdevSpec(name, filename == null ? null : java.nio.file.Path.of(filename), file, readOnly);
        } catch (java.nio.file.InvalidPathException e) {
            throw new IllegalArgumentException(option + ": '" + filename + "' is not a valid path", e);
        }
    }

    private static DriveSpec parseDrive(Map<String, String> options, boolean[] taken, Names names) {
        Map<String, String> o = new LinkedHashMap<>(options);
        String file = o.remove("file");
        boolean cdrom = parseMedia(o.remove("media"));
        if ((file == null || file.isEmpty()) && !cdrom) {
            throw new IllegalArgumentException("-drive needs file=IMAGE");
        }
        expect(o.remove("format"), "format", "raw");
        boolean ifNone = switch (orDefault(o.remove("if"), "ide")) {
            case "ide" -> false;
            case "none" -> true;
            default -> throw invalid("if", options.get("if"), "ide, none");
        };
        String id = o.remove("id");
        String indexText = o.remove("index");
        int index;
        if (ifNone) {
            index = 0;
            if (id == null) {
                // QEMU's name for an if=none drive without id: "none" and its index
                int n = indexText == null ? 0 : parseNumber("index", indexText);
                while (indexText == null && names.hasDrive("none" + n)) {
                    n++;
                }
                id = "none" + n;
            } else if (indexText != null) {
                parseNumber("index", indexText);
            }
        } else {
            index = parseIndex(indexText, taken);
            if (id == null) {
                id = DriveSpec.defaultId(index, cdrom);
            }
        }
        if (id.isEmpty()) {
            throw new IllegalArgumentException("-drive: id= must not be empty");
        }
        // The guest switches the write cache itself (SET FEATURES); only QEMU's default is offered.
        expect(o.remove("cache"), "cache", "writeback");
        boolean discard = switch (orDefault(o.remove("discard"), "ignore")) {
            case "ignore", "off" -> false;
            case "unmap", "on" -> true;
            default -> throw invalid("discard", options.get("discard"), "ignore, unmap");
        };
        ErrorPolicy read = policy("rerror", o.remove("rerror"));
        ErrorPolicy write = policy("werror", o.remove("werror"));
        DriveSpec.Blkdebug blkdebug = null;
        if (file != null && file.startsWith("blkdebug:")) {
            // QEMU's blkdebug:CONFIG:IMAGE, with an empty CONFIG for breakpoints only
            String rest = file.substring("blkdebug:".length());
            int colon = rest.indexOf(':');
            if (colon < 0) {
                throw new IllegalArgumentException("-drive: file=" + file
                        + ": blkdebug requires both config file and image path");
            }
            blkdebug = new DriveSpec.Blkdebug(colon == 0 ? null : java.nio.file.Path.of(rest.substring(0, colon)));
            file = rest.substring(colon + 1);
            if (file.isEmpty()) {
                throw new IllegalArgumentException("-drive: file=blkdebug:" + rest + ": the image path is empty");
            }
        }
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
                    + "' (known: file, format, if, id, index, media, cache, discard, rerror, werror, backend, dma)");
        }
        return new DriveSpec(image, index, backend, dma, discard, read, write, cdrom, id, ifNone, blkdebug);
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

    private static int parseNumber(String key, String text) {
        try {
            int n = Integer.parseInt(text);
            if (n >= 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw invalid(key, text, "a number from 0");
    }

    private static ErrorPolicy policy(String key, String text) {
        // QEMU's defaults: rerror=report, werror=enospc
        return switch (orDefault(text, key.equals("rerror") ? "report" : "enospc")) {
            case "report" -> ErrorPolicy.REPORT;
            case "ignore" -> ErrorPolicy.IGNORE;
            // stops only when the host disk is full, otherwise reports
            case "enospc" -> {
                if (key.equals("rerror")) {
                    throw invalid(key, text, "report, ignore, stop");
                }
                yield ErrorPolicy.ENOSPC;
            }
            // the machine stops; QMP cont (or PcMachine.cont) retries the request
            case "stop" -> ErrorPolicy.STOP;
            default -> throw invalid(key, text, key.equals("rerror") ? "report, ignore, stop" : "report, ignore, enospc, stop");
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
