package io.guestdma.bench;

/**
 * The size of one benchmarked transfer and how many scatter-gather pieces it is cut into, as the
 * guest's PRD table cuts it: 4 KiB in 1 piece, 64 KiB in 16, 1 MiB in 64 (the shapes of the C
 * reference figures in the benchmark issue).
 *
 * @param label  the JMH parameter value, {@code 4k}, {@code 64k} or {@code 1m}
 * @param bytes  the transfer size
 * @param pieces how many equal, non-adjacent pieces of guest RAM it is spread over
 */
public record TransferShape(String label, int bytes, int pieces) {

    /**
     * Checks the shape.
     *
     * @throws IllegalArgumentException if bytes is not a positive multiple of 512 or does not
     *                                  divide into {@code pieces} whole sectors
     */
    public TransferShape {
        if (bytes <= 0 || bytes % 512 != 0 || pieces <= 0 || bytes % pieces != 0 || (bytes / pieces) % 512 != 0) {
            throw new IllegalArgumentException("bad transfer shape " + label + ": " + bytes + " bytes in " + pieces + " pieces");
        }
    }

    /** @return the size of each piece in bytes */
    public int pieceBytes() {
        return bytes / pieces;
    }

    /** @return the transfer size in 512-byte sectors */
    public int sectors() {
        return bytes / 512;
    }

    /**
     * Parses a JMH parameter value.
     *
     * @param label {@code 4k}, {@code 64k} or {@code 1m}
     * @return the shape
     * @throws IllegalArgumentException for any other label
     */
    public static TransferShape of(String label) {
        return switch (label) {
            case "4k" -> new TransferShape(label, 4096, 1);
            case "64k" -> new TransferShape(label, 65536, 16);
            case "1m" -> new TransferShape(label, 1 << 20, 64);
            default -> throw new IllegalArgumentException("unknown transfer size '" + label + "' (use 4k, 64k or 1m)");
        };
    }
}
