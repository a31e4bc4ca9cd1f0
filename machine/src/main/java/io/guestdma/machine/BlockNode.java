package io.guestdma.machine;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.ErrorPolicy;
import java.util.Objects;

/**
 * A drive as the device using it sees it: a {@code -drive} (by its {@code id}) or a
 * {@code -blockdev} node (by its {@code node-name}), opened.
 *
 * @param name the drive's id or node name, as {@code drive=} names it
 * @param backend the open image, or null for an empty removable drive ({@code media=cdrom}
 *     without a file)
 * @param readPolicy what a failed read does ({@code rerror=}; REPORT for a {@code -blockdev})
 * @param writePolicy what a failed write or flush does ({@code werror=})
 * @param cdrom whether the drive was declared {@code media=cdrom}
 * @param blockdev whether it is a {@code -blockdev} node rather than a {@code -drive}
 */
public record BlockNode(String name, BlockBackend backend, ErrorPolicy readPolicy, ErrorPolicy writePolicy,
                        boolean cdrom, boolean blockdev) {

    /**
     * Validates the node.
     *
     * @throws NullPointerException if name or a policy is null, or the backend is null for a
     *     drive that is not a CD-ROM
     */
    public BlockNode {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(readPolicy, "readPolicy");
        Objects.requireNonNull(writePolicy, "writePolicy");
        if (!cdrom) {
            Objects.requireNonNull(backend, "backend");
        }
    }
}
