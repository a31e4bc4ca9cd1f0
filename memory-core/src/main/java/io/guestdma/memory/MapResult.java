package io.guestdma.memory;

/**
 * What {@link GuestMemory#map} gives back: a {@link DmaMapping} (possibly shorter than asked),
 * {@link BounceExhausted} when the range is not RAM and the bounce pool has no room, or
 * {@link MapFailed} when the range is a device whose handler failed while the bounce buffer was
 * being filled. Only a {@code DmaMapping} holds anything that must be given back. Callers switch
 * on it:
 *
 * <pre>{@code
 * switch (memory.map(addr, len, DmaDirection.FROM_DEVICE)) {
 *     case DmaMapping m -> { ... ; memory.unmap(m, written); }
 *     case BounceExhausted e -> memory.registerMapClient(executor, this::retry);
 *     case MapFailed f -> raiseDmaError();
 * }
 * }</pre>
 */
public sealed interface MapResult permits DmaMapping, BounceExhausted, MapFailed {
}
