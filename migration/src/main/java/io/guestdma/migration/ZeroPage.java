package io.guestdma.migration;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** One page of zeros, to compare guest pages against without allocating. */
final class ZeroPage {
    static final MemorySegment SEGMENT = Arena.global().allocate(StreamFormat.PAGE_SIZE, StreamFormat.PAGE_SIZE);

    private ZeroPage() {
    }
}
