package io.guestdma.migration;

/**
 * A snapshot of a migration's progress, with the figures QEMU's {@code query-migrate} reports.
 *
 * @param status             where the migration is
 * @param transferredBytes   stream bytes sent (or received) so far ({@code ram.transferred})
 * @param remainingBytes     RAM bytes still to send: dirty pages not sent yet ({@code ram.remaining})
 * @param totalBytes         the guest's RAM in bytes ({@code ram.total})
 * @param duplicatePages     pages sent as zero pages ({@code ram.duplicate})
 * @param normalPages        pages sent with their bytes ({@code ram.normal})
 * @param dirtyPagesRate     pages dirtied per second during the last pass ({@code ram.dirty-pages-rate})
 * @param dirtySyncCount     how many times the dirty log was read ({@code ram.dirty-sync-count})
 * @param expectedDowntimeMs the downtime the last pass predicts ({@code expected-downtime})
 * @param downtimeMs         how long the machine was stopped, once completed ({@code downtime}); -1 before
 * @param totalTimeMs        milliseconds since the migration started, or its whole length once over
 *                           ({@code total-time})
 * @param setupTimeMs        milliseconds spent connecting and sending the header ({@code setup-time})
 * @param error              why it failed, or null ({@code error-desc})
 */
public record MigrationStats(MigrationStatus status, long transferredBytes, long remainingBytes, long totalBytes,
                             long duplicatePages, long normalPages, long dirtyPagesRate, long dirtySyncCount,
                             long expectedDowntimeMs, long downtimeMs, long totalTimeMs, long setupTimeMs,
                             String error) {

    /** The figures before any migration. */
    public static final MigrationStats NONE =
            new MigrationStats(MigrationStatus.NONE, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0, 0, null);
}
