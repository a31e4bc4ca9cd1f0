package io.guestdma.virtio;

import io.guestdma.memory.SgList;

/**
 * One request taken from a virtqueue: the head index the device gives back in the used ring, and
 * the chain's buffers split by direction, as QEMU's {@code VirtQueueElement}. Reusable: a device
 * keeps one per request slot and {@link Virtqueue#pop} refills it, so that taking a request
 * allocates nothing.
 *
 * <p>The lists hold guest addresses exactly as the descriptors gave them; nothing is mapped.
 * Not thread-safe.
 */
public final class DescriptorChain {
    private final SgList readable = new SgList(16);
    private final SgList writable = new SgList(16);
    private int head = -1;

    /** Creates an empty chain. */
    public DescriptorChain() {
    }

    /** {@return the index of the chain's first descriptor, to hand back with {@link Virtqueue#push}} */
    public int head() {
        return head;
    }

    /** {@return the buffers the device reads (the driver's "out" descriptors), in chain order} */
    public SgList readable() {
        return readable;
    }

    /** {@return the buffers the device writes (the driver's "in" descriptors), in chain order} */
    public SgList writable() {
        return writable;
    }

    void start(int headIndex) {
        head = headIndex;
        readable.reset();
        writable.reset();
    }

    @Override
    public String toString() {
        return "DescriptorChain[head " + head + ", out " + readable + ", in " + writable + "]";
    }
}
