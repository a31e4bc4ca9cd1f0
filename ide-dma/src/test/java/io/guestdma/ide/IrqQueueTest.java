package io.guestdma.ide;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class IrqQueueTest {
    /**
     * The qtest race: one thread is handing a raise to the line (and is slow about it) when
     * another records the lower that its status read caused; that thread's deliver() leaves the
     * lower to the first, so an observer that answers next must wait for it to reach the line.
     */
    @Test
    void awaitDeliveredWaitsForTheThreadThatIsDelivering() throws Exception {
        CountDownLatch raising = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        List<Boolean> line = new CopyOnWriteArrayList<>();
        IrqQueue queue = new IrqQueue(level -> {
            line.add(level);
            if (level) {
                raising.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
        Thread deliverer = Thread.ofPlatform().start(() -> {
            queue.record(true);
            queue.deliver();
        });
        assertThat(raising.await(10, TimeUnit.SECONDS)).isTrue();
        queue.record(false);
        queue.deliver();
        assertThat(line).as("the lower is left to the thread delivering").containsExactly(true);

        CompletableFuture<Void> awaited = CompletableFuture.runAsync(() -> {
            try {
                queue.awaitDelivered();
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
        });
        Thread.sleep(200);
        assertThat(awaited).as("still waiting while the raise is being delivered").isNotDone();
        release.countDown();
        awaited.get(10, TimeUnit.SECONDS);
        assertThat(line).containsExactly(true, false);
        deliverer.join(10_000);
    }

    @Test
    void awaitDeliveredDeliversWhatNobodyIsDelivering() throws Exception {
        List<Boolean> line = new CopyOnWriteArrayList<>();
        IrqQueue queue = new IrqQueue(line::add);
        queue.record(true);
        queue.awaitDelivered();
        assertThat(line).containsExactly(true);
        queue.awaitDelivered();
        assertThat(line).containsExactly(true);
    }
}
