package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.ForwardingBackend;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.IoVector;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Seeded random register-level sequences against the PIIX IDE controller and its bus master, as a
 * hostile guest would write them: random PRD tables (no EOT, odd sizes, 0 meaning 64 KiB, entries
 * off the end of RAM, into MMIO and unassigned space), random LBAs (past the end, LBA48 near
 * 2^48), sector count 0, aborts and bus-master toggles mid-transfer, SRST, commands the device
 * lacks, random PIO traffic. Every seed runs {@value #OPS_PER_SEED} operations; the seeds together
 * run over a million per build.
 *
 * <p>The faults below the controller are fuzzed too: a second MMIO device ({@link HostileDevice})
 * that PRD entries and PRD tables point into, whose handler per command works, throws an exception
 * or an AssertionError, stalls briefly, or re-enters the controller (stops the bus master, issues a
 * write command to sectors no command allowed, starts it); and a disk that now and then throws an
 * Error instead of doing the I/O. Controller resets (a machine reset) are among the operations.
 *
 * <p>After every operation: nothing escaped to the caller as an exception; the operation finished
 * in bounded time; when the bus master is idle the bounce pool holds 0 bytes and no mapping is
 * live; guest RAM outside every range a PRD table in effect named is unchanged; no disk write fell
 * outside the sectors of a write command the fuzzer issued (so no re-entrant command ever ran). A
 * failure names the seed and the last operations; rerun one seed with {@code -Dguestdma.fuzz.seed=N}.
 */
class IdeFuzzTest {
    static final int OPS_PER_SEED = 250_000;
    private static final int RAM = 128 << 10;
    private static final long MMIO_BASE = 0x40000;
    private static final int MMIO_SIZE = 0x1000;
    private static final long HOSTILE_BASE = 0x60000;
    private static final int HOSTILE_SIZE = 0x2000;
    private static final long SECTORS = 2048;
    private static final long SLOW_OP_NANOS = TimeUnit.SECONDS.toNanos(2);

    static LongStream seeds() {
        String chosen = System.getProperty("guestdma.fuzz.seed");
        return chosen != null ? LongStream.of(Long.parseLong(chosen)) : LongStream.of(1, 2, 3, 4);
    }

    /** What the hostile device does on its next accesses. */
    enum Hostility { NONE, THROW, ASSERT, STALL, REENTER }

    /**
     * A register file whose handler misbehaves as the fuzzer sets it. REENTER does what a malicious
     * guest arranges with a device that DMA reaches: it writes the controller's registers from
     * inside the controller's own transfer. Those writes must be refused, so the write command it
     * issues (to sectors outside every allowed range) never reaches the disk.
     */
    static final class HostileDevice implements io.guestdma.memory.MmioHandler {
        private final RecordingMmio store = new RecordingMmio(HOSTILE_SIZE);
        volatile Hostility mode = Hostility.NONE;
        volatile IdeRig rig;
        /** Set while the fuzzer itself reads the device to check invariants: it behaves then. */
        volatile boolean observed;
        long misbehaved;

        @Override
        public long read(long offset, int size) {
            misbehave();
            return store.read(offset, size);
        }

        @Override
        public void write(long offset, int size, long value) {
            misbehave();
            store.write(offset, size, value);
        }

        private void misbehave() {
            if (observed) {
                return;
            }
            switch (mode) {
                case NONE -> { }
                case THROW -> {
                    misbehaved++;
                    throw new IllegalStateException("hostile device fault");
                }
                case ASSERT -> {
                    misbehaved++;
                    throw new AssertionError("hostile device assertion");
                }
                case STALL -> {
                    misbehaved++;
                    java.util.concurrent.locks.LockSupport.parkNanos(50_000);
                }
                case REENTER -> {
                    IdeRig r = rig;
                    if (r != null) {
                        misbehaved++;
                        r.ide.busMasterWrite(BM_CMD, 1, 0);
                        r.ide.busMasterWrite(BM_PRDT, 4, (int) (HOSTILE_BASE + 0x800));
                        r.command(CMD_WRITE_DMA, SECTORS - 16, 8); // sectors no command of ours allows
                        r.ide.busMasterWrite(BM_CMD, 1, BM_START);
                        r.ide.reset();
                    }
                }
            }
        }
    }

    /** Remembers the range of every disk write and flags those outside what the fuzzer allowed. */
    private static final class GuardedDisk extends ForwardingBackend {
        final List<long[]> allowed = new ArrayList<>();
        final List<String> violations = new ArrayList<>();
        long writes;
        /** When set, the next request throws it instead of doing I/O (a backend with a bug). */
        volatile Error nextError;
        long errorsThrown;

        private void maybeFail() {
            Error e = nextError;
            if (e != null) {
                nextError = null;
                errorsThrown++;
                throw e;
            }
        }

        GuardedDisk(BlockBackend inner) {
            super(inner);
        }

        private synchronized void check(long offset, long length) {
            writes++;
            for (long[] a : allowed) {
                if (offset >= a[0] && offset + length <= a[1]) {
                    return;
                }
            }
            StringBuilder where = new StringBuilder();
            for (StackTraceElement e : new Throwable().getStackTrace()) {
                if (e.getClassName().startsWith("io.guestdma.ide.") && !e.getClassName().contains("Fuzz")) {
                    where.append("\n    at ").append(e);
                }
            }
            violations.add(String.format("disk write [%d, +%d) outside every allowed sector range, from:%s",
                    offset, length, where));
        }

        @Override
        public boolean isReadOnly() {
            return false;
        }

        @Override
        public void readv(long offset, IoVector iov) throws IOException {
            maybeFail();
            super.readv(offset, iov);
        }

        @Override
        public void writev(long offset, IoVector iov) throws IOException {
            maybeFail();
            check(offset, iov.size());
            super.writev(offset, iov);
        }

        @Override
        public void read(long offset, ByteBuffer dst) throws IOException {
            maybeFail();
            super.read(offset, dst);
        }

        @Override
        public void write(long offset, ByteBuffer src) throws IOException {
            maybeFail();
            check(offset, src.remaining());
            super.write(offset, src);
        }

        @Override
        public void close() {
        }
    }

    /** One fuzzing run: the rig, the guest RAM shadow and the log of recent operations. */
    private static final class Fuzzer {
        final long seed;
        final Random random;
        final IdeRig rig;
        final GuardedDisk disk;
        final HostileDevice hostile = new HostileDevice();
        final byte[] shadow = new byte[RAM];
        final byte[] actual = new byte[RAM];
        final List<long[]> ramAllowed = new ArrayList<>();
        final Deque<String> recent = new ArrayDeque<>();
        long ops;

        Fuzzer(long seed) {
            this.seed = seed;
            this.random = new Random(seed);
            GuestMemory memory = GuestMemory.builder()
                    .ram("ram", 0, RAM)
                    .mmio("regs", MMIO_BASE, MMIO_SIZE, new RecordingMmio(MMIO_SIZE))
                    .mmio("hostile", HOSTILE_BASE, HOSTILE_SIZE, hostile)
                    .build();
            GuardedDisk[] holder = new GuardedDisk[1];
            rig = IdeRig.builder().memory(memory).sectors(SECTORS).decorate(b -> holder[0] = new GuardedDisk(b)).build();
            disk = holder[0];
            hostile.rig = rig;
            random.nextBytes(shadow);
            memory.write(0, shadow, 0, RAM);
        }

        private String lastWhat;
        private int repeats;

        void log(String what) {
            if (what.equals(lastWhat)) {
                repeats++;
                recent.removeLast();
                recent.addLast(ops + ": " + what + " (x" + (repeats + 1) + ")");
                return;
            }
            lastWhat = what;
            repeats = 0;
            if (recent.size() == Integer.getInteger("guestdma.fuzz.log", 24)) {
                recent.removeFirst();
            }
            recent.addLast(ops + ": " + what);
        }

        String context() {
            return "seed " + seed + " (rerun with -Dguestdma.fuzz.seed=" + seed + "), operation " + ops
                    + "; last operations:\n  " + String.join("\n  ", recent);
        }

        // ---------------------------------------------------------------- guest-visible operations

        /** A register access that may start or advance DMA: checked before and after. */
        void access(String what, Runnable op) {
            noteTableInEffect();
            log(what);
            long start = System.nanoTime();
            try {
                op.run();
            } catch (RuntimeException | AssertionError e) {
                throw new AssertionError("exception escaped to the port-I/O caller: " + e + "\n" + context(), e);
            }
            long took = System.nanoTime() - start;
            assertThat(took).as("operation took %d ms: %s", took / 1_000_000, context()).isLessThan(SLOW_OP_NANOS);
            ops++;
            checkInvariants();
        }

        void outb(int reg, int value) {
            access(String.format("outb 0x%x 0x%02x", BASE + reg, value & 0xff), () -> rig.outb(reg, value));
        }

        void bm(int reg, int size, int value) {
            access(String.format("bm write %d/%d 0x%x", reg, size, value), () -> rig.ide.busMasterWrite(reg, size, value));
        }

        int read(String what, java.util.function.IntSupplier op) {
            int[] v = new int[1];
            access(what, () -> v[0] = op.getAsInt());
            return v[0];
        }

        /** The guest writes its own RAM (copy path): the shadow follows. */
        void guestWrite(long address, byte[] bytes) {
            log(String.format("guest writes %d bytes at 0x%x", bytes.length, address));
            rig.memory.write(address, bytes, 0, bytes.length);
            if (address < RAM) {
                int n = (int) Math.min(bytes.length, RAM - address);
                System.arraycopy(bytes, 0, shadow, (int) address, n);
            }
            ops++;
        }

        // ---------------------------------------------------------------- invariants

        /** Adds the ranges named by the PRD table the bus master points at: the device may write there. */
        void noteTableInEffect() {
            long table = rig.ide.busMasterRead(BM_PRDT, 4) & 0xffff_fffcL;
            byte[] entries = new byte[4096];
            hostile.observed = true;
            try {
                rig.memory.read(table, entries, 0, entries.length);
            } finally {
                hostile.observed = false;
            }
            ByteBuffer b = ByteBuffer.wrap(entries).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < 512; i++) {
                long address = b.getInt(8 * i) & 0xffff_ffffL; // QEMU keeps bit 0 of the address
                int flags = b.getInt(8 * i + 4);
                long length = (flags & 0xfffe) == 0 ? 0x10000 : flags & 0xfffe;
                if (address < RAM) {
                    ramAllowed.add(new long[] {address, Math.min(RAM, address + length)});
                }
                if (flags < 0) {
                    break; // EOT
                }
            }
        }

        void checkInvariants() {
            int bmStatus = rig.ide.busMasterRead(BM_STATUS, 1);
            boolean idle = (bmStatus & BM_ACTIVE) == 0 && !rig.ide.isPaused();
            if (idle) {
                assertThat(rig.memory.bouncePool().bytesInFlight()).as("bounce pool when idle; %s", context()).isZero();
                assertThat(rig.memory.liveMappings()).as("live mappings when idle; %s", context()).isZero();
            }
            if (!disk.violations.isEmpty()) {
                throw new AssertionError(disk.violations + "\n" + context());
            }
            rig.memory.read(0, actual, 0, RAM);
            boolean[] mayChange = null;
            for (int at = 0; at < RAM; ) {
                int mismatch = java.util.Arrays.mismatch(actual, at, RAM, shadow, at, RAM);
                if (mismatch < 0) {
                    break;
                }
                int address = at + mismatch;
                if (mayChange == null) {
                    mayChange = new boolean[RAM];
                    for (long[] r : ramAllowed) {
                        java.util.Arrays.fill(mayChange, (int) r[0], (int) r[1], true);
                    }
                }
                if (!mayChange[address]) {
                    int end = address;
                    while (end + 1 < RAM && !mayChange[end + 1] && actual[end + 1] != shadow[end + 1]) {
                        end++;
                    }
                    StringBuilder ranges = new StringBuilder();
                    for (long[] r : ramAllowed) {
                        ranges.append(String.format(" [0x%x,0x%x)", r[0], r[1]));
                    }
                    throw new AssertionError(String.format("guest RAM [0x%x, 0x%x] changed (first byte 0x%02x -> 0x%02x) outside"
                            + " every PRD range in effect:%s; %s", address, end, shadow[address], actual[address], ranges, context()));
                }
                at = address + 1;
            }
            System.arraycopy(actual, 0, shadow, 0, RAM);
            if (idle) {
                ramAllowed.clear();
            }
        }

        // ---------------------------------------------------------------- random material

        long randomAddress() {
            return switch (random.nextInt(9)) {
                case 0, 1, 2, 3 -> random.nextInt(RAM) & ~(random.nextBoolean() ? 0 : 511);
                case 4 -> MMIO_BASE + random.nextInt(MMIO_SIZE);
                case 8 -> HOSTILE_BASE + (random.nextInt(HOSTILE_SIZE) & ~(random.nextBoolean() ? 0 : 511));
                case 5 -> RAM - random.nextInt(4096);                   // runs off the end of RAM
                case 6 -> 0x100000L + random.nextInt(1 << 20);         // unassigned
                default -> random.nextLong() & 0xffff_ffffL;           // anywhere in 32 bits
            };
        }

        void writePrdTable(long table) {
            int entries = 1 + random.nextInt(random.nextInt(10) == 0 ? 40 : 6);
            ByteBuffer b = ByteBuffer.allocate(8 * entries).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            boolean eot = random.nextInt(8) != 0;
            for (int i = 0; i < entries; i++) {
                int count = switch (random.nextInt(6)) {
                    case 0 -> 0;                                       // 64 KiB
                    case 1 -> 1 + random.nextInt(0xffff);              // odd sizes
                    case 2 -> 512 * (1 + random.nextInt(8));
                    default -> 2 * (1 + random.nextInt(2048));
                };
                b.putInt((int) randomAddress());
                b.putInt(count | (eot && i == entries - 1 ? PRD_EOT : 0));
            }
            guestWrite(table, b.array());
        }

        long randomLba() {
            return switch (random.nextInt(6)) {
                case 0 -> SECTORS - random.nextInt(8);                  // at and just before the end
                case 1 -> SECTORS + random.nextInt(1000);               // past the end
                case 2 -> (1L << 48) - 1 - random.nextInt(300);         // LBA48 near 2^48
                case 3 -> (1L << 28) - 1 - random.nextInt(300);         // LBA28 limit
                default -> random.nextInt((int) SECTORS);
            };
        }

        /**
         * Starts a new set of allowed disk ranges if no transfer is in flight (a transfer held by the
         * engine or a PIO transfer waiting for data keeps the ranges of the command that started it).
         */
        void newCommand() {
            // A drive with BSY or DRQ set ignores new commands and keeps the old transfer (PIO data
            // may still arrive for it): its sectors stay allowed.
            boolean idle = (rig.ide.busMasterRead(BM_STATUS, 1) & BM_ACTIVE) == 0 && !rig.ide.isPaused()
                    && (rig.altStatus() & (BSY | DRQ)) == 0;
            if (idle) {
                synchronized (disk) {
                    disk.allowed.clear();
                }
            }
        }

        /** A well-formed DMA (or TRIM) command with random parameters; may be aborted mid-way. */
        void dmaCommand() {
            newCommand();
            int[] commands = {CMD_READ_DMA, CMD_WRITE_DMA, CMD_READ_DMA_EXT, CMD_WRITE_DMA_EXT, CMD_DSM};
            int cmd = commands[random.nextInt(commands.length)];
            boolean ext = cmd == CMD_READ_DMA_EXT || cmd == CMD_WRITE_DMA_EXT || cmd == CMD_DSM;
            long lba = randomLba();
            int count = random.nextInt(10) == 0 ? 0 : 1 + random.nextInt(random.nextBoolean() ? 8 : 300);
            long table = (random.nextInt(RAM - 4096) & ~7L) | (random.nextInt(16) == 0 ? random.nextInt(4) : 0);
            writePrdTable(table & ~3L);
            if (random.nextInt(24) == 0) {
                table = HOSTILE_BASE + (random.nextInt(HOSTILE_SIZE / 2) & ~7L); // the table itself in the device
            }
            Hostility[] modes = Hostility.values();
            hostile.mode = random.nextInt(3) == 0 ? modes[random.nextInt(modes.length)] : Hostility.NONE;
            if (random.nextInt(40) == 0) {
                disk.nextError = random.nextBoolean() ? new AssertionError("backend bug") : new StackOverflowError();
            }
            boolean write = cmd == CMD_WRITE_DMA || cmd == CMD_WRITE_DMA_EXT;
            if (write) {
                long sectors = count == 0 ? (ext ? 65536 : 256) : count;
                long first = ext ? lba : lba & 0x0fff_ffff;
                synchronized (disk) {
                    disk.allowed.add(new long[] {first * 512, (first + sectors) * 512});
                }
            }
            outb(REG_DEVICE, LBA | (ext ? 0 : (int) (lba >>> 24) & 0x0f));
            bm(BM_CMD, 1, 0);
            bm(BM_STATUS, 1, BM_INTR | BM_ERROR);
            bm(BM_PRDT, 4, (int) table);
            if (cmd == CMD_DSM) {
                outb(REG_FEATURE, random.nextInt(4) == 0 ? random.nextInt(256) : 1);
            }
            if (ext) {
                outb(REG_NSECTORS, count >>> 8);
                outb(REG_LBA_LOW, (int) (lba >>> 24));
                outb(REG_LBA_MID, (int) (lba >>> 32));
                outb(REG_LBA_HIGH, (int) (lba >>> 40));
            }
            outb(REG_NSECTORS, count);
            outb(REG_LBA_LOW, (int) lba);
            outb(REG_LBA_MID, (int) (lba >>> 8));
            outb(REG_LBA_HIGH, (int) (lba >>> 16));
            boolean startFirst = random.nextInt(6) == 0;
            int start = BM_START | (cmd == CMD_READ_DMA || cmd == CMD_READ_DMA_EXT ? BM_TO_MEMORY : 0)
                    ^ (random.nextInt(12) == 0 ? BM_TO_MEMORY : 0); // sometimes the wrong direction
            if (startFirst) {
                bm(BM_CMD, 1, start);
            }
            outb(REG_COMMAND, cmd);
            if (!startFirst) {
                bm(BM_CMD, 1, start);
            }
            switch (random.nextInt(10)) {
                case 0 -> bm(BM_CMD, 1, 0);                                              // abort
                case 1 -> access("bus master off/on", () -> {
                    rig.ide.setBusMasterEnabled(false);
                    rig.ide.setBusMasterEnabled(true);
                });
                case 2 -> srst();
                default -> { }
            }
            read("status", () -> rig.inb(REG_STATUS));
            bm(BM_CMD, 1, 0);
            hostile.mode = Hostility.NONE;
            disk.nextError = null;
        }

        void srst() {
            outbControl(0x04 | (random.nextBoolean() ? 0x02 : 0));
            outbControl(random.nextBoolean() ? 0x02 : 0);
        }

        void outbControl(int value) {
            access(String.format("outb 0x3f6 0x%02x", value), () -> rig.control(value));
        }

        /** A PIO command (possibly one the drive lacks) and some data-port traffic. */
        void pioCommand() {
            newCommand();
            int[] commands = {CMD_READ_PIO, CMD_WRITE_PIO, CMD_READ_PIO_EXT, CMD_WRITE_PIO_EXT, CMD_READ_MULTIPLE,
                    CMD_WRITE_MULTIPLE, CMD_IDENTIFY, CMD_FLUSH_CACHE, CMD_SET_FEATURES, CMD_DIAGNOSE, 0xa0, 0xa1,
                    0xb0, 0xc6, 0xf8, 0x27, 0x00, 0x08, 0x70, 0x91};
            int cmd = commands[random.nextInt(commands.length)];
            long lba = randomLba();
            int count = random.nextInt(8) == 0 ? 0 : 1 + random.nextInt(4);
            if (cmd == CMD_WRITE_PIO || cmd == CMD_WRITE_PIO_EXT || cmd == CMD_WRITE_MULTIPLE) {
                boolean ext = cmd == CMD_WRITE_PIO_EXT;
                long sectors = count == 0 ? (ext ? 65536 : 256) : count;
                long first = ext ? lba : lba & 0x0fff_ffff;
                synchronized (disk) {
                    disk.allowed.add(new long[] {first * 512, (first + sectors) * 512});
                }
            }
            outb(REG_DEVICE, LBA | (int) (lba >>> 24) & 0x0f);
            if (cmd == CMD_READ_PIO_EXT || cmd == CMD_WRITE_PIO_EXT) {
                outb(REG_NSECTORS, 0);
                outb(REG_LBA_LOW, (int) (lba >>> 24));
                outb(REG_LBA_MID, (int) (lba >>> 32));
                outb(REG_LBA_HIGH, (int) (lba >>> 40));
            }
            outb(REG_FEATURE, random.nextInt(256));
            outb(REG_NSECTORS, count);
            outb(REG_LBA_LOW, (int) lba);
            outb(REG_LBA_MID, (int) (lba >>> 8));
            outb(REG_LBA_HIGH, (int) (lba >>> 16));
            outb(REG_COMMAND, cmd);
            int words = random.nextInt(600);
            boolean wide = random.nextBoolean();
            boolean writing = random.nextBoolean();
            for (int i = 0; i < words; i++) {
                int v = random.nextInt();
                if (writing) {
                    access("data out", () -> rig.ide.ioWrite(BASE, wide ? 4 : 2, v));
                } else {
                    read("data in", () -> rig.ide.ioRead(BASE, wide ? 4 : 2));
                }
            }
        }

        /** Anything at all on a random port of the controller. */
        void randomAccess() {
            int[] ports = {0x1f0, 0x1f1, 0x1f2, 0x1f3, 0x1f4, 0x1f5, 0x1f6, 0x1f7, 0x3f6, 0x170, 0x177, 0x376};
            int port = ports[random.nextInt(ports.length)];
            int size = 1 << random.nextInt(3);
            int value = random.nextInt();
            if (random.nextBoolean()) {
                read(String.format("in%d 0x%x", size, port), () -> rig.ide.ioRead(port, size));
                return;
            }
            // Write commands only come from the well-formed paths, whose sectors the disk guard
            // knows; every other command byte (unknown commands included) goes in as is. A 16-bit
            // write at the device register carries its high byte into the command register.
            int commandByte = -1;
            if (size == 1 && (port & 0xf) == 7) {
                commandByte = 0;
            } else if (size == 2 && (port & 0xf) == 6) {
                commandByte = 1;
            } else if (size == 2 && (port & 0xf) == 7) {
                commandByte = 0;
            }
            int safe = value;
            if (commandByte >= 0 && (port == 0x1f6 || port == 0x1f7)) {
                int cmd = (value >>> (8 * commandByte)) & 0xff;
                boolean writes = cmd == 0x30 || cmd == 0x31 || cmd == 0x34 || cmd == 0x39 || cmd == 0x3b || cmd == 0x3c
                        || cmd == 0xc5 || cmd == 0xca || cmd == 0xcb || cmd == 0x35 || cmd == 0x3d || cmd == 0xce;
                if (writes) {
                    safe = (value & ~(0xff << (8 * commandByte))) | (0xe7 << (8 * commandByte)); // FLUSH CACHE instead
                }
            }
            int v = safe;
            access(String.format("out%d 0x%x 0x%x", size, port, v), () -> rig.ide.ioWrite(port, size, v));
        }

        void randomBusMaster() {
            int offset = random.nextInt(16);
            int size = 1 << random.nextInt(3);
            if (offset + size > 16) {
                offset = 16 - size;
            }
            int at = offset;
            if (random.nextBoolean()) {
                read(String.format("bm in%d %d", size, at), () -> rig.ide.busMasterRead(at, size));
            } else {
                int value = random.nextInt();
                bm(at, size, value);
            }
        }

        void step() {
            int pick = random.nextInt(100);
            if (pick < 25) {
                dmaCommand();
            } else if (pick < 40) {
                pioCommand();
            } else if (pick < 70) {
                randomAccess();
            } else if (pick < 85) {
                randomBusMaster();
            } else if (pick < 89) {
                srst();
            } else if (pick < 90) {
                access("controller reset", rig.ide::reset);
            } else if (pick < 95) {
                boolean on = random.nextInt(4) != 0;
                access("bus master " + (on ? "on" : "off"), () -> rig.ide.setBusMasterEnabled(on));
            } else {
                byte[] bytes = new byte[1 + random.nextInt(2048)];
                random.nextBytes(bytes);
                guestWrite(random.nextInt(RAM - bytes.length), bytes);
            }
        }
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void hostileRegisterSequencesBreakNothing(long seed) {
        Fuzzer f = new Fuzzer(seed);
        try (IdeRig rig = f.rig) {
            while (f.ops < OPS_PER_SEED) {
                f.step();
            }
            // Wind down as a guest reboot would: stop the engine, reset the drive.
            f.bm(BM_CMD, 1, 0);
            f.srst();
            assertThat(rig.memory.bouncePool().bytesInFlight()).as(f.context()).isZero();
            assertThat(rig.memory.liveMappings()).as(f.context()).isZero();
            assertThat(f.disk.writes).as("the fuzzer reached the disk").isPositive();
            assertThat(f.hostile.misbehaved).as("the hostile device was reached").isPositive();
            assertThat(rig.ide.reentrancyGuard().refusals()).as("re-entrant accesses were tried and refused")
                    .isPositive();
            System.out.printf("IDE fuzz seed %d: %d operations, %d disk writes, %d device faults, %d refused"
                            + " re-entrant accesses, %d backend Errors; all invariants held%n",
                    seed, f.ops, f.disk.writes, f.hostile.misbehaved, rig.ide.reentrancyGuard().refusals(),
                    f.disk.errorsThrown);
        }
    }
}
