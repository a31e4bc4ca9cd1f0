package io.guestdma.migration;

/**
 * The state of a migration, with the names QEMU's {@code MigrationStatus} gives them in
 * {@code query-migrate} and the {@code MIGRATION} event.
 */
public enum MigrationStatus {
    /** No migration has run. */
    NONE("none"),
    /** Connecting and sending the stream's header. */
    SETUP("setup"),
    /** Pre-copy passes over RAM (and, at the end, the stopped machine's last pages and devices). */
    ACTIVE("active"),
    /** {@code migrate_cancel} was asked; the source is winding the migration down. */
    CANCELLING("cancelling"),
    /** Cancelled; the source kept (or got back) its running machine. */
    CANCELLED("cancelled"),
    /** The destination has every page and device: the source stays stopped. */
    COMPLETED("completed"),
    /** The migration failed; the source kept (or got back) its running machine. */
    FAILED("failed");

    private final String qapiName;

    MigrationStatus(String qapiName) {
        this.qapiName = qapiName;
    }

    /** {@return the name QEMU uses on the wire, for example {@code "active"}} */
    public String qapiName() {
        return qapiName;
    }

    /** {@return whether the migration is over (completed, failed or cancelled)} */
    public boolean isFinal() {
        return this == COMPLETED || this == FAILED || this == CANCELLED;
    }
}
