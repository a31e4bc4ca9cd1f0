package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Seeded random port I/O against the whole machine, as a hostile guest sees it: PCI configuration
 * (the IDE function's command register and BAR4 moved, disabled, sized with all ones; other and
 * absent functions), the bus-master window wherever BAR4 currently is, the legacy IDE ports, DMA
 * commands with PRD tables in and beyond the 1 MiB of RAM (the bounce path), the reset register at
 * 0xcf9, and random ports anywhere. After every access: no exception reached the caller, the
 * access was bounded in time, and with the bus master idle the bounce pool is empty and no mapping
 * is live. Rerun one seed with {@code -Dguestdma.fuzz.seed=N}.
 */
class PcMachineFuzzTest {
    private static final int OPS_PER_SEED = 100_000;
    private static final int IDE = 1 << 3 | 1;
    private static final long SLOW_OP_NANOS = TimeUnit.SECONDS.toNanos(2);

    @TempDir
    Path dir;

    static LongStream seeds() {
        String chosen = System.getProperty("guestdma.fuzz.seed");
        return chosen != null ? LongStream.of(Long.parseLong(chosen)) : LongStream.of(11, 12);
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void hostilePortIoBreaksNothing(long seed) throws IOException {
        Path image = dir.resolve("disk-" + seed + ".img");
        Files.write(image, new byte[1 << 20]);
        Random random = new Random(seed);
        Deque<String> recent = new ArrayDeque<>();
        try (PcMachine m = new PcMachine(MachineConfig.parse(List.of("-m", "1M", "-drive", "file=" + image
                + (random.nextBoolean() ? ",backend=native" : "") + (random.nextBoolean() ? ",dma=copy" : ""))))) {
            int bar4 = 0xc000;
            long ops = 0;
            while (ops < OPS_PER_SEED) {
                int pick = random.nextInt(100);
                String what;
                IntSupplier op;
                if (pick < 20) {
                    int device = random.nextInt(4) == 0 ? random.nextInt(32) << 3 | random.nextInt(8) : IDE;
                    int register = random.nextInt(3) == 0 ? random.nextInt(256) : (random.nextBoolean() ? 0x04 : 0x20);
                    int size = 1 << random.nextInt(3);
                    int value = switch (register) {
                        case 0x04 -> random.nextInt(8) == 0 ? random.nextInt() : 0x5 | (random.nextBoolean() ? 2 : 0);
                        case 0x20 -> random.nextInt(8) == 0 ? -1 : (bar4 = 0xc000 + 16 * random.nextInt(64));
                        default -> random.nextInt();
                    };
                    int reg = register & ~(size - 1);
                    boolean read = random.nextInt(4) == 0;
                    what = String.format("config %s %02x:%02x.%d reg 0x%02x size %d value 0x%x", read ? "read" : "write",
                            0, device >> 3, device & 7, reg, size, value);
                    op = () -> {
                        m.ports().write(0xcf8, 4, 0x80000000 | device << 8 | (reg & 0xfc));
                        if (read) {
                            return m.ports().read(0xcfc + (reg & 3), size);
                        }
                        m.ports().write(0xcfc + (reg & 3), size, value);
                        return 0;
                    };
                } else if (pick < 45) {
                    int port = bar4 + random.nextInt(16);
                    int size = 1 << random.nextInt(3);
                    int value = random.nextInt(4) == 0 ? random.nextInt() : (random.nextBoolean() ? 0x01 : 0x09);
                    boolean read = random.nextInt(3) == 0;
                    what = String.format("bm %s 0x%x size %d value 0x%x", read ? "in" : "out", port, size, value);
                    op = () -> {
                        if (read) {
                            return m.ports().read(port, size);
                        }
                        m.ports().write(port, size, value);
                        return 0;
                    };
                } else if (pick < 75) {
                    int[] ports = {0x1f0, 0x1f1, 0x1f2, 0x1f3, 0x1f4, 0x1f5, 0x1f6, 0x1f7, 0x3f6, 0x170, 0x177, 0x376};
                    int port = ports[random.nextInt(ports.length)];
                    int size = 1 << random.nextInt(3);
                    // Mostly DMA and non-data commands on the command register.
                    int[] commands = {0xc8, 0xca, 0x25, 0x35, 0x06, 0xe7, 0xea, 0xec, 0xef, 0x90, 0x20, 0x30, 0x00, 0xff};
                    int value = (port & 7) == 7 && port < 0x300 ? commands[random.nextInt(commands.length)] : random.nextInt();
                    boolean read = random.nextInt(3) == 0;
                    what = String.format("ide %s 0x%x size %d value 0x%x", read ? "in" : "out", port, size, value);
                    op = () -> {
                        if (read) {
                            return m.ports().read(port, size);
                        }
                        m.ports().write(port, size, value);
                        return 0;
                    };
                } else if (pick < 92) {
                    // A PRD table in RAM with entries in RAM, past its end and into unassigned space.
                    long table = random.nextInt((1 << 20) - 64) & ~7L;
                    int entries = 1 + random.nextInt(6);
                    what = String.format("guest writes a %d-entry PRD table at 0x%x", entries, table);
                    int window = bar4;
                    op = () -> {
                        for (int i = 0; i < entries; i++) {
                            long address = switch (random.nextInt(4)) {
                                case 0 -> (1 << 20) - random.nextInt(8192);
                                case 1 -> 0x200000 + random.nextInt(1 << 20);
                                default -> random.nextInt(1 << 20);
                            };
                            m.memory().writeInt(table + 8L * i, (int) address);
                            m.memory().writeInt(table + 8L * i + 4, (random.nextInt(0x10000) & 0xfffe)
                                    | (i == entries - 1 && random.nextInt(8) != 0 ? 0x80000000 : 0));
                        }
                        m.ports().write(window + 4, 4, (int) table);
                        return 0;
                    };
                } else if (pick < 93) {
                    what = "reset via 0xcf9";
                    op = () -> {
                        m.ports().write(0xcf9, 1, 0x06);
                        return 0;
                    };
                } else {
                    int port = random.nextInt(0x10000);
                    int size = 1 << random.nextInt(3);
                    boolean read = random.nextBoolean();
                    int value = random.nextInt();
                    what = String.format("random %s 0x%x size %d", read ? "in" : "out", port, size);
                    op = () -> {
                        if (read) {
                            return m.ports().read(port, size);
                        }
                        if (port == 0xcf8 || port == 0xcf9 || (port >= 0xcfc && port < 0xd00)) {
                            return 0; // configuration and reset are fuzzed above, with their effects tracked
                        }
                        m.ports().write(port, size, value);
                        return 0;
                    };
                }
                if (recent.size() == 20) {
                    recent.removeFirst();
                }
                recent.addLast(ops + ": " + what);
                long start = System.nanoTime();
                try {
                    op.getAsInt();
                } catch (RuntimeException | AssertionError e) {
                    throw new AssertionError("exception escaped to the port-I/O caller, seed " + seed + ":\n  "
                            + String.join("\n  ", recent), e);
                }
                long took = System.nanoTime() - start;
                String context = "seed " + seed + ", last operations:\n  " + String.join("\n  ", recent);
                assertThat(took).as("slow operation; %s", context).isLessThan(SLOW_OP_NANOS);
                boolean idle = (m.ide().busMasterRead(2, 1) & 1) == 0 && (m.ide().busMasterRead(10, 1) & 1) == 0
                        && !m.ide().isPaused();
                if (idle) {
                    assertThat(m.memory().bouncePool().bytesInFlight()).as("bounce bytes when idle; %s", context).isZero();
                    assertThat(m.memory().liveMappings()).as("live mappings when idle; %s", context).isZero();
                }
                ops++;
            }
            System.out.printf("machine fuzz seed %d: %d port-level operations, all invariants held%n", seed, ops);
        }
    }
}
