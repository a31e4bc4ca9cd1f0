package io.guestdma.memory;

import static io.guestdma.memory.DmaDirection.FROM_DEVICE;
import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class MapClientTest {
    private static final MmioHandler ZEROES = new MmioHandler() {
        @Override
        public long read(long offset, int size) {
            return 0;
        }

        @Override
        public void write(long offset, int size, long value) {
        }
    };

    @Test
    void aClientIsToldOnceWhenSpaceFrees() {
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x1000, 0x10000, ZEROES).build()) {
            DmaMapping all = (DmaMapping) mem.map(0x1000, 4096, FROM_DEVICE);
            assertThat(mem.map(0x3000, 1, FROM_DEVICE)).isInstanceOf(BounceExhausted.class);
            AtomicInteger calls = new AtomicInteger();
            MapClient client = mem.registerMapClient(Runnable::run, calls::incrementAndGet);
            assertThat(calls).hasValue(0);
            assertThat(mem.bouncePool().waitingClients()).isEqualTo(1);
            mem.unmap(all, 0);
            assertThat(calls).hasValue(1);
            assertThat(client.hasFired()).isTrue();
            assertThat(client.cancel()).isFalse();
            DmaMapping again = (DmaMapping) mem.map(0x1000, 4096, FROM_DEVICE);
            mem.unmap(again, 0);
            assertThat(calls).as("one-shot").hasValue(1);
        }
    }

    @Test
    void aCancelledClientIsNeverCalled() {
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x1000, 0x10000, ZEROES).build()) {
            DmaMapping all = (DmaMapping) mem.map(0x1000, 4096, FROM_DEVICE);
            AtomicInteger calls = new AtomicInteger();
            MapClient client = mem.registerMapClient(Runnable::run, calls::incrementAndGet);
            assertThat(client.cancel()).isTrue();
            mem.unmap(all, 0);
            assertThat(calls).hasValue(0);
            assertThat(client.isCancelled()).isTrue();
        }
    }

    @Test
    void registeringWhileNothingIsInFlightRunsAtOnce() {
        try (GuestMemory mem = GuestMemory.ofRam(0x1000)) {
            AtomicInteger calls = new AtomicInteger();
            mem.registerMapClient(Runnable::run, calls::incrementAndGet);
            assertThat(calls).hasValue(1);
        }
    }

    /**
     * Many devices share a one-page pool; each maps, and on exhaustion registers a client and
     * retries from the callback, exactly the QEMU pattern. A lost wake-up leaves a device waiting
     * forever, so every device must finish all its rounds.
     */
    @Test
    void noWakeUpIsLostUnderContention() throws Exception {
        int devices = 8;
        int rounds = 3000;
        ExecutorService executor = Executors.newFixedThreadPool(4);
        try (GuestMemory mem = GuestMemory.builder().mmio("dev", 0x100000, 0x100000, ZEROES).build()) {
            CountDownLatch finished = new CountDownLatch(devices);
            AtomicLong waits = new AtomicLong();
            for (int d = 0; d < devices; d++) {
                long address = 0x100000 + d * 0x2000L;
                Runnable device = new Runnable() {
                    int done;

                    @Override
                    public void run() {
                        while (done < rounds) {
                            if (!(mem.map(address, 3000, FROM_DEVICE) instanceof DmaMapping m)) {
                                waits.incrementAndGet();
                                mem.registerMapClient(executor, this);
                                return;
                            }
                            Thread.onSpinWait();
                            mem.unmap(m, m.length());
                            done++;
                        }
                        finished.countDown();
                    }
                };
                executor.execute(device);
            }
            assertThat(finished.await(60, TimeUnit.SECONDS)).as("every device finished: no lost wake-up").isTrue();
            assertThat(waits.get()).as("the pool really was contended").isPositive();
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
        } finally {
            executor.shutdownNow();
        }
    }
}
