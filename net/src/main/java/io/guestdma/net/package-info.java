/**
 * Network backends. A NIC model transmits a frame with {@link io.guestdma.net.NetBackend#transmit}
 * (the frame's bytes as an {@link io.guestdma.memory.IoVector}, typically mapped guest memory)
 * and takes received frames from the backend's {@link io.guestdma.net.RxQueue} when the guest
 * has posted buffers, writing each one whole (with {@link io.guestdma.memory.DmaPacket}) or not
 * at all.
 */
package io.guestdma.net;
