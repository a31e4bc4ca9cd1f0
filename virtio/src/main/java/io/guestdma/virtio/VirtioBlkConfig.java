package io.guestdma.virtio;

import io.guestdma.block.ErrorPolicy;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * How a {@link VirtioBlk} is set up; the defaults ({@link #defaults()}) are QEMU 7.2's
 * {@code virtio-blk-pci} defaults.
 *
 * @param queues      request queues, 1 to 64, each served by its own I/O thread (VIRTIO_BLK_F_MQ
 *                    when more than one)
 * @param queueSize   entries per queue, a power of two from 2 to 1024 (QEMU: 256)
 * @param serial      what VIRTIO_BLK_T_GET_ID returns, at most 20 bytes of ASCII ("" for none)
 * @param readOnly    whether the disk is read-only to the guest even if the image is writable
 *                    (VIRTIO_BLK_F_RO is offered when this or the image says so)
 * @param readPolicy  what a failed read does (QEMU's rerror)
 * @param writePolicy what a failed write, flush, discard or write-zeroes does (QEMU's werror)
 * @param discard     whether discards reach the image (QEMU's discard=unmap); otherwise they are
 *                    checked and acknowledged and the data stays
 * @param sizeMax     the largest buffer the driver may use, in bytes (VIRTIO_BLK_F_SIZE_MAX), or 0
 *                    for no limit (not offered, as in QEMU)
 * @param segMax      the most data buffers per request the driver may use (VIRTIO_BLK_F_SEG_MAX;
 *                    QEMU: queue size - 2)
 * @param ioThreads   true: each queue is served by an I/O thread of its own (a notify returns at
 *                    once); false: a notify processes the queue on the notifying thread before it
 *                    returns, as the qtest machine wants for observations that do not race
 * @param copyPath    true: data goes through a heap buffer ({@code CopyChunks}, the emulators'
 *                    pre-zero-copy way, kept for comparison); false: zero-copy mapping
 */
public record VirtioBlkConfig(int queues, int queueSize, String serial, boolean readOnly, ErrorPolicy readPolicy,
                              ErrorPolicy writePolicy, boolean discard, int sizeMax, int segMax,
                              boolean ioThreads, boolean copyPath) {
    /**
     * Validates the configuration.
     *
     * @throws IllegalArgumentException if a value is out of range
     * @throws NullPointerException     if serial or a policy is null
     */
    public VirtioBlkConfig {
        Objects.requireNonNull(serial, "serial");
        Objects.requireNonNull(readPolicy, "readPolicy");
        Objects.requireNonNull(writePolicy, "writePolicy");
        if (queues < 1 || queues > 64) {
            throw new IllegalArgumentException("num-queues must be 1..64, was " + queues);
        }
        if (queueSize < 2 || queueSize > Virtqueue.MAX_SIZE || Integer.bitCount(queueSize) != 1) {
            throw new IllegalArgumentException("queue-size must be a power of two from 2 to 1024, was " + queueSize);
        }
        if (serial.length() > 20 || !StandardCharsets.US_ASCII.newEncoder().canEncode(serial)) {
            throw new IllegalArgumentException("serial must be at most 20 ASCII characters: '" + serial + "'");
        }
        if (sizeMax < 0 || (sizeMax != 0 && sizeMax < 512)) {
            throw new IllegalArgumentException("size-max must be 0 or at least 512, was " + sizeMax);
        }
        if (segMax < 1) {
            throw new IllegalArgumentException("seg-max must be at least 1, was " + segMax);
        }
    }

    /**
     * {@return QEMU 7.2's defaults: one queue of 256, no serial, rerror=report and werror=enospc, discard=ignore; an
     * I/O thread per queue}
     */
    public static VirtioBlkConfig defaults() {
        return new VirtioBlkConfig(1, 256, "", false, ErrorPolicy.REPORT, ErrorPolicy.ENOSPC, false, 0, 254, true,
                false);
    }

    /**
     * {@return this configuration with {@code n} queues}
     *
     * @param n 1 to 64
     * @throws IllegalArgumentException if n is out of range
     */
    public VirtioBlkConfig withQueues(int n) {
        return new VirtioBlkConfig(n, queueSize, serial, readOnly, readPolicy, writePolicy, discard, sizeMax, segMax,
                ioThreads, copyPath);
    }

    /**
     * {@return this configuration with queues served on I/O threads, or on the notifying thread}
     *
     * @param threads true for an I/O thread per queue
     */
    public VirtioBlkConfig withIoThreads(boolean threads) {
        return new VirtioBlkConfig(queues, queueSize, serial, readOnly, readPolicy, writePolicy, discard, sizeMax,
                segMax,
                threads, copyPath);
    }

    /**
     * {@return this configuration with data moved through a heap buffer (true) or mapped (false)}
     *
     * @param copy whether to copy
     */
    public VirtioBlkConfig withCopyPath(boolean copy) {
        return new VirtioBlkConfig(queues, queueSize, serial, readOnly, readPolicy, writePolicy, discard, sizeMax,
                segMax,
                ioThreads, copy);
    }

    /**
     * {@return this configuration with a queue size (and seg_max = size - 2, as QEMU)}
     *
     * @param size a power of two from 2 to 1024
     * @throws IllegalArgumentException if size is invalid
     */
    public VirtioBlkConfig withQueueSize(int size) {
        return new VirtioBlkConfig(queues, size, serial, readOnly, readPolicy, writePolicy, discard, sizeMax,
                Math.max(1, size - 2), ioThreads, copyPath);
    }

    /**
     * {@return this configuration with the given error policies}
     *
     * @param read  for failed reads
     * @param write for failed writes, flushes, discards and write-zeroes
     * @throws NullPointerException if a policy is null
     */
    public VirtioBlkConfig withPolicies(ErrorPolicy read, ErrorPolicy write) {
        return new VirtioBlkConfig(queues, queueSize, serial, readOnly, read, write, discard, sizeMax, segMax,
                ioThreads, copyPath);
    }

    /**
     * {@return this configuration with the given serial}
     *
     * @param id at most 20 ASCII characters
     * @throws IllegalArgumentException if id is too long or not ASCII
     */
    public VirtioBlkConfig withSerial(String id) {
        return new VirtioBlkConfig(queues, queueSize, id, readOnly, readPolicy, writePolicy, discard, sizeMax,
                segMax, ioThreads, copyPath);
    }

    /**
     * {@return this configuration, read-only or not, discarding or not, with a size limit}
     *
     * @param ro        whether the guest may not write
     * @param unmap     whether discards reach the image
     * @param maxBuffer the largest buffer in bytes, or 0 for none
     * @throws IllegalArgumentException if maxBuffer is invalid
     */
    public VirtioBlkConfig withAccess(boolean ro, boolean unmap, int maxBuffer) {
        return new VirtioBlkConfig(queues, queueSize, serial, ro, readPolicy, writePolicy, unmap, maxBuffer, segMax,
                ioThreads, copyPath);
    }
}
