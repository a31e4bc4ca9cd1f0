package io.guestdma.memory;

/**
 * What {@link GuestMemory#map} gives back: either a {@link DmaMapping} (possibly shorter than
 * asked) or {@link BounceExhausted} when the range is not RAM and the bounce pool has no room.
 * Callers switch on it:
 *
 * <pre>{@code
 * switch (memory.map(addr, len, DmaDirection.FROM_DEVICE)) {
 *     case DmaMapping m -> { ... ; memory.unmap(m, written); }
 *     case BounceExhausted e -> memory.registerMapClient(executor, this::retry);
 * }
 * }</pre>
 */
public sealed interface MapResult permits DmaMapping, BounceExhausted {
}
