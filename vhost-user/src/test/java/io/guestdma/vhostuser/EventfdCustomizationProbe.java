package io.guestdma.vhostuser;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;

/**
 * Run in its own interpreted JVM ({@code -Xint}) by {@link EventfdCustomizationTest}: the heap
 * bytes of 300 rounds of the kick thread's calls after the first (signal an eventfd, poll it, drain it),
 * printed as {@code kick=bytes}.
 */
final class EventfdCustomizationProbe {
    private EventfdCustomizationProbe() {
    }

    public static void main(String[] args) throws Exception {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().threadId();
        int fd = Linux.eventfd();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment one = Linux.eventOne();
            MemorySegment value = arena.allocate(8, 8);
            MemorySegment set = Linux.pollSet(arena, fd);
            // One round first: linking each call site the first time it runs allocates, once.
            round(fd, one, value, set);
            long before = threads.getThreadAllocatedBytes(tid);
            for (int i = 0; i < 300; i++) {
                round(fd, one, value, set);
            }
            System.out.println("kick=" + (threads.getThreadAllocatedBytes(tid) - before));
        } finally {
            Linux.close(fd);
        }
    }

    private static void round(int fd, MemorySegment one, MemorySegment value, MemorySegment set) throws Exception {
        Linux.signal(fd, one);
        if (Linux.poll(set, 1, 1000) != 1 || Linux.drain(fd, value) != 1) {
            throw new IllegalStateException("the eventfd did not count one signal");
        }
    }
}
