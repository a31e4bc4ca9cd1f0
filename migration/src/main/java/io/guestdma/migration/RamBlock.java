package io.guestdma.migration;

import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.RamRegion;
import io.guestdma.memory.Region;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * One RAM region as the stream sees it: pages are numbered within their block, so the stream does
 * not depend on where either side keeps the bytes.
 *
 * @param name       the region's name, the same on both sides
 * @param guestBase  its first guest physical address
 * @param size       its length in bytes, a multiple of the page size
 * @param ramAddress where its pages sit in the dirty log's RAM address space
 * @param region     the region
 */
record RamBlock(String name, long guestBase, long size, long ramAddress, RamRegion region) {

    long pages() {
        return size / StreamFormat.PAGE_SIZE;
    }

    /** The region's bytes, for the destination, which is not running and so has no DMA to race. */
    MemorySegment bytes(GuestMemory memory) {
        MemorySegment all = region.backing() == null ? memory.backing().segment() : region.backing().segment();
        return all.asSlice(region.backingOffset(), size);
    }

    /**
     * The address space's RAM regions in address order.
     *
     * @throws IllegalStateException if a RAM region is not page aligned or there are more regions,
     *     or longer names, than the stream can describe
     */
    static List<RamBlock> of(GuestMemory memory) {
        List<RamBlock> blocks = new ArrayList<>();
        for (Region region : memory.regions()) {
            if (region instanceof RamRegion ram) {
                if (ram.size() % StreamFormat.PAGE_SIZE != 0 || ram.base() % StreamFormat.PAGE_SIZE != 0) {
                    throw new IllegalStateException("RAM region " + ram.name() + " is not page aligned");
                }
                if (ram.size() / StreamFormat.PAGE_SIZE > 0xffff_ffffL) {
                    throw new IllegalStateException("RAM region " + ram.name() + " is too large for the stream");
                }
                long ramAddress = memory.backingOffsetOf(ram.base()).orElseThrow();
                blocks.add(new RamBlock(ram.name(), ram.base(), ram.size(), ramAddress, ram));
            }
        }
        if (blocks.size() > StreamFormat.MAX_BLOCKS) {
            throw new IllegalStateException(blocks.size() + " RAM regions; the stream describes at most "
                    + StreamFormat.MAX_BLOCKS);
        }
        return blocks;
    }
}
