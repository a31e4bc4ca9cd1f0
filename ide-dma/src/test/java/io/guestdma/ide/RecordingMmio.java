package io.guestdma.ide;

import io.guestdma.memory.MmioHandler;

/** A plain register file in MMIO: remembers what was written, reads it back. */
final class RecordingMmio implements MmioHandler {
    private final byte[] bytes;

    RecordingMmio(int size) {
        bytes = new byte[size];
    }

    @Override
    public synchronized long read(long offset, int size) {
        long v = 0;
        for (int i = 0; i < size; i++) {
            v |= (bytes[(int) offset + i] & 0xffL) << (8 * i);
        }
        return v;
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        for (int i = 0; i < size; i++) {
            bytes[(int) offset + i] = (byte) (value >>> (8 * i));
        }
    }

    synchronized byte[] contents() {
        return bytes.clone();
    }
}
