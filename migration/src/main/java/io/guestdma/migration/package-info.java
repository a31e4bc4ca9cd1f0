/**
 * Device state sections and the migration stream.
 *
 * <p>A device that can move to another process implements {@link io.guestdma.migration.DeviceState}:
 * it saves its registers and in-flight work into a {@link io.guestdma.migration.StateWriter} while
 * stopped, and the destination loads them from a {@link io.guestdma.migration.StateReader}. The
 * reader checks every field against the bytes left, so a truncated or corrupt section fails with
 * {@link io.guestdma.migration.MigrationFormatException} naming the section and the field.
 */
package io.guestdma.migration;
