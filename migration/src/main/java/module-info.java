/**
 * Live migration for guestdma machines. Devices describe their guest-visible state as
 * {@code DeviceState} sections written with {@code StateWriter} and read back, untrusted, with
 * {@code StateReader}; a section that does not parse is a {@code MigrationFormatException}, never a
 * half-loaded device.
 */
module io.guestdma.migration {
    requires transitive io.guestdma.memory;
    exports io.guestdma.migration;
}
