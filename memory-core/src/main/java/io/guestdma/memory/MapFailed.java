package io.guestdma.memory;

/**
 * The "access failed" answer of {@link GuestMemory#map}: the range had to be bounced and filling
 * the bounce buffer failed (an MMIO handler threw, or the access would have re-entered a busy
 * device, see {@link ReentrancyGuard}). Nothing is mapped and nothing is held: the bounce space
 * and the address-space lease taken for the attempt were released before this was returned. A
 * device reports it to the guest as a DMA error; retrying maps the range again (and calls the
 * handler again).
 *
 * @param address   the guest address that could not be mapped
 * @param requested the length that was asked for
 * @param result    why: {@link AccessResult#DEVICE_ERROR}
 */
public record MapFailed(long address, long requested, AccessResult result) implements MapResult {
}
