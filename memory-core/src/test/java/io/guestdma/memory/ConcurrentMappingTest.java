package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * Several device threads map and unmap while the machine hot-plugs a region in and out: readers
 * never block, nothing is torn, every removal completes once its mappings are gone, and the
 * accounting ends at zero.
 */
class ConcurrentMappingTest {

    @Test
    void devicesMapWhileRegionsChange() throws Exception {
        RecordingDevice dev = new RecordingDevice(0x1000, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().backing(RamBacking.anonymous(0x20000))
                .ram("ram", 0, 0x10000, 0).mmio("dev", 0x100000, 0x1000, dev).build()) {
            AtomicBoolean stop = new AtomicBoolean();
            ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
            AtomicLong hotplugHits = new AtomicLong();
            AtomicLong iterations = new AtomicLong();
            List<Thread> devices = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                int id = t;
                Thread thread = new Thread(() -> {
                    try {
                        long mine = 0x1000L * id;
                        for (int i = 0; !stop.get(); i++) {
                            DmaMapping m = (DmaMapping) mem.map(mine, 0x1000, DmaDirection.FROM_DEVICE);
                            m.segment().set(ValueLayout.JAVA_INT_UNALIGNED, 0, i);
                            mem.unmap(m, 4);
                            assertThat(mem.readInt(mine)).isEqualTo(i);
                            // the hot-plugged region: present or not, never a crash
                            if (mem.map(0x80000, 0x100, DmaDirection.FROM_DEVICE) instanceof DmaMapping h) {
                                h.segment().fill((byte) id);
                                mem.unmap(h, 0x100);
                                if (!h.bounced()) {
                                    hotplugHits.incrementAndGet();
                                }
                            }
                            if (mem.map(0x100000, 8, DmaDirection.FROM_DEVICE) instanceof DmaMapping b) {
                                mem.unmap(b, 8);
                            }
                            iterations.incrementAndGet();
                        }
                    } catch (Throwable e) {
                        errors.add(e);
                    }
                });
                devices.add(thread);
                thread.start();
            }
            List<CompletableFuture<Void>> removals = new ArrayList<>();
            // Device threads that failed stop counting: without the errors check this loop would never end.
            for (int round = 0; errors.isEmpty() && (round < 300 || hotplugHits.get() < 100 || iterations.get() < 10_000);
                    round++) {
                mem.addRegion(new RamRegion("hotplug", 0x80000, 0x1000, 0x10000));
                Thread.sleep(0, 50_000);
                removals.add(mem.removeRegion("hotplug"));
            }
            stop.set(true);
            for (Thread t : devices) {
                t.join();
            }
            assertThat(errors).isEmpty();
            CompletableFuture.allOf(removals.toArray(new CompletableFuture<?>[0])).get(10, TimeUnit.SECONDS);
            assertThat(mem.liveMappings()).isZero();
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
        }
    }
}
