package io.guestdma.migration;

/**
 * A device whose guest-visible state can be saved on a migration source and loaded on the
 * destination, as one section of the migration stream.
 *
 * <p>The machine calls {@link #save} only while the device is stopped and its DMA drained (no
 * mapping live), so the state is a consistent snapshot; work the device had accepted but not
 * completed is saved as such, and {@link #load} arranges for it to be resubmitted or completed
 * when the destination runs, as QEMU's device restart handlers do. {@link #load} is called on a
 * freshly wired, not yet running device with the same configuration (backends attached).
 */
public interface DeviceState {

    /**
     * The section's identifier, stable across processes for the same machine configuration and
     * unique within a machine, for example {@code "piix-ide"} or {@code "virtio-blk@00:04.0"}.
     *
     * @return the identifier, at most 255 bytes of UTF-8
     */
    String sectionId();

    /**
     * The version of the layout {@link #save} writes. Raise it whenever the layout changes.
     *
     * @return a version number, at least 1
     */
    int version();

    /**
     * Writes the device's state.
     *
     * @param out where the fields go
     * @throws IllegalStateException if the device is not stopped and drained
     */
    void save(StateWriter out);

    /**
     * Replaces the device's state with a saved one. The reader is untrusted: every value the guest
     * or the stream could have made inconsistent is checked, and on failure the device is left in
     * its reset state.
     *
     * @param in the section's fields; the caller checks that they were all consumed
     * @param version the version the source wrote
     * @throws MigrationFormatException if the version is unknown, the section is truncated or a
     *     value is out of the range the device can hold
     */
    void load(StateReader in, int version) throws MigrationFormatException;
}
