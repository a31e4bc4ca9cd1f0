package io.guestdma.memory;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One device's view of guest memory, what its bus master sees: QEMU's per-device
 * {@code AddressSpace} (a PCI function's {@code bus_master_as}), with an optional IOMMU.
 *
 * <p>A device address goes through three stages before it reaches the {@link #root()}:
 * <ol>
 * <li><b>enable</b>: while the space is disabled ({@link #setEnabled}, a PCI command register's
 *     bus-master bit) nothing is there: reads see zeros, writes are dropped, maps are bounced to
 *     nowhere ({@link AccessResult#UNASSIGNED}), as on hardware;</li>
 * <li><b>window</b>: only {@code [windowBase, windowBase + windowSize)} is visible; an address
 *     inside becomes {@code address - windowBase + windowTarget}; outside is nowhere;</li>
 * <li><b>IOMMU</b> (optional): the windowed address is an I/O virtual address that the
 *     {@link Iommu} translates page by page; an access it does not permit fails with
 *     {@link AccessResult#DEVICE_ERROR} ({@link MapFailed} for maps), which a device reports as a
 *     DMA error. Translations are cached (an IOTLB) until {@link #invalidate}.</li>
 * </ol>
 * Maps are cut where the translated run ends: consecutive I/O pages that the IOMMU sends to
 * consecutive targets form one piece, and the map stops at the first page that goes elsewhere or
 * is not permitted (QEMU's {@code address_space_map} stops at every IOMMU page); the device maps the
 * rest with another call ({@link DmaStream} does so). The last zero-copy mapping is remembered:
 * mapping a range inside it again (a device reusing its DMA buffer) under the same translations and
 * region map costs what a map without an IOMMU costs, with no translation lookup and, once the
 * device code is compiled, nothing allocated.
 *
 * <p><b>Invalidation waits for unmap.</b> {@link #invalidate} drops cached translations at once,
 * so new accesses see the IOMMU's new answer, and returns a future that completes when every
 * mapping (and {@link DmaStream} chunk) made through an older translation has been unmapped: the
 * guest's IOMMU driver must not reuse the old target pages before then, as a real IOTLB
 * invalidation completes only after in-flight DMA drains. A device that never unmaps keeps the
 * future pending; nothing is revoked under it. {@link RamView}s made through an IOMMU are
 * re-translated after an invalidation and fail with {@link DmaAccessException} if their range
 * moved or lost its permission.
 *
 * <p>Thread-safe.
 */
public final class DeviceAddressSpace implements AddressSpace {
    static final int ROUTE_ROOT = 0;
    static final int ROUTE_NOWHERE = 1;
    static final int ROUTE_FAULT = 2;

    private static final int IOTLB_ENTRIES = 64;
    /** A window size meaning "all of the 64-bit space" (which no long can count). */
    static final long WHOLE = -1L;

    private final GuestMemory root;
    private final String name;
    private final long windowBase;
    private final long windowSize;
    private final long windowTarget;
    private final Iommu iommu;
    private volatile boolean enabled = true;
    /** Cached translations, each valid only in the epoch it was made in (so invalidation is one flip). */
    private final java.util.concurrent.atomic.AtomicReferenceArray<Cached> iotlb =
            new java.util.concurrent.atomic.AtomicReferenceArray<>(IOTLB_ENTRIES);
    /** The last run of consecutive pages routed, valid only in its epoch: repeated DMA to one buffer costs one check. */
    private volatile Run lastRun;
    /** The last mapping through the IOMMU, for maps of the same buffer again; null without one. */
    private volatile Warm warm;
    private volatile Epoch epoch = new Epoch();
    private final List<Epoch> draining = new CopyOnWriteArrayList<>();
    private final AtomicLong faults = new AtomicLong();

    /**
     * A generation of translations: mappings made under it are counted, and when an invalidation
     * retires it its future completes once the count drops to zero.
     */
    static final class Epoch {
        final AtomicLong live = new AtomicLong();
        final CompletableFuture<Void> drained = new CompletableFuture<>();
        volatile boolean retired;
    }

    private record Cached(IommuTranslation translation, Epoch epoch) {
    }

    /** {@code [iova, iova + length)} goes to {@code [target, ...)}, permitted for {@code direction}. */
    private record Run(long iova, long length, long target, DmaDirection direction, Epoch epoch) {
        /** {@return whether the whole of {@code [at, at + n)} lies in this run, routed under {@code now}} */
        boolean covers(long at, long n, DmaDirection access, Epoch now) {
            long within = at - iova;
            return epoch == now && direction == access && Long.compareUnsigned(within, length) < 0
                    && Long.compareUnsigned(n, length - within) <= 0;
        }
    }

    /**
     * The last zero-copy mapping made through the IOMMU (with the whole 64-bit window), kept so that
     * mapping the same buffer again, or part of it, costs what a map without an IOMMU costs: valid
     * while {@code epoch} is the current translation generation and {@code snapshot} the root's
     * current region map, which together mean the device range still goes to the same RAM. It is
     * used instead of the root's map (which would find the region again) because that, inlined into
     * map together with the IOMMU checks, compiles to more than C2 inlines into device code.
     *
     * @param iova        first I/O virtual address of the mapping
     * @param length      its length
     * @param segment     its memory (read-only for TO_DEVICE)
     * @param rootAddress the root address of its first byte
     * @param ramAddress  the dirty-log index of its first byte
     */
    private record Warm(long iova, long length, DmaDirection direction, Epoch epoch, AddressMap snapshot,
                        MemorySegment segment, long rootAddress, long ramAddress) {
        /** {@return whether {@code [at, at + n)}, 1 byte or more, lies in this mapping, made under {@code now}} */
        boolean covers(long at, long n, DmaDirection access, Epoch now) {
            long within = at - iova;
            return epoch == now && direction == access && n > 0 && Long.compareUnsigned(within, length) < 0
                    && n <= length - within;
        }
    }

    /** Where a piece of a device access goes; one per caller, reused. */
    static final class Route {
        int kind;
        long rootAddress;
        long length;
    }

    DeviceAddressSpace(GuestMemory root, String name, long windowBase, long windowSize, long windowTarget,
                       Iommu iommu) {
        this.root = root;
        this.name = name;
        this.windowBase = windowBase;
        this.windowSize = windowSize;
        this.windowTarget = windowTarget;
        this.iommu = iommu;
    }

    /** {@return the device's name, for messages} */
    public String name() {
        return name;
    }

    @Override
    public GuestMemory root() {
        return root;
    }

    /** {@return whether the device may reach memory (a PCI function's bus-master enable)} */
    public boolean isEnabled() {
        return enabled;
    }

    /**
     * Enables or disables the device's access to memory. Disabled, every access sees nothing (reads
     * zero, writes dropped); mappings already made stay valid until unmapped.
     *
     * @param on whether accesses reach memory
     */
    public void setEnabled(boolean on) {
        enabled = on;
    }

    /** {@return whether accesses go through an IOMMU} */
    public boolean hasIommu() {
        return iommu != null;
    }

    /** {@return how many accesses an IOMMU refused} */
    public long iommuFaults() {
        return faults.get();
    }

    /**
     * Drops cached translations so the next accesses ask the IOMMU again. The range says what the
     * guest invalidated; the cache is dropped whole (conservative, and one step that no route
     * running at the same time can undo).
     *
     * @param iova   first I/O virtual address the guest invalidated
     * @param length bytes, or 0 for everything
     * @return completed when no mapping or stream chunk made through a translation cached before
     *         this call is live any more
     */
    public synchronized CompletableFuture<Void> invalidate(long iova, long length) {
        // Cached translations are tagged with the epoch they were made in; the flip below makes
        // them all stale at once, so no route that started after this call can use one (a range
        // is therefore invalidated conservatively, with everything else). Entries are dropped too,
        // only to let them go.
        Epoch old = epoch;
        epoch = new Epoch();
        lastRun = null;
        warm = null;
        for (int i = 0; i < IOTLB_ENTRIES; i++) {
            iotlb.set(i, null);
        }
        old.retired = true;
        draining.add(old);
        old.drained.whenComplete((v, e) -> draining.remove(old));
        if (old.live.get() == 0) {
            old.drained.complete(null);
        }
        return CompletableFuture.allOf(draining.stream().map(e -> e.drained).toArray(CompletableFuture<?>[]::new));
    }

    /** Counts a mapping or chunk under the current translations; null without an IOMMU. */
    Epoch enter() {
        if (iommu == null) {
            return null;
        }
        while (true) {
            Epoch e = epoch;
            e.live.incrementAndGet();
            if (!e.retired) {
                return e;
            }
            exit(e); // an invalidation retired it meanwhile: count under the new one
        }
    }

    static void exit(Epoch e) {
        if (e != null && e.live.decrementAndGet() == 0 && e.retired) {
            e.drained.complete(null);
        }
    }

    /** The current epoch, for a RamView made through the IOMMU to notice invalidations. */
    Epoch currentEpoch() {
        return iommu == null ? null : epoch;
    }

    /**
     * Routes the piece {@code [address, address + length)}: where it goes in the root and how much
     * of it goes there in one piece. A caller that maps or copies must have {@link #enter}ed
     * before, so that an invalidation racing with the route waits for what it produces.
     */
    void route(long address, long length, DmaDirection direction, Route out) {
        if (!enabled) {
            out.kind = ROUTE_NOWHERE;
            out.length = length;
            return;
        }
        long offset = address - windowBase;
        if (windowSize != WHOLE && Long.compareUnsigned(offset, windowSize) >= 0) {
            out.kind = ROUTE_NOWHERE;
            // Below the window: nothing up to its start. Above: nothing at all.
            long gap = windowBase - address;
            out.length = Long.compareUnsigned(address, windowBase) < 0 && Long.compareUnsigned(gap, length) < 0
                    ? gap : length;
            return;
        }
        long inWindow = windowSize - offset;
        long n = windowSize == WHOLE || Long.compareUnsigned(length, inWindow) < 0 ? length : inWindow;
        long at = windowTarget + offset;
        if (iommu == null) {
            out.kind = ROUTE_ROOT;
            out.rootAddress = at;
            out.length = n;
            return;
        }
        Epoch now = epoch;
        Run run = lastRun;
        if (run != null && run.covers(at, n, direction, now)) {
            out.kind = ROUTE_ROOT;
            out.rootAddress = run.target() + (at - run.iova());
            out.length = n;
            return;
        }
        IommuTranslation t = translation(at, direction, now);
        long within = at - t.iova();
        long covered = t.size() - within;
        if (!t.permits(direction)) {
            faults.incrementAndGet();
            out.kind = ROUTE_FAULT;
            out.length = Long.compareUnsigned(n, covered) < 0 ? n : covered;
            return;
        }
        long target = t.target() + within;
        // Pages the guest mapped to consecutive targets become one piece (one mapping, one iovec),
        // not one per page; the run stops at the first page that goes elsewhere or is not permitted.
        while (Long.compareUnsigned(covered, n) < 0) {
            long next = at + covered;
            if (next == 0) {
                break; // the top of the 64-bit space
            }
            IommuTranslation u = translation(next, direction, now);
            if (!u.permits(direction) || u.target() + (next - u.iova()) != target + covered) {
                break;
            }
            covered += u.size() - (next - u.iova());
        }
        out.kind = ROUTE_ROOT;
        out.rootAddress = target;
        out.length = Long.compareUnsigned(n, covered) < 0 ? n : covered;
        lastRun = new Run(at, covered, target, direction, now);
    }

    private IommuTranslation translation(long iova, DmaDirection direction, Epoch now) {
        int slot = (int) ((iova >>> 12) & (IOTLB_ENTRIES - 1));
        Cached entry = iotlb.get(slot);
        if (entry != null && entry.epoch() == now) {
            IommuTranslation cached = entry.translation();
            if (Long.compareUnsigned(iova - cached.iova(), cached.size()) < 0 && cached.permits(direction)) {
                return cached;
            }
        }
        IommuTranslation fresh = iommu.translate(iova, direction);
        if (fresh == null || Long.compareUnsigned(iova - fresh.iova(), fresh.size()) >= 0) {
            // An IOMMU model that answers for the wrong page is treated as not mapping it.
            return IommuTranslation.fault(iova);
        }
        if (fresh.readable() || fresh.writable()) {
            iotlb.set(slot, new Cached(fresh, now)); // stale at once if an invalidation flipped meanwhile
        }
        return fresh;
    }

    // ------------------------------------------------------------------ copy path

    @Override
    public AccessResult read(long address, MemorySegment destination) {
        return copy(address, destination, false);
    }

    @Override
    public AccessResult write(long address, MemorySegment source) {
        return copy(address, source, true);
    }

    @Override
    public AccessResult fill(long address, long length, byte value) {
        if (length < 0) {
            throw new IllegalArgumentException("negative fill length " + length);
        }
        byte[] page = new byte[(int) Math.min(length, 4096)];
        java.util.Arrays.fill(page, value);
        AccessResult result = AccessResult.OK;
        for (long done = 0; done < length; done += page.length) {
            long n = Math.min(page.length, length - done);
            result = result.and(write(address + done, MemorySegment.ofArray(page).asSlice(0, n)));
        }
        return result;
    }

    private AccessResult copy(long address, MemorySegment buffer, boolean write) {
        if (iommu == null && enabled) {
            // The common case (a bus master without an IOMMU, the access inside its window): one
            // call to the root, nothing allocated (PRD entries and descriptors come this way).
            long offset = address - windowBase;
            long length = buffer.byteSize();
            if (windowSize == WHOLE || (Long.compareUnsigned(offset, windowSize) < 0
                    && Long.compareUnsigned(length, windowSize - offset) <= 0)) {
                long at = windowTarget + offset;
                return write ? root.write(at, buffer) : root.read(at, buffer);
            }
        }
        root.snapshot(); // closed memory throws, as for the root
        DmaDirection direction = write ? DmaDirection.FROM_DEVICE : DmaDirection.TO_DEVICE;
        Route r = new Route();
        AccessResult result = AccessResult.OK;
        long length = buffer.byteSize();
        Epoch e = enter();
        try {
            for (long done = 0; done < length; done += r.length) {
                long at = address + done;
                if (done > 0 && Long.compareUnsigned(at, address) < 0) {
                    r.kind = ROUTE_NOWHERE; // past 2^64
                    r.length = length - done;
                } else {
                    route(at, length - done, direction, r);
                }
                MemorySegment part = buffer.asSlice(done, r.length);
                switch (r.kind) {
                    case ROUTE_ROOT -> result = result.and(write ? root.write(r.rootAddress, part)
                            : root.read(r.rootAddress, part));
                    case ROUTE_NOWHERE -> {
                        if (!write) {
                            part.fill((byte) 0);
                        }
                        result = result.and(AccessResult.UNASSIGNED);
                    }
                    default -> {
                        if (!write) {
                            part.fill((byte) 0);
                        }
                        result = result.and(AccessResult.DEVICE_ERROR);
                    }
                }
            }
        } finally {
            exit(e);
        }
        return result;
    }

    // ------------------------------------------------------------------ map path

    @Override
    public MapResult map(long address, long length, DmaDirection direction) {
        // Kept small so that map and unmap inline into the device and the mapping is
        // scalar-replaced (nothing allocated), as on the root: without an IOMMU, the root's map;
        // through one, a buffer mapped again under the same translations (see Warm).
        if (enabled && windowSize == WHOLE) {
            long at = windowTarget + address - windowBase;
            if (iommu == null) {
                return root.map(at, length, direction);
            }
            Epoch e = enter(); // before reading the cache: an invalidation racing with this map waits for it
            DmaMapping again = mapAgain(at, length, direction, e);
            if (again != null) {
                return again;
            }
            return mapSlowly(address, length, direction, e);
        }
        return mapSlowly(address, length, direction, null);
    }

    /**
     * A map inside the last mapping made through the IOMMU, while its translations and the root's
     * snapshot are both still current: a slice of that mapping's memory holding {@code e}, with no
     * translation and no region lookup; or null to take the full path (still holding e).
     */
    private DmaMapping mapAgain(long at, long length, DmaDirection direction, Epoch e) {
        Warm w = warm;
        if (w != null && w.covers(at, length, direction, e) && root.current() == w.snapshot()) {
            int stripe = w.snapshot().acquire(); // -1: a region change retired it since the check
            if (stripe >= 0) {
                long within = at - w.iova();
                // The slice first: an allocation between the mapping's and its field stores would
                // make every reference store a full GC barrier and map too big to inline.
                MemorySegment slice = w.segment().asSlice(within, length);
                return new DmaMapping(root, w.snapshot(), stripe, w.rootAddress() + within, length, direction,
                        slice, w.ramAddress() + within, e);
            }
        }
        return null;
    }

    /** @param entered the epoch map entered already, or null to enter one here (if there is an IOMMU) */
    private MapResult mapSlowly(long address, long length, DmaDirection direction, Epoch entered) {
        if (length <= 0 || direction == null) {
            return root.mapHeld(address, length, direction, entered); // throws as the root does
        }
        if (address != 0 && Long.compareUnsigned(length, -address) > 0) {
            length = -address;
        }
        // Entered before the route: an invalidation racing with it waits for this mapping.
        return mapRouted(address, length, direction, entered != null ? entered : enter());
    }

    /** Routes and maps: the root's map, a mapping of nowhere, or a permission fault; holds or exits e. */
    private MapResult mapRouted(long address, long length, DmaDirection direction, Epoch e) {
        Route r = new Route();
        try {
            route(address, length, direction, r);
        } catch (Throwable t) { // an IOMMU model that threw: nothing is mapped or held
            exit(e);
            throw t;
        }
        if (r.kind == ROUTE_ROOT) {
            MapResult m = root.mapHeld(r.rootAddress, r.length, direction, e); // holds e, or lets it go
            if (e != null && windowSize == WHOLE && m instanceof DmaMapping mapping && !mapping.bounced()
                    && mapping.debugScope == null) {
                // Tagged with the epoch entered before the route: if the route saw a newer one, an
                // invalidation retired e first and the entry is never used.
                warm = new Warm(windowTarget + address - windowBase, mapping.length(), direction, e,
                        mapping.snapshot, mapping.segment(), mapping.address(), mapping.backingOffset);
            }
            return m;
        }
        exit(e);
        return r.kind == ROUTE_NOWHERE ? root.mapNowhere(address, r.length, direction)
                : new MapFailed(address, r.length, AccessResult.DEVICE_ERROR);
    }

    /**
     * A mapping made through an IOMMU keeps its epoch from draining until unmapped; any other
     * outcome lets it go at once.
     */
    static MapResult heldBy(MapResult m, Epoch e) {
        if (e != null && m instanceof DmaMapping mapping) {
            mapping.throughIommu(e);
        } else {
            exit(e);
        }
        return m;
    }

    @Override
    public AccessResult unmap(DmaMapping mapping, long accessLength) {
        return root.unmap(mapping, accessLength);
    }

    @Override
    public MapClient registerMapClient(Executor executor, Runnable callback) {
        return root.registerMapClient(executor, callback);
    }

    @Override
    public BouncePool bouncePool() {
        return root.bouncePool();
    }

    @Override
    public RamView ramView(long address, long length, ByteOrder order, boolean writable) {
        Objects.requireNonNull(order, "order");
        if (length <= 0) {
            throw new IllegalArgumentException("view length must be at least 1, was " + length);
        }
        Epoch e = currentEpoch(); // before the route: an invalidation after it retires e
        Route r = new Route();
        route(address, length, writable ? DmaDirection.FROM_DEVICE : DmaDirection.TO_DEVICE, r);
        if (r.kind != ROUTE_ROOT || r.length != length) {
            throw new DmaAccessException(String.format("device %s: 0x%x (+0x%x) is not reachable RAM in one"
                    + " translation", name, address, length), address, length);
        }
        return root.ramView(r.rootAddress, length, order, writable).through(this, address, e);
    }

    @Override
    public String toString() {
        return String.format("DeviceAddressSpace[%s, %s, window 0x%x+0x%x -> 0x%x%s]", name,
                enabled ? "enabled" : "disabled", windowBase, windowSize, windowTarget, iommu != null ? ", IOMMU" : "");
    }
}
