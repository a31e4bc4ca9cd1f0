/**
 * Live migration: device state sections and the migration stream.
 *
 * <p>A device that can move to another process implements {@link io.guestdma.migration.DeviceState}:
 * it saves its registers and in-flight work into a {@link io.guestdma.migration.StateWriter} while
 * stopped, and the destination loads them from a {@link io.guestdma.migration.StateReader}. The
 * reader checks every field against the bytes left, so a truncated or corrupt section fails with
 * {@link io.guestdma.migration.MigrationFormatException} naming the section and the field.
 *
 * <p>{@link io.guestdma.migration.MigrationSource} sends a machine: RAM pre-copy driven by the
 * dirty log (pass 1 every page, then the dirty pages until the rest fits the downtime limit), the
 * switchover (stop and drain through {@link io.guestdma.migration.Switchover}, last pages, device
 * sections), zero pages as a flag, page bytes from guest RAM to the socket or file by
 * {@code writev} with no copy. {@link io.guestdma.migration.IncomingMigration} receives one and
 * trusts nothing in it. The stream's layout is described in the module's {@code FORMAT.md}.
 */
package io.guestdma.migration;
