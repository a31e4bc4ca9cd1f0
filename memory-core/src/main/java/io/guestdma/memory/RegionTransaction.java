package io.guestdma.memory;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;

/**
 * Region changes that become visible together ({@link GuestMemory#transaction()}): build the set
 * of removals and additions, then {@link #commit()} installs them in one snapshot swap. Readers and
 * DMA see the address space either before or after, never in between, so hot-plug, BAR moves and
 * region replacement leave no window of unassigned space, also for regions with backings of their
 * own (a region may move to another address on the same backing, which then stays mapped). Not
 * thread-safe; use once.
 */
public final class RegionTransaction {
    private final GuestMemory memory;
    private final List<String> removals = new ArrayList<>();
    private final List<Region> additions = new ArrayList<>();
    private boolean committed;

    RegionTransaction(GuestMemory memory) {
        this.memory = memory;
    }

    /**
     * Adds a region.
     *
     * @param region the region; its name must be unused after the transaction's removals
     * @return this transaction
     * @throws NullPointerException if region is null
     */
    public RegionTransaction add(Region region) {
        additions.add(Objects.requireNonNull(region, "region"));
        return this;
    }

    /**
     * Removes the region named {@code name}.
     *
     * @param name a region present when the transaction commits
     * @return this transaction
     * @throws NullPointerException if name is null
     */
    public RegionTransaction remove(String name) {
        removals.add(Objects.requireNonNull(name, "name"));
        return this;
    }

    /**
     * Replaces the region of the same name with {@code region} (a BAR moved, RAM swapped for ROM).
     *
     * @param region the new region, named as the one it replaces
     * @return this transaction
     * @throws NullPointerException if region is null
     */
    public RegionTransaction replace(Region region) {
        return remove(region.name()).add(region);
    }

    /**
     * Installs the changes in one swap. Nothing changes if the result is invalid.
     *
     * @return a future completed when no mapping made while a removed region was present is live
     *         any more (at once if nothing was removed or nothing was mapped), and every own
     *         backing that no region uses any more has been unmapped (it fails if unmapping failed)
     * @throws IllegalArgumentException if a removed name is absent, an added name is taken, regions
     *                                  would overlap, RAM/ROM lies outside its backing, or an added
     *                                  region's own backing is closed or used by another address
     *                                  space (nothing is claimed then: the caller keeps the backing)
     * @throws IllegalStateException    if the address space is closed or this transaction was
     *                                  committed already
     */
    public CompletableFuture<Void> commit() {
        if (committed) {
            throw new IllegalStateException("the transaction was committed already");
        }
        committed = true;
        return memory.commit(List.copyOf(removals), List.copyOf(additions));
    }
}
