package io.guestdma.conformance;

import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;

/**
 * What a scenario saw, in order: one line per observation. Two targets agree when their logs are
 * equal line for line.
 */
final class Observations {
    private static final int BLOCK = 512;
    private final List<String> lines = new ArrayList<>();

    /** Records a register value (printed in hex, unsigned). */
    void hex(String label, int value) {
        lines.add(label + " = 0x" + Integer.toHexString(value));
    }

    /** Records a 64-bit value (printed in hex). */
    void hex(String label, long value) {
        lines.add(label + " = 0x" + Long.toHexString(value));
    }

    /** Records a flag. */
    void flag(String label, boolean value) {
        lines.add(label + " = " + value);
    }

    /** Records anything by its string form. */
    void text(String label, Object value) {
        lines.add(label + " = " + value);
    }

    /**
     * Records bytes: in full when short, otherwise one CRC per 512-byte block so that a
     * difference points at its block.
     */
    void bytes(String label, byte[] data) {
        if (data.length <= 64) {
            lines.add(label + " = " + java.util.HexFormat.of().formatHex(data));
            return;
        }
        for (int off = 0; off < data.length; off += BLOCK) {
            CRC32 crc = new CRC32();
            int n = Math.min(BLOCK, data.length - off);
            crc.update(data, off, n);
            boolean zero = true;
            for (int i = off; i < off + n && zero; i++) {
                zero = data[i] == 0;
            }
            lines.add(label + "[" + off + "+" + n + "] crc=" + Long.toHexString(crc.getValue())
                    + (zero ? " (zeros)" : ""));
        }
    }

    List<String> lines() {
        return List.copyOf(lines);
    }

    int size() {
        return lines.size();
    }
}
