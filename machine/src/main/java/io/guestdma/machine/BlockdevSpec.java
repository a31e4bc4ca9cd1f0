package io.guestdma.machine;

import java.nio.file.Path;
import java.util.Objects;

/**
 * One {@code -blockdev} node: {@code driver=file,node-name=N,filename=PATH} (a raw image file) or
 * {@code driver=raw,node-name=N,file=M} (the raw format over the file node M, which reads and
 * writes the same bytes).
 *
 * @param nodeName the node's name, which {@code -device ...,drive=} refers to
 * @param filename the image file of a {@code file} node; null for a {@code raw} node
 * @param file the file node under a {@code raw} node; null for a {@code file} node
 * @param readOnly {@code read-only=on}
 */
public record BlockdevSpec(String nodeName, Path filename, String file, boolean readOnly) {

    /**
     * Validates the node.
     *
     * @throws NullPointerException if nodeName is null
     * @throws IllegalArgumentException unless exactly one of filename and file is given
     */
    public BlockdevSpec {
        Objects.requireNonNull(nodeName, "nodeName");
        if ((filename == null) == (file == null)) {
            throw new IllegalArgumentException("a -blockdev node has either a filename (driver=file) or a file "
                    + "node (driver=raw)");
        }
    }
}
