package io.guestdma.memory;

import java.util.Objects;

/**
 * A device's register window. Copy-path accesses are split into what the {@link MmioHandler}
 * accepts; DMA maps of it are bounced through the {@link BouncePool}.
 *
 * @param name    unique name
 * @param base    first guest physical address
 * @param size    length in bytes
 * @param handler the device
 * @param guard   the device's {@link ReentrancyGuard}, or null: with one, an access that reaches
 *                this region while the device is already busy on the same thread (its own DMA
 *                landing on its own registers) is refused with {@link AccessResult#DEVICE_ERROR}
 *                instead of calling the handler
 */
public record MmioRegion(String name, long base, long size, MmioHandler handler, ReentrancyGuard guard)
        implements Region {
    /**
     * A region without a re-entrancy guard.
     *
     * @param name    unique name
     * @param base    first guest physical address
     * @param size    length in bytes
     * @param handler the device
     * @throws IllegalArgumentException as the canonical constructor
     * @throws NullPointerException     if handler is null
     */
    public MmioRegion(String name, long base, long size, MmioHandler handler) {
        this(name, base, size, handler, null);
    }

    /**
     * Checks the components of an MMIO region.
     *
     * @throws IllegalArgumentException if the name is empty, the size is not positive, the region
     *                                  wraps past 2<sup>64</sup>, or the handler's access sizes are
     *                                  not powers of two in 1..8 with min &lt;= max
     * @throws NullPointerException     if handler is null
     */
    public MmioRegion {
        Region.check(name, base, size);
        Objects.requireNonNull(handler, "handler");
        int min = handler.minAccessSize();
        int max = handler.maxAccessSize();
        if (!validSize(min) || !validSize(max) || min > max) {
            throw new IllegalArgumentException("region '" + name + "': handler access sizes must be powers of two in 1..8"
                    + " with min <= max, were min=" + min + " max=" + max);
        }
    }

    private static boolean validSize(int size) {
        return size == 1 || size == 2 || size == 4 || size == 8;
    }
}
