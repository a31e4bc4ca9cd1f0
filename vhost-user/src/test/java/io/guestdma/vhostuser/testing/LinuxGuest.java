package io.guestdma.vhostuser.testing;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A real Linux guest for vhost-user-blk: Debian's kernel ({@code linux-image-amd64}) booted by QEMU
 * 7.2 under TCG with an initramfs built here from busybox-static, the kernel's own virtio modules
 * (resolved through {@code modules.dep}) and fio with the shared libraries {@code ldd} names. The
 * guest's RAM is a shared memfd and its disks are {@code vhost-user-blk-pci} devices, each with its
 * back end at a Unix socket of its own, so every block the guest's virtio-blk driver moves goes
 * through one of those back ends.
 *
 * <p>The initramfs holds several workloads (shell scripts run by busybox's sh); the kernel command
 * line picks one per boot. A workload reports on the serial console in lines
 * {@code GUEST <key> <value>}, and the guest powers off when it ends, which ends QEMU.
 *
 * @param kernel    the kernel image ({@code /boot/vmlinuz-VERSION})
 * @param initramfs the initramfs built by {@link #build}
 */
public record LinuxGuest(Path kernel, Path initramfs) {
    /** Where Debian's guest packages put their files. */
    static final Path BOOT = Path.of("/boot");
    static final Path MODULES = Path.of("/lib/modules");
    static final Path BUSYBOX = Path.of("/bin/busybox");
    static final String FIO = "fio";
    /** The modules the guest's disk needs, dependencies first through modules.dep. */
    static final List<String> DISK_MODULES = List.of("virtio_pci", "virtio_blk");
    /** The guest's RAM: the size the issue's QEMU command line gives. */
    public static final String RAM = "512M";

    /**
     * Why the guest cannot be built on this machine, or empty when it can.
     *
     * @return what is missing (the kernel, its modules, busybox, fio, cpio or QEMU), naming the
     *     Debian package that provides it
     */
    public static Optional<String> missing() {
        if (findKernel().isEmpty()) {
            return Optional.of("no /boot/vmlinuz-* with its /lib/modules (apt-get install linux-image-amd64)");
        }
        if (!Files.isExecutable(BUSYBOX)) {
            return Optional.of(BUSYBOX + " is missing (apt-get install busybox-static)");
        }
        if (onPath(FIO).isEmpty()) {
            return Optional.of("fio is not on the PATH (apt-get install fio)");
        }
        if (onPath("cpio").isEmpty()) {
            return Optional.of("cpio is not on the PATH (apt-get install cpio)");
        }
        if (onPath("qemu-system-x86_64").isEmpty()) {
            return Optional.of("qemu-system-x86_64 is not on the PATH (apt-get install qemu-system-x86)");
        }
        return Optional.empty();
    }

    /** The newest kernel whose modules are installed, as its version. */
    static Optional<String> findKernel() {
        if (!Files.isDirectory(BOOT)) {
            return Optional.empty();
        }
        try (Stream<Path> files = Files.list(BOOT)) {
            return files.map(p -> p.getFileName().toString())
                    .filter(n -> n.startsWith("vmlinuz-"))
                    .map(n -> n.substring("vmlinuz-".length()))
                    .filter(v -> Files.isRegularFile(MODULES.resolve(v).resolve("modules.dep")))
                    .max(Comparator.naturalOrder());
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    /**
     * The executable {@code name} on the PATH.
     *
     * @param name a program name
     * @return its path, or empty if no PATH directory has it
     */
    public static Optional<Path> onPath(String name) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path candidate = Path.of(d.isEmpty() ? "." : d, name);
            if (Files.isExecutable(candidate)) {
                return Optional.of(candidate);
            }
        }
        return Optional.empty();
    }

    /**
     * Builds the initramfs in {@code dir}: busybox, the disk's modules, fio and its libraries, an
     * init that loads the modules, waits for the boot's disks ({@code /dev/vda} and on, as many as
     * the kernel command line's {@code guestdma.disks=N} says), runs the workload the command line
     * names ({@code guestdma.workload=NAME}) and powers off.
     *
     * @param dir       an empty directory for the staging tree and the archive
     * @param workloads workload name to shell script (busybox sh), each run with {@code /dev/vda}
     *                  as {@code $D} (the other disks are {@code /dev/vdb} and on)
     * @return the guest
     * @throws IOException           if a file cannot be read or written, {@code ldd} or
     *                               {@code cpio} fails, or a module is missing or compressed
     * @throws IllegalStateException if {@link #missing()} names something missing
     */
    public static LinuxGuest build(Path dir, Map<String, String> workloads) throws IOException, InterruptedException {
        missing().ifPresent(why -> {
            throw new IllegalStateException(why);
        });
        String version = findKernel().orElseThrow();
        Path root = Files.createDirectories(dir.resolve("root"));
        for (String d : List.of("bin", "sbin", "usr/bin", "proc", "sys", "dev", "tmp", "workloads")) {
            Files.createDirectories(root.resolve(d));
        }
        copy(BUSYBOX, root, "bin/busybox");
        Path fio = onPath(FIO).orElseThrow().toRealPath();
        copy(fio, root, "usr/bin/fio");
        Set<String> libraryDirs = new LinkedHashSet<>();
        for (Path library : sharedLibraries(fio)) {
            copy(library, root, library.toString().substring(1));
            libraryDirs.add(library.getParent().toString());
        }
        List<String> modules = new ArrayList<>();
        Path moduleDir = MODULES.resolve(version);
        for (String module : loadOrder(moduleDir, DISK_MODULES)) {
            copy(moduleDir.resolve(module), root, "modules/" + Path.of(module).getFileName());
            modules.add("/modules/" + Path.of(module).getFileName());
        }
        for (var w : workloads.entrySet()) {
            if (!w.getKey().matches("[a-z0-9-]+")) {
                throw new IllegalArgumentException("workload name '" + w.getKey() + "' is not [a-z0-9-]+");
            }
            Files.writeString(root.resolve("workloads/" + w.getKey() + ".sh"), w.getValue());
        }
        Path init = root.resolve("init");
        Files.writeString(init, initScript(modules, libraryDirs));
        Files.setPosixFilePermissions(init, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path archive = dir.resolve("initramfs.cpio");
        Path list = dir.resolve("files.txt");
        try (Stream<Path> walk = Files.walk(root)) {
            Files.write(list, walk.filter(p -> !p.equals(root)).map(p -> root.relativize(p).toString()).sorted().toList());
        }
        // Uncompressed: under TCG the kernel would spend seconds inflating it.
        run(new ProcessBuilder("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0").directory(root.toFile())
                .redirectInput(list.toFile()).redirectOutput(archive.toFile()), dir.resolve("cpio.err"));
        return new LinuxGuest(BOOT.resolve("vmlinuz-" + version), archive);
    }

    private static String initScript(List<String> modules, Set<String> libraryDirs) {
        return """
                #!/bin/busybox sh
                /bin/busybox --install -s /bin
                export PATH=/bin:/usr/bin LD_LIBRARY_PATH=%s
                mount -t proc proc /proc
                mount -t sysfs sys /sys
                mount -t devtmpfs dev /dev
                mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
                for m in %s; do
                    insmod "$m" || echo "GUEST insmod-failed $m"
                done
                W=none
                N=1
                for a in $(cat /proc/cmdline); do
                    case "$a" in
                        guestdma.workload=*) W=${a#guestdma.workload=} ;;
                        guestdma.disks=*) N=${a#guestdma.disks=} ;;
                    esac
                done
                disks() { n=0; for d in /dev/vd?; do [ -b "$d" ] && n=$((n + 1)); done; echo $n; }
                i=0
                while [ "$(disks)" -lt "$N" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
                if [ "$(disks)" -ge "$N" ]; then
                    echo "GUEST ready $W"
                    D=/dev/vda sh "/workloads/$W.sh"
                    echo "GUEST workload-exit $?"
                else
                    echo "GUEST no-disk found $(disks) of $N"
                fi
                echo GUEST-END
                poweroff -f
                """.formatted(String.join(":", libraryDirs), String.join(" ", modules));
    }

    /** The libraries {@code ldd} lists for {@code program}, the loader included. */
    static List<Path> sharedLibraries(Path program) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("ldd", program.toString()).redirectErrorStream(true).start();
        String out;
        try (InputStream in = p.getInputStream()) {
            out = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        if (p.waitFor() != 0) {
            throw new IOException("ldd " + program + " failed: " + out.strip());
        }
        List<Path> libraries = new ArrayList<>();
        Pattern arrow = Pattern.compile("=>\\s+(/\\S+)");
        Pattern loader = Pattern.compile("^\\s*(/\\S+)\\s+\\(");
        for (String line : out.split("\n")) {
            if (line.contains("not found")) {
                throw new IOException("ldd " + program + ": " + line.strip());
            }
            Matcher m = arrow.matcher(line);
            Matcher l = loader.matcher(line);
            if (m.find()) {
                libraries.add(Path.of(m.group(1)));
            } else if (l.find()) {
                libraries.add(Path.of(l.group(1)));
            }
        }
        return libraries;
    }

    /**
     * The module files (relative to {@code moduleDir}) to insmod for {@code wanted}, each after
     * the ones it depends on, as modules.dep lists them; modules built into the kernel are left out.
     */
    static List<String> loadOrder(Path moduleDir, List<String> wanted) throws IOException {
        Map<String, String> fileOf = new HashMap<>();
        Map<String, List<String>> depsOf = new HashMap<>();
        for (String line : Files.readAllLines(moduleDir.resolve("modules.dep"))) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String file = line.substring(0, colon);
            String rest = line.substring(colon + 1).strip();
            fileOf.put(moduleName(file), file);
            depsOf.put(moduleName(file), rest.isEmpty() ? List.of() : List.of(rest.split("\\s+")));
        }
        Set<String> builtin = new LinkedHashSet<>();
        Path builtinList = moduleDir.resolve("modules.builtin");
        if (Files.exists(builtinList)) {
            for (String line : Files.readAllLines(builtinList)) {
                builtin.add(moduleName(line));
            }
        }
        LinkedHashMap<String, String> order = new LinkedHashMap<>();
        for (String name : wanted) {
            visit(name, fileOf, depsOf, builtin, order, new LinkedHashSet<>());
        }
        return List.copyOf(order.values());
    }

    private static void visit(String name, Map<String, String> fileOf, Map<String, List<String>> depsOf,
                              Set<String> builtin, LinkedHashMap<String, String> order, Set<String> path)
            throws IOException {
        if (order.containsKey(name) || builtin.contains(name)) {
            return;
        }
        String file = fileOf.get(name);
        if (file == null) {
            throw new IOException("module " + name + " is neither in modules.dep nor built in");
        }
        if (!file.endsWith(".ko")) {
            throw new IOException("module " + file + " is compressed; busybox insmod needs a plain .ko");
        }
        if (!path.add(name)) {
            throw new IOException("modules.dep has a cycle through " + name);
        }
        for (String dep : depsOf.get(name)) {
            visit(moduleName(dep), fileOf, depsOf, builtin, order, path);
        }
        order.put(name, file);
    }

    private static String moduleName(String file) {
        String base = Path.of(file.strip()).getFileName().toString();
        int dot = base.indexOf(".ko");
        return (dot < 0 ? base : base.substring(0, dot)).replace('-', '_');
    }

    private static void copy(Path from, Path root, String to) throws IOException {
        Path target = root.resolve(to);
        Files.createDirectories(target.getParent());
        Files.copy(from, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.COPY_ATTRIBUTES);
    }

    private static void run(ProcessBuilder builder, Path stderr) throws IOException, InterruptedException {
        Process p = builder.redirectError(stderr.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor();
            throw new IOException(String.join(" ", builder.command()) + " did not finish in 120 s");
        }
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", builder.command()) + " failed (" + p.exitValue() + "): "
                    + Files.readString(stderr).strip());
        }
    }

    /**
     * One {@code vhost-user-blk-pci} device of a boot.
     *
     * @param socket    the vhost-user socket its back end listens on
     * @param queues    the device's {@code num-queues}
     * @param reconnect whether QEMU reconnects (after 1 s) when the back end goes away
     * @param eventIdx  whether the device offers VIRTIO_RING_F_EVENT_IDX (QEMU's {@code event_idx},
     *                  on by default)
     */
    public record Disk(Path socket, int queues, boolean reconnect, boolean eventIdx) {
        /**
         * @throws IllegalArgumentException if {@code queues} is not positive
         * @throws NullPointerException     if {@code socket} is null
         */
        public Disk {
            Objects.requireNonNull(socket, "socket");
            if (queues < 1) {
                throw new IllegalArgumentException("queues " + queues + " is not positive");
            }
        }

        /**
         * A disk that offers EVENT_IDX, as QEMU's do by default.
         *
         * @param socket    the vhost-user socket its back end listens on
         * @param queues    the device's {@code num-queues}
         * @param reconnect whether QEMU reconnects (after 1 s) when the back end goes away
         * @throws IllegalArgumentException if {@code queues} is not positive
         */
        public Disk(Path socket, int queues, boolean reconnect) {
            this(socket, queues, reconnect, true);
        }
    }

    /**
     * How one boot is set up. The disks sit in PCI slots {@link #FIRST_DISK_SLOT} and on, in list
     * order, so the guest probes them (and names them {@code /dev/vda}, {@code /dev/vdb}, ...) in
     * that order on every boot.
     *
     * @param workload the workload to run (a name given to {@link #build})
     * @param cpus     virtual CPUs
     * @param disks    the vhost-user-blk devices, 1 to {@link #MAX_DISKS}
     */
    public record Boot(String workload, int cpus, List<Disk> disks) {
        /**
         * @throws IllegalArgumentException if there are no disks or more than {@link #MAX_DISKS},
         *                                  or {@code cpus} is not positive
         */
        public Boot {
            disks = List.copyOf(disks);
            if (disks.isEmpty() || disks.size() > MAX_DISKS) {
                throw new IllegalArgumentException(disks.size() + " disks: a boot has 1 to " + MAX_DISKS);
            }
            if (cpus < 1) {
                throw new IllegalArgumentException("cpus " + cpus + " is not positive");
            }
        }

        /**
         * A boot with one disk.
         *
         * @param workload  the workload to run (a name given to {@link #build})
         * @param cpus      virtual CPUs
         * @param socket    the vhost-user socket the back end listens on
         * @param queues    the device's {@code num-queues}
         * @param reconnect whether QEMU reconnects (after 1 s) when the back end goes away
         * @throws IllegalArgumentException if {@code cpus} or {@code queues} is not positive
         */
        public Boot(String workload, int cpus, Path socket, int queues, boolean reconnect) {
            this(workload, cpus, List.of(new Disk(socket, queues, reconnect)));
        }
    }

    /**
     * The PCI slot of a boot's first disk: the first one free on QEMU's {@code pc} machine under
     * {@code -nodefaults} (host bridge in 0, PIIX3 in 1), where a lone disk went before slots were
     * given.
     */
    public static final int FIRST_DISK_SLOT = 2;
    /** The most disks a boot takes (PCI slots up to 31, with room to spare). */
    public static final int MAX_DISKS = 8;

    /**
     * Starts QEMU booting this guest; the console goes to {@code console}.
     *
     * @param boot    the machine and workload
     * @param console where the serial console is written (created or truncated)
     * @return the running guest
     * @throws IOException if QEMU cannot be started
     */
    public Running start(Boot boot, Path console) throws IOException {
        Files.deleteIfExists(console);
        Files.createFile(console);
        List<String> command = new ArrayList<>(List.of(onPath("qemu-system-x86_64").orElseThrow().toString(),
                "-accel", "tcg", "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none",
                "-m", RAM, "-smp", Integer.toString(boot.cpus()),
                "-object", "memory-backend-memfd,id=mem,size=" + RAM + ",share=on",
                "-machine", "pc,memory-backend=mem",
                "-kernel", kernel.toString(), "-initrd", initramfs.toString(),
                "-append", "console=ttyS0 panic=-1 quiet loglevel=3 mitigations=off guestdma.workload=" + boot.workload()
                        + " guestdma.disks=" + boot.disks().size(),
                "-serial", "file:" + console));
        for (int i = 0; i < boot.disks().size(); i++) {
            Disk disk = boot.disks().get(i);
            command.addAll(List.of(
                    "-chardev", "socket,id=c" + i + ",path=" + disk.socket() + (disk.reconnect() ? ",reconnect=1" : ""),
                    "-device", "vhost-user-blk-pci,chardev=c" + i + ",num-queues=" + disk.queues()
                            + (disk.eventIdx() ? "" : ",event_idx=off")
                            + ",addr=" + Integer.toHexString(FIRST_DISK_SLOT + i)));
        }
        Path stderr = console.resolveSibling(console.getFileName() + ".qemu-stderr");
        Process qemu = new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(stderr.toFile()).start();
        return new Running(qemu, console, stderr);
    }

    /**
     * A guest given up on because it printed no progress line within the bound: a disk stopped
     * answering, or the boot stalled. The message has the console and QEMU's output;
     * {@link #summary()} only what went wrong, the last stage and the back ends' states.
     */
    public static final class WentQuiet extends IOException {
        private static final long serialVersionUID = 1L;
        private final String summary;

        WentQuiet(String summary, String message) {
            super(message);
            this.summary = summary;
        }

        /** {@return the failure in one line, without the console} */
        public String summary() {
            return summary;
        }
    }

    /**
     * A booted guest.
     *
     * @param qemu    the QEMU process
     * @param console its serial console
     * @param stderr  QEMU's standard error
     */
    public record Running(Process qemu, Path console, Path stderr) implements AutoCloseable {
        /**
         * Waits until the console has a line starting with {@code prefix}.
         *
         * @param prefix  the start of the line
         * @param seconds how long to wait
         * @throws IOException if QEMU exits first or the time runs out (with the console and
         *                     QEMU's stderr in the message)
         */
        public void awaitLine(String prefix, long seconds) throws IOException, InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            while (true) {
                if (Files.readAllLines(console, StandardCharsets.ISO_8859_1).stream().anyMatch(l -> l.startsWith(prefix))) {
                    return;
                }
                if (!qemu.isAlive() || System.nanoTime() > deadline) {
                    throw new IOException("the guest never printed '" + prefix + "' " + describe());
                }
                Thread.sleep(50);
            }
        }

        /**
         * Waits for the guest to power off and returns what its workload reported.
         *
         * @param seconds how long to wait
         * @return the {@code GUEST <key> <value>} lines as key to value, in order
         * @throws IOException if QEMU does not exit in time or exits without the workload's end
         */
        public Map<String, String> awaitReport(long seconds) throws IOException, InterruptedException {
            return awaitReport(seconds, seconds, List.of());
        }

        /**
         * Waits for the guest to power off and returns what its workload reported, giving up
         * early on a guest that has gone quiet: one whose console got no {@code GUEST} line for
         * {@code quietSeconds} (counted from the start until the first). A failure message names
         * the stage the guest reached (its last {@code GUEST} line) and how each back end is, seen
         * before QEMU is killed.
         *
         * @param seconds      how long to wait in all
         * @param quietSeconds how long to wait for each next {@code GUEST} line
         * @param backEnds     the back ends serving this boot's disks, for the failure message
         * @return the {@code GUEST <key> <value>} lines as key to value, in order
         * @throws IOException if QEMU does not exit in time, goes quiet, or exits without the
         *                     workload's end
         */
        public Map<String, String> awaitReport(long seconds, long quietSeconds, List<GuestBackEnd> backEnds)
                throws IOException, InterruptedException {
            return awaitReport(seconds, quietSeconds, quietSeconds, backEnds);
        }

        /**
         * As {@link #awaitReport(long, long, List)}, with a different bound for the boot (until the
         * first {@code GUEST} line) than for each later line, so that a workload that hangs after
         * the boot is given up on within its own job's time, not the boot's.
         *
         * @param seconds          how long to wait in all
         * @param bootQuietSeconds how long to wait for the first {@code GUEST} line
         * @param quietSeconds     how long to wait for each later {@code GUEST} line
         * @param backEnds         the back ends serving this boot's disks, for the failure message
         * @return the {@code GUEST <key> <value>} lines as key to value, in order
         * @throws WentQuiet   if the guest goes quiet
         * @throws IOException if QEMU does not exit in time, or exits without the workload's end
         */
        public Map<String, String> awaitReport(long seconds, long bootQuietSeconds, long quietSeconds,
                                               List<GuestBackEnd> backEnds) throws IOException, InterruptedException {
            long start = System.nanoTime();
            long deadline = start + TimeUnit.SECONDS.toNanos(seconds);
            long lastProgress = start;
            long progressLines = 0;
            while (!qemu.waitFor(200, TimeUnit.MILLISECONDS)) {
                long now = System.nanoTime();
                long lines = Files.readAllLines(console, StandardCharsets.ISO_8859_1).stream()
                        .filter(l -> l.startsWith("GUEST")).count();
                if (lines != progressLines) {
                    progressLines = lines;
                    lastProgress = now;
                }
                long quiet = progressLines == 0 ? bootQuietSeconds : quietSeconds;
                boolean wentQuiet = now - deadline <= 0 && now - lastProgress > TimeUnit.SECONDS.toNanos(quiet);
                String why = now - deadline > 0 ? "did not power off within " + seconds + " s"
                        : wentQuiet ? "reported nothing for " + quiet + " s (after " + (now - start) / 1_000_000_000 + " s)"
                        : null;
                if (why != null) {
                    String summary = "the guest " + why + "; " + state(backEnds);
                    qemu.destroyForcibly().waitFor();
                    String message = summary + describe();
                    throw wentQuiet ? new WentQuiet(summary, message) : new IOException(message);
                }
            }
            List<String> lines = Files.readAllLines(console, StandardCharsets.ISO_8859_1);
            if (lines.stream().noneMatch(l -> l.startsWith("GUEST-END"))) {
                throw new IOException("QEMU exited (" + qemu.exitValue() + ") before the workload ended; "
                        + state(backEnds) + describe());
            }
            Map<String, String> report = new LinkedHashMap<>();
            for (String line : lines) {
                if (line.startsWith("GUEST ")) {
                    String[] parts = line.strip().split("\\s+", 3);
                    report.put(parts[1], parts.length > 2 ? parts[2] : "");
                }
            }
            return report;
        }

        /**
         * The stage the guest reached (its last {@code GUEST} line: the workload's own progress
         * lines say which step it is in) and each back end's state.
         */
        private String state(List<GuestBackEnd> backEnds) throws IOException {
            List<String> progress = Files.readAllLines(console, StandardCharsets.ISO_8859_1).stream()
                    .filter(l -> l.startsWith("GUEST")).toList();
            StringBuilder s = new StringBuilder("last stage: ")
                    .append(progress.isEmpty() ? "none (not booted as far as the init)" : progress.getLast().strip());
            for (GuestBackEnd b : backEnds) {
                s.append("; ").append(b.state());
            }
            return s.toString();
        }

        /** {@return the console and QEMU's stderr, for a failure message} */
        public String describe() {
            try {
                return "\n--- console ---\n" + Files.readString(console, StandardCharsets.ISO_8859_1)
                        + "\n--- QEMU stderr ---\n" + Files.readString(stderr, StandardCharsets.ISO_8859_1);
            } catch (IOException e) {
                return "(console unreadable: " + e.getMessage() + ")";
            }
        }

        /** Kills QEMU if it still runs. */
        @Override
        public void close() throws InterruptedException {
            if (qemu.isAlive()) {
                qemu.destroyForcibly().waitFor();
            }
        }
    }
}
