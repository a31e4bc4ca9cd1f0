package io.guestdma.machine;

import io.guestdma.block.ImageLocation;
import io.guestdma.block.LocalImage;
import io.guestdma.block.NbdAddress;
import io.guestdma.ide.DmaMode;
import io.guestdma.block.ErrorPolicy;
import java.nio.file.Path;
import java.util.Objects;

/**
 * One {@code -drive} of a {@link PcMachine}: a raw disk image, or a CD-ROM drive with a raw disc
 * image or none. With {@code if=ide} (the default) the machine connects it to the PIIX IDE
 * controller at its index; with {@code if=none} it waits for a {@code -device ...,drive=ID}.
 *
 * @param image the raw image: a local file, or an NBD export; null only for an empty CD-ROM drive
 * @param index 0 to 3: primary master, primary slave, secondary master, secondary slave (QEMU's
 *     {@code index=})
 * @param backend how the image is accessed: {@link BackendType#NBD} for an NBD export, one of
 *     the local backends for a file
 * @param dma how the bus-master engine moves data
 * @param discard whether TRIM reaches the image ({@code discard=unmap}); QEMU's default,
 *     {@code discard=ignore}, checks the ranges but leaves the data alone
 * @param readPolicy what a failed read does ({@code rerror=})
 * @param writePolicy what a failed write, flush or discard does ({@code werror=})
 * @param cdrom whether this is an ATAPI CD-ROM drive ({@code media=cdrom}); its image is opened
 *     read-only
 * @param id the drive's name ({@code id=}): what {@code -device ...,drive=}, the monitor's
 *     commands and BLOCK_IO_ERROR events call it; QEMU's default for {@code if=ide} is
 *     {@code ide<channel>-hd<unit>} or {@code ide<channel>-cd<unit>}
 * @param ifNone {@code if=none}: the drive is not connected to the IDE controller by itself
 * @param blkdebug QEMU's blkdebug layer over the image ({@code file=blkdebug:CONFIG:IMAGE}), or
 *     null for none
 */
public record DriveSpec(ImageLocation image, int index, BackendType backend, DmaMode dma, boolean discard,
                        ErrorPolicy readPolicy, ErrorPolicy writePolicy, boolean cdrom, String id,
                        boolean ifNone, Blkdebug blkdebug) {

    /**
     * {@code file=blkdebug:CONFIG:IMAGE} or {@code file=blkdebug::IMAGE}: the image behind an
     * {@code io.guestdma.block.BlkdebugBackend}.
     *
     * @param config the rules file, or null for none (breakpoints only)
     */
    public record Blkdebug(Path config) {
    }

    /**
     * Validates the specification.
     *
     * @throws NullPointerException if a component is null (the image may be null for a CD-ROM)
     * @throws IllegalArgumentException if index is outside 0..3, the id is empty, or the backend
     *     does not fit the image (NBD for a local file, a local backend for an NBD export)
     */
    public DriveSpec {
        Objects.requireNonNull(id, "id");
        if (id.isEmpty()) {
            throw new IllegalArgumentException("a drive id must not be empty");
        }
        if (!cdrom) {
            Objects.requireNonNull(image, "image");
        }
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(dma, "dma");
        Objects.requireNonNull(readPolicy, "readPolicy");
        Objects.requireNonNull(writePolicy, "writePolicy");
        if (index < 0 || index > 3) {
            throw new IllegalArgumentException("drive index must be 0..3, was " + index);
        }
        if (image != null && (image instanceof NbdAddress) != (backend == BackendType.NBD)) {
            throw new IllegalArgumentException(image instanceof NbdAddress
                    ? "the NBD export " + image + " is opened by the NBD client, not backend " + backend
                    : "backend NBD needs an nbd:// location, not the file " + image);
        }
    }

    /**
     * An {@code if=ide} drive named as QEMU names it ({@link #defaultId}).
     *
     * @param image the raw image, or null for an empty CD-ROM drive
     * @param index 0 to 3
     * @param backend how the image is accessed
     * @param dma how the bus-master engine moves data
     * @param discard whether TRIM reaches the image
     * @param readPolicy the read error policy
     * @param writePolicy the write error policy
     * @param cdrom whether this is an ATAPI CD-ROM drive
     * @throws NullPointerException if a component is null (the image may be null for a CD-ROM)
     * @throws IllegalArgumentException if index is outside 0..3, or the backend does not fit the image
     */
    public DriveSpec(ImageLocation image, int index, BackendType backend, DmaMode dma, boolean discard,
                     ErrorPolicy readPolicy, ErrorPolicy writePolicy, boolean cdrom) {
        this(image, index, backend, dma, discard, readPolicy, writePolicy, cdrom, defaultId(index, cdrom), false,
                null);
    }

    /**
     * {@return QEMU's name for an {@code if=ide} drive without {@code id=}: {@code ide0-hd0} for a
     * disk at index 0, {@code ide1-cd1} for a CD-ROM drive at index 3}
     *
     * @param index 0 to 3
     * @param cdrom whether it is a CD-ROM drive
     */
    public static String defaultId(int index, boolean cdrom) {
        return "ide" + index / 2 + (cdrom ? "-cd" : "-hd") + index % 2;
    }

    /**
     * A hard disk with the given components.
     *
     * @param image the raw image: a local file, or an NBD export
     * @param index 0 to 3
     * @param backend how the image is accessed
     * @param dma how the bus-master engine moves data
     * @param discard whether TRIM reaches the image
     * @param readPolicy the read error policy
     * @param writePolicy the write error policy
     * @throws NullPointerException if a component is null
     * @throws IllegalArgumentException if index is outside 0..3, or the backend does not fit the image
     */
    public DriveSpec(ImageLocation image, int index, BackendType backend, DmaMode dma, boolean discard,
                     ErrorPolicy readPolicy, ErrorPolicy writePolicy) {
        this(image, index, backend, dma, discard, readPolicy, writePolicy, false);
    }

    /**
     * A drive with QEMU's defaults and ours: the FileChannel backend, zero-copy DMA,
     * discard=ignore, report errors.
     *
     * @param file the raw image
     * @param index 0 to 3
     * @return the specification
     * @throws NullPointerException if file is null
     * @throws IllegalArgumentException if index is outside 0..3
     */
    public static DriveSpec of(Path file, int index) {
        return new DriveSpec(new LocalImage(file), index, BackendType.FILE_CHANNEL, DmaMode.MAP, false,
                ErrorPolicy.REPORT, ErrorPolicy.REPORT);
    }

    /** {@return the IDE channel: 0 primary, 1 secondary} */
    public int channel() {
        return index / 2;
    }

    /** {@return the unit on the channel: 0 master, 1 slave} */
    public int unit() {
        return index % 2;
    }
}
