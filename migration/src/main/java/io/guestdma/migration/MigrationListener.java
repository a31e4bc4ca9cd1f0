package io.guestdma.migration;

/**
 * Hears about a migration's progress, for QMP's {@code MIGRATION} and {@code MIGRATION_PASS}
 * events. Called on the migration's thread; a listener must not block it and must not throw.
 */
public interface MigrationListener {

    /** A listener that ignores everything. */
    MigrationListener NONE = new MigrationListener() {
    };

    /**
     * The status changed.
     *
     * @param status the new status
     */
    default void statusChanged(MigrationStatus status) {
    }

    /**
     * A pass over RAM starts ({@code MIGRATION_PASS}); pass 1 sends every page.
     *
     * @param pass the pass number, from 1
     */
    default void passStarted(long pass) {
    }
}
