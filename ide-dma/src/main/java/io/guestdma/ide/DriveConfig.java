package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import io.guestdma.block.BlockBackend;
import java.util.Objects;

/**
 * One drive attached to a channel: an ATA hard disk or an ATAPI CD-ROM.
 *
 * @param backend the disk contents; its size gives the capacity reported by IDENTIFY DEVICE (or
 *     READ CAPACITY for a CD-ROM). Null only for a CD-ROM drive without a medium.
 * @param readPolicy what a failed backend read does (rerror)
 * @param writePolicy what a failed backend write, flush or discard does (werror)
 * @param model the IDENTIFY model string, at most 40 ASCII characters
 * @param serial the IDENTIFY serial number, at most 20 ASCII characters, or null for QEMU's
 *     positional default ("QM00001" for the primary master, "QM00002" for the primary slave,
 *     "QM00003" and "QM00004" on the secondary channel)
 * @param firmware the IDENTIFY firmware revision, at most 8 ASCII characters
 * @param media what kind of drive this is
 */
public record DriveConfig(BlockBackend backend, ErrorPolicy readPolicy, ErrorPolicy writePolicy,
                          String model, String serial, String firmware, Media media) {

    /** The kind of drive (QEMU's {@code media=} option, or {@code ide-hd} versus {@code ide-cd}). */
    public enum Media {
        /** An ATA hard disk. */
        DISK,
        /** An ATAPI CD-ROM drive with 2048-byte sectors and a removable medium. */
        CDROM
    }

    /**
     * Validates the configuration.
     *
     * @throws NullPointerException if a component other than {@code serial} is null (the backend
     *     may be null for a CD-ROM: an empty drive)
     * @throws IllegalArgumentException if a string is too long or contains non-printable-ASCII
     *     characters
     */
    public DriveConfig {
        Objects.requireNonNull(media, "media");
        if (media == Media.DISK) {
            Objects.requireNonNull(backend, "backend");
        }
        Objects.requireNonNull(readPolicy, "readPolicy");
        Objects.requireNonNull(writePolicy, "writePolicy");
        checkAscii("model", model, 40);
        if (serial != null) {
            checkAscii("serial", serial, 20);
        }
        checkAscii("firmware", firmware, 8);
    }

    /**
     * A hard disk with the given components.
     *
     * @param backend the disk contents
     * @param readPolicy the read error policy
     * @param writePolicy the write error policy
     * @param model the IDENTIFY model string
     * @param serial the serial number, or null for the positional default
     * @param firmware the firmware revision
     * @throws NullPointerException if a component other than {@code serial} is null
     * @throws IllegalArgumentException if a string is too long or not printable ASCII
     */
    public DriveConfig(BlockBackend backend, ErrorPolicy readPolicy, ErrorPolicy writePolicy,
                       String model, String serial, String firmware) {
        this(backend, readPolicy, writePolicy, model, serial, firmware, Media.DISK);
    }

    /**
     * A drive with QEMU's defaults: rerror=report, werror=enospc (stop on a full host disk, report
     * anything else), model "QEMU HARDDISK", the
     * positional serial and firmware "2.5+" (QEMU's hardware version for pc machines).
     *
     * @param backend the disk contents
     * @return the configuration
     * @throws NullPointerException if {@code backend} is null
     */
    public static DriveConfig of(BlockBackend backend) {
        return new DriveConfig(backend, ErrorPolicy.REPORT, ErrorPolicy.ENOSPC,
                "QEMU HARDDISK", null, "2.5+");
    }

    /**
     * A CD-ROM drive with QEMU's defaults: model "QEMU DVD-ROM", the positional serial, firmware
     * "2.5+", errors reported to the guest as ATAPI sense data.
     *
     * @param medium the disc image (read-only or not: the drive never writes), or null for an
     *     empty drive
     * @return the configuration
     */
    public static DriveConfig cdrom(BlockBackend medium) {
        return new DriveConfig(medium, ErrorPolicy.REPORT, ErrorPolicy.REPORT,
                "QEMU DVD-ROM", null, "2.5+", Media.CDROM);
    }

    /**
     * Returns a copy with other error policies.
     *
     * @param read the read error policy
     * @param write the write error policy
     * @return the new configuration
     * @throws NullPointerException if a policy is null
     */
    public DriveConfig withPolicies(ErrorPolicy read, ErrorPolicy write) {
        return new DriveConfig(backend, read, write, model, serial, firmware, media);
    }

    /**
     * Returns a copy with another model and firmware revision (QEMU's {@code -global
     * ide-hd.model=...,ver=...}).
     *
     * @param newModel the model, at most 40 ASCII characters
     * @param newFirmware the firmware revision, at most 8 ASCII characters
     * @return the new configuration
     * @throws NullPointerException if an argument is null
     * @throws IllegalArgumentException if a string is too long or not printable ASCII
     */
    public DriveConfig withModel(String newModel, String newFirmware) {
        return new DriveConfig(backend, readPolicy, writePolicy, newModel, serial, newFirmware, media);
    }

    /**
     * Returns a copy with another serial number.
     *
     * @param newSerial the serial number, at most 20 ASCII characters, or null for the
     *     positional default
     * @return the new configuration
     * @throws IllegalArgumentException if the serial is too long or not printable ASCII
     */
    public DriveConfig withSerial(String newSerial) {
        return new DriveConfig(backend, readPolicy, writePolicy, model, newSerial, firmware, media);
    }

    private static void checkAscii(String what, String value, int max) {
        Objects.requireNonNull(value, what);
        if (value.length() > max) {
            throw new IllegalArgumentException(
                    what + " \"" + value + "\" is longer than " + max + " characters");
        }
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c < 0x20 || c > 0x7e) {
                throw new IllegalArgumentException(
                        what + " \"" + value + "\" has a non-printable-ASCII character at " + i);
            }
        }
    }
}
