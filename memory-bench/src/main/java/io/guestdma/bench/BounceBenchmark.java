package io.guestdma.bench;

import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MapResult;
import io.guestdma.memory.MmioHandler;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The bounce path: DMA to and from an MMIO region (a device's register file, 8-byte accesses),
 * which goes through the bounded bounce pool. TO_DEVICE fills the bounce buffer from the device on
 * map; FROM_DEVICE writes it back on unmap.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class BounceBenchmark extends SuiteSettings {
    private static final long MMIO_BASE = 0xfeb0_0000L;
    private static final int MMIO_BYTES = 0x1000;

    /** Bytes mapped: 512 (a sector) or 4096 (the whole default pool). */
    @Param({"512", "4096"})
    public int bytes;

    private GuestMemory memory;

    /** A register file: reads return what was written, 8 bytes at a time at most. */
    private static final class RegisterFile implements MmioHandler {
        private final long[] words = new long[MMIO_BYTES / 8];

        @Override
        public long read(long offset, int size) {
            long word = words[(int) (offset >>> 3)];
            return size == 8 ? word : (word >>> (8 * (offset & 7))) & ((1L << (8 * size)) - 1);
        }

        @Override
        public void write(long offset, int size, long value) {
            int i = (int) (offset >>> 3);
            if (size == 8) {
                words[i] = value;
                return;
            }
            int shift = (int) (8 * (offset & 7));
            long mask = ((1L << (8 * size)) - 1) << shift;
            words[i] = (words[i] & ~mask) | ((value << shift) & mask);
        }
    }

    /** Builds 1 MiB of RAM and the MMIO register file. */
    @Setup(Level.Trial)
    public void setUp() {
        memory = GuestMemory.builder()
                .ram("ram", 0, 1 << 20)
                .mmio("regs", MMIO_BASE, MMIO_BYTES, new RegisterFile())
                .build();
    }

    /** Closes guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        memory.close();
    }

    /** @return the mapped length: device reads the register file through a bounce buffer */
    @Benchmark
    public long mapUnmapMmioToDevice() {
        return mapAndUnmap(DmaDirection.TO_DEVICE);
    }

    /** @return the mapped length: device writes the register file through a bounce buffer */
    @Benchmark
    public long mapUnmapMmioFromDevice() {
        return mapAndUnmap(DmaDirection.FROM_DEVICE);
    }

    private long mapAndUnmap(DmaDirection direction) {
        MapResult result = memory.map(MMIO_BASE, bytes, direction);
        if (!(result instanceof DmaMapping m)) {
            throw new IllegalStateException("bounce pool unexpectedly exhausted: " + result);
        }
        long length = m.length();
        memory.unmap(m, length);
        return length;
    }
}
