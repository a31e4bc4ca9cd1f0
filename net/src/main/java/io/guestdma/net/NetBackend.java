package io.guestdma.net;

import io.guestdma.memory.IoVector;

import java.io.IOException;

/**
 * Where a NIC's frames go and come from: the device model's side of a network backend.
 *
 * <p>Transmit: the NIC hands over one whole Ethernet frame (no virtio-net header) as an
 * {@link IoVector}, typically the guest's mapped buffers, and the backend sends it or drops it
 * before this returns; the vector is not used afterwards. Receive: frames the backend receives
 * wait in its {@link #rxQueue()} until the NIC has guest buffers for them.
 *
 * <p>Link state follows the backend: a stream whose peer went away is down ({@link #linkUp()}),
 * and the NIC reports that to the guest (virtio-net's STATUS). Frames transmitted while the link is
 * down are dropped and counted, as a cable-less NIC would lose them.
 *
 * <p>Implementations are thread-safe: one thread may transmit while another takes received frames.
 */
public interface NetBackend extends AutoCloseable {
    /**
     * Sends one frame, or drops it (counted in {@link #txDropped()}) when the link is down or the
     * peer cannot take it.
     *
     * @param frame the frame's bytes, 1 to {@link RxQueue#MAX_FRAME_BYTES}
     * @return whether the frame was sent
     * @throws IllegalArgumentException if the frame is empty or larger than {@link RxQueue#MAX_FRAME_BYTES}
     * @throws IOException              if the backend is closed
     */
    boolean transmit(IoVector frame) throws IOException;

    /** {@return the queue received frames wait in} */
    RxQueue rxQueue();

    /** {@return whether the link is up: a peer is there to exchange frames with} */
    boolean linkUp();

    /**
     * Sets what runs when the link goes up or down, in the backend's thread; it must not block.
     *
     * @param listener called with the new state
     * @throws NullPointerException if listener is null
     */
    void onLinkChange(java.util.function.Consumer<Boolean> listener);

    /** {@return frames transmitted and sent} */
    long txFrames();

    /** {@return frames the NIC transmitted that were dropped (link down, peer gone)} */
    long txDropped();

    /**
     * {@return frames or parts of the stream received that could not be delivered: malformed
     * (a length prefix past {@link RxQueue#MAX_FRAME_BYTES}, a peer gone mid-frame) or dropped for
     * lack of room, the queue's own drops included}
     */
    long rxErrors();

    /** Stops the backend and releases its sockets and files; frames still queued are discarded. Idempotent. */
    @Override
    void close();
}
