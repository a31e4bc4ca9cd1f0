package io.guestdma.memory;

import java.util.ArrayList;
import java.util.List;

/** An MMIO handler with byte-addressed registers that records every access it receives. */
final class RecordingDevice implements MmioHandler {
    record Access(boolean write, long offset, int size, long value) {
    }

    final byte[] registers;
    final List<Access> log = new ArrayList<>();
    private final int min;
    private final int max;

    RecordingDevice(int size, int min, int max) {
        this.registers = new byte[size];
        this.min = min;
        this.max = max;
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (offset % size != 0 || size < min || size > max) {
            throw new AssertionError("bad access offset " + offset + " size " + size);
        }
        long v = 0;
        for (int i = 0; i < size; i++) {
            v |= (registers[(int) offset + i] & 0xffL) << (8 * i);
        }
        log.add(new Access(false, offset, size, v));
        return v;
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        if (offset % size != 0 || size < min || size > max) {
            throw new AssertionError("bad access offset " + offset + " size " + size);
        }
        for (int i = 0; i < size; i++) {
            registers[(int) offset + i] = (byte) (value >>> (8 * i));
        }
        log.add(new Access(true, offset, size, value));
    }

    @Override
    public int minAccessSize() {
        return min;
    }

    @Override
    public int maxAccessSize() {
        return max;
    }

    synchronized List<Access> drain() {
        List<Access> copy = new ArrayList<>(log);
        log.clear();
        return copy;
    }
}
