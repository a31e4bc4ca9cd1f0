package io.guestdma.memory;

/**
 * The "no resources" answer of {@link GuestMemory#map}: the range starts outside RAM, so it must be
 * bounced, and the bounce pool is full. Nothing was mapped. Register a map client
 * ({@link GuestMemory#registerMapClient}) to be told when space frees, then map again.
 *
 * @param address   the guest address that could not be mapped
 * @param requested the length that was asked for
 * @param inFlight  the bounce bytes in flight when the map was refused
 */
public record BounceExhausted(long address, long requested, long inFlight) implements MapResult {
}
