package io.guestdma.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What a benchmark report says about the machine it ran on, read from /proc and the JVM. */
final class MachineFacts {
    private MachineFacts() {
    }

    /**
     * @return CPU, cores, memory, kernel, JDK and the file system holding the benchmark images, in
     *         that order; "unknown" where the machine does not say
     */
    static Map<String, String> collect() {
        Map<String, String> facts = new LinkedHashMap<>();
        facts.put("CPU", firstValue(Path.of("/proc/cpuinfo"), "model name"));
        facts.put("cores available to the JVM", String.valueOf(Runtime.getRuntime().availableProcessors()));
        facts.put("memory", firstValue(Path.of("/proc/meminfo"), "MemTotal"));
        facts.put("kernel", read(Path.of("/proc/sys/kernel/osrelease")));
        facts.put("JDK", System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version")
                + " (" + System.getProperty("java.home") + ")");
        Path dir = ImageFile.directory();
        facts.put("image directory", dir + " on " + fileSystem(dir));
        return facts;
    }

    private static String firstValue(Path file, String key) {
        try {
            for (String line : Files.readAllLines(file)) {
                if (line.startsWith(key)) {
                    return line.substring(line.indexOf(':') + 1).strip();
                }
            }
        } catch (IOException e) {
            return "unknown (" + e.getMessage() + ")";
        }
        return "unknown";
    }

    private static String read(Path file) {
        try {
            return Files.readString(file).strip();
        } catch (IOException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }

    /** The mount with the longest mount point that contains {@code dir}: its type and device. */
    private static String fileSystem(Path dir) {
        try {
            List<String> mounts = Files.readAllLines(Path.of("/proc/self/mounts"));
            String best = null;
            int bestLength = -1;
            for (String line : mounts) {
                String[] f = line.split(" ");
                if (f.length < 3) {
                    continue;
                }
                String point = f[1].replace("\\040", " ");
                if ((dir.toString().equals(point) || dir.toString().startsWith(point.endsWith("/") ? point : point + "/"))
                        && point.length() > bestLength) {
                    best = f[2] + " (" + f[0] + " at " + point + ")";
                    bestLength = point.length();
                }
            }
            return best != null ? best : "unknown";
        } catch (IOException e) {
            return "unknown (" + e.getMessage() + ")";
        }
    }
}
