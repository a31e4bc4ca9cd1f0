package io.guestdma.machine;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The x86 I/O port space (ports 0 to 0xffff) with QEMU's dispatch rules.
 *
 * <p>Devices {@link #map} windows of ports. An access (1, 2 or 4 bytes) is cut into pieces: each
 * piece goes whole to the window holding its first port, as large as the rest of the access
 * allows, split at natural alignment unless that window {@linkplain
 * PortHandler#acceptsUnaligned() accepts unaligned accesses}. Ports no window holds read as all
 * ones and ignore writes; the bytes of a wide access that fall past port 0xffff read as zero.
 * Where windows overlap, the one mapped last wins (a PCI BAR placed over legacy ports hides
 * them, as QEMU gives BARs the higher priority); unmapping it uncovers the ports again.
 *
 * <p>Thread-safe: accesses look ports up in an immutable table that {@link #map} and
 * {@link Mapping#unmap} replace.
 */
public final class PortBus {
    /** Number of ports. */
    public static final int PORTS = 0x10000;

    private final List<Mapping> mappings = new ArrayList<>();
    private volatile Mapping[] table = new Mapping[PORTS];

    /** Creates an empty port space: every port reads all ones until something is mapped. */
    public PortBus() {
    }

    /** One window of ports on the bus; see {@link PortBus#map}. */
    public final class Mapping {
        private final int first;
        private final int length;
        private final PortHandler handler;

        private Mapping(int first, int length, PortHandler handler) {
            this.first = first;
            this.length = length;
            this.handler = handler;
        }

        /** {@return the window's first port} */
        public int first() {
            return first;
        }

        /** {@return the number of ports in the window} */
        public int length() {
            return length;
        }

        /** Removes the window, uncovering whatever it hid. Does nothing if already unmapped. */
        public void unmap() {
            synchronized (PortBus.this) {
                if (mappings.remove(this)) {
                    rebuild();
                }
            }
        }
    }

    /**
     * Maps a window of ports to a handler, above every window mapped before.
     *
     * @param first the first port, 0 to 0xffff
     * @param length the number of ports, at least 1, with {@code first + length <= 0x10000}
     * @param handler the device
     * @return the mapping, to unmap it later
     * @throws IllegalArgumentException if the window does not fit in the port space
     * @throws NullPointerException if handler is null
     */
    public synchronized Mapping map(int first, int length, PortHandler handler) {
        Objects.requireNonNull(handler, "handler");
        if (first < 0 || length < 1 || first + length > PORTS) {
            throw new IllegalArgumentException(String.format(
                    "port window 0x%x+%d does not fit in the I/O space (0-0xffff)", first, length));
        }
        Mapping m = new Mapping(first, length, handler);
        mappings.add(m);
        rebuild();
        return m;
    }

    /**
     * Reads ports, as an {@code in} instruction does.
     *
     * @param port the first port, 0 to 0xffff
     * @param size 1, 2 or 4
     * @return the value, zero-extended
     * @throws IllegalArgumentException if the port or size is out of range
     */
    public int read(int port, int size) {
        check(port, size);
        Mapping[] t = table;
        int result = 0;
        for (int done = 0; done < size; ) {
            int p = port + done;
            Mapping m = p < PORTS ? t[p] : null;
            int piece = pieceSize(m, p, size - done);
            int value;
            if (m != null) {
                value = m.handler.read(p - m.first, piece);
            } else {
                value = p < PORTS ? -1 : 0;
            }
            result |= (int) (value & mask(piece)) << (8 * done);
            done += piece;
        }
        return result;
    }

    /**
     * Writes ports, as an {@code out} instruction does.
     *
     * @param port the first port, 0 to 0xffff
     * @param size 1, 2 or 4
     * @param value the value; only the low {@code size} bytes count
     * @throws IllegalArgumentException if the port or size is out of range
     */
    public void write(int port, int size, int value) {
        check(port, size);
        Mapping[] t = table;
        for (int done = 0; done < size; ) {
            int p = port + done;
            Mapping m = p < PORTS ? t[p] : null;
            int piece = pieceSize(m, p, size - done);
            if (m != null) {
                m.handler.write(p - m.first, piece, (int) ((value >>> (8 * done)) & mask(piece)));
            }
            done += piece;
        }
    }

    /** QEMU's memory_access_size: at most 4 bytes, aligned unless the device takes any alignment. */
    private static int pieceSize(Mapping m, int port, int remaining) {
        int size = remaining;
        if (m == null || !m.handler.acceptsUnaligned()) {
            int offset = m == null ? port : port - m.first;
            if (offset != 0) {
                size = Math.min(size, offset & -offset);
            }
        }
        return Integer.highestOneBit(size);
    }

    private static long mask(int size) {
        return (1L << (8 * size)) - 1;
    }

    private static void check(int port, int size) {
        if (port < 0 || port >= PORTS) {
            throw new IllegalArgumentException(String.format("port 0x%x is outside 0-0xffff", port));
        }
        if (size != 1 && size != 2 && size != 4) {
            throw new IllegalArgumentException("port access size must be 1, 2 or 4, was " + size);
        }
    }

    private void rebuild() {
        Mapping[] t = new Mapping[PORTS];
        for (Mapping m : mappings) {
            for (int p = m.first; p < m.first + m.length; p++) {
                t[p] = m;
            }
        }
        table = t;
    }
}
