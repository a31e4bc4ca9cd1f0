package io.guestdma.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * One CPU that an NBD client and its server share while they are measured: ours (the JMH fork and
 * its qemu-nbd) and QEMU's (qemu-img bench and its qemu-nbd) alike.
 *
 * <p>Why: on the 2-vCPU development VM a queue-depth-1 round trip between two processes on
 * different CPUs costs the wake-up of an idle virtual CPU, and the scheduler moves the two
 * processes between sharing a CPU and not every second or so. One unpinned fork of our client
 * gave iterations from 3 500 to 26 000 writes a second, qemu-img bench's runs moved by 18%, so
 * the ratio of the two measured the hypervisor. On one CPU both sides pay for their own work and
 * the server's, and nothing else: our client gave 25 500 to 26 600 writes a second over eight
 * iterations, qemu-img bench 17 500 to 17 800 over five runs. The comparison is of CPU work per
 * request, which is what a client can improve.
 *
 * <p>Uses {@code taskset} (util-linux). Where it is missing or refused, nothing is pinned and a
 * line on standard error says so.
 */
final class SharedCpu {
    /** The CPU chosen: the highest this process may run on (CPU 0 takes most device interrupts). */
    private static final Optional<String> CPU = choose();

    private SharedCpu() {
    }

    private static Optional<String> choose() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"), StandardCharsets.US_ASCII)) {
                if (line.startsWith("Cpus_allowed_list:")) {
                    String list = line.substring(line.indexOf(':') + 1).trim();
                    String last = list.substring(list.lastIndexOf(',') + 1);
                    String cpu = last.substring(last.lastIndexOf('-') + 1);
                    return cpu.matches("[0-9]+") && CReference.onPath("taskset").isPresent() ? Optional.of(cpu)
                            : Optional.empty();
                }
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux, or no /proc: run unpinned.
        }
        return Optional.empty();
    }

    /** {@return the CPU both sides run on, or empty when nothing is pinned} */
    static Optional<String> cpu() {
        return CPU;
    }

    /**
     * {@return {@code command} run on the shared CPU (behind {@code taskset -c N}), or unchanged
     * when nothing is pinned}
     *
     * @param command a program and its arguments
     */
    static List<String> command(List<String> command) {
        if (CPU.isEmpty()) {
            return command;
        }
        List<String> pinned = new ArrayList<>(List.of("taskset", "-c", CPU.get()));
        pinned.addAll(command);
        return pinned;
    }

    /**
     * Moves every thread of this JVM onto the shared CPU; threads started later inherit it. For a
     * JMH fork that measures an NBD client: the harness, the compiler threads and the client share
     * that CPU with the server from then on.
     *
     * @throws InterruptedException if interrupted while {@code taskset} runs
     */
    static void pinThisProcess() throws InterruptedException {
        if (CPU.isEmpty()) {
            System.err.println("guestdma bench: taskset not found; the NBD client and server run unpinned");
            return;
        }
        try {
            Process p = new ProcessBuilder("taskset", "-a", "-p", "-c", CPU.get(),
                    Long.toString(ProcessHandle.current().pid()))
                    .redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) {
                System.err.println("guestdma bench: taskset could not pin this JVM, running unpinned: " + out.strip());
            }
        } catch (IOException e) {
            System.err.println("guestdma bench: taskset could not pin this JVM, running unpinned: " + e.getMessage());
        }
    }
}
