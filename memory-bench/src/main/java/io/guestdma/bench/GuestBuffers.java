package io.guestdma.bench;

import java.util.Random;

/**
 * Where a benchmark's transfer lives in guest RAM: {@link TransferShape#pieces()} piece-sized
 * slots picked at random (with a fixed seed, so every run and every data path uses the same
 * addresses) from a window of guest RAM, never two adjacent, so the map path really sees a
 * scatter-gather list and not one contiguous run.
 */
public final class GuestBuffers {
    private final long[] addresses;
    private final int pieceBytes;

    /**
     * Picks the slots.
     *
     * @param shape       the transfer
     * @param windowStart first guest address the slots may use
     * @param windowBytes size of the window; must hold at least {@code 2 * pieces} slots
     * @throws IllegalArgumentException if the window is too small
     */
    public GuestBuffers(TransferShape shape, long windowStart, long windowBytes) {
        this.pieceBytes = shape.pieceBytes();
        int slots = (int) (windowBytes / pieceBytes);
        if (slots < 2 * shape.pieces()) {
            throw new IllegalArgumentException("window of " + windowBytes + " bytes is too small for " + shape);
        }
        // Even slots only: no two pieces touch, whatever order the shuffle gives.
        int[] even = new int[slots / 2];
        for (int i = 0; i < even.length; i++) {
            even[i] = 2 * i;
        }
        Random random = new Random(0x6d61702dL);
        for (int i = even.length - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = even[i];
            even[i] = even[j];
            even[j] = t;
        }
        addresses = new long[shape.pieces()];
        for (int i = 0; i < addresses.length; i++) {
            addresses[i] = windowStart + (long) even[i] * pieceBytes;
        }
    }

    /** @return how many pieces */
    public int count() {
        return addresses.length;
    }

    /**
     * @param i which piece, from 0
     * @return its guest physical address
     */
    public long address(int i) {
        return addresses[i];
    }

    /** @return the size of every piece */
    public int pieceBytes() {
        return pieceBytes;
    }
}
