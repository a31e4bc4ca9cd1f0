package io.guestdma.migration;

/**
 * The limits a migration runs under; QEMU's {@code migrate-set-parameters} {@code max-bandwidth}
 * and {@code downtime-limit}, plus how many passes over dirty RAM the source tries before it
 * reports that the migration cannot converge. QEMU sets no such bound: a migration whose dirty
 * rate outruns the bandwidth iterates until it converges or is cancelled, and its user raises the
 * downtime limit or the bandwidth while it runs ({@link MigrationSource#setParameters}); that is
 * the default here too ({@link #UNLIMITED_PASSES}). A bound suits callers with no one watching.
 *
 * @param maxBandwidth   bytes per second the stream may use; 0 for no limit
 * @param downtimeLimitMs the longest the machine may stay stopped for the switchover, in
 *                        milliseconds, as estimated from the dirty pages left and the bandwidth
 *                        measured in the last pass
 * @param maxPasses       passes over dirty RAM after the first one before the source gives up with
 *                        "cannot converge" (the dirty rate stays above what the bandwidth can
 *                        carry within the downtime limit); {@link #UNLIMITED_PASSES} for none
 */
public record MigrationParameters(long maxBandwidth, long downtimeLimitMs, int maxPasses) {

    /** No bound on the passes: the migration iterates until it converges or is cancelled. */
    public static final int UNLIMITED_PASSES = Integer.MAX_VALUE;

    /** QEMU's defaults: 128 MiB/s, 300 ms, and no bound on the passes. */
    public static final MigrationParameters DEFAULTS = new MigrationParameters(128L << 20, 300, UNLIMITED_PASSES);

    /**
     * Checks the limits.
     *
     * @throws IllegalArgumentException if the bandwidth or the downtime limit is negative, the
     *     downtime limit is above 2 000 000 ms (QEMU's bound) or maxPasses is below 1
     */
    public MigrationParameters {
        if (maxBandwidth < 0) {
            throw new IllegalArgumentException("max-bandwidth must not be negative: " + maxBandwidth);
        }
        if (downtimeLimitMs < 0 || downtimeLimitMs > 2_000_000) {
            throw new IllegalArgumentException("downtime-limit must be 0..2000000 ms: " + downtimeLimitMs);
        }
        if (maxPasses < 1) {
            throw new IllegalArgumentException("maxPasses must be at least 1: " + maxPasses);
        }
    }

    /**
     * {@return a copy with another bandwidth limit}
     *
     * @param bytesPerSecond bytes per second, 0 for no limit
     * @throws IllegalArgumentException if negative
     */
    public MigrationParameters withMaxBandwidth(long bytesPerSecond) {
        return new MigrationParameters(bytesPerSecond, downtimeLimitMs, maxPasses);
    }

    /**
     * {@return a copy with another downtime limit}
     *
     * @param millis the limit in milliseconds
     * @throws IllegalArgumentException if out of range
     */
    public MigrationParameters withDowntimeLimitMs(long millis) {
        return new MigrationParameters(maxBandwidth, millis, maxPasses);
    }

    /**
     * {@return a copy with another pass limit}
     *
     * @param passes passes after the first
     * @throws IllegalArgumentException if below 1
     */
    public MigrationParameters withMaxPasses(int passes) {
        return new MigrationParameters(maxBandwidth, downtimeLimitMs, passes);
    }
}
