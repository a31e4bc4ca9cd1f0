package io.guestdma.bench;

/**
 * Which data path a benchmark measures. The device, its registers and the PRD walk are the same for
 * all three; only the way bytes move between guest RAM and the image differs.
 */
public enum DataPath {
    /**
     * The pre-2009 path that Java emulators use today: guest RAM is copied into a heap
     * {@code byte[]} and the heap buffer is written with a plain {@code FileChannel} call (which the
     * JDK copies once more into a temporary direct buffer), or the reverse.
     */
    COPY,
    /** Zero copy: mapped guest RAM handed to {@code FileChannel}'s gathering/scattering calls. */
    MAP_FILECHANNEL,
    /** Zero copy: mapped guest RAM handed to {@code pwritev}/{@code preadv} through FFM. */
    MAP_NATIVE
}
