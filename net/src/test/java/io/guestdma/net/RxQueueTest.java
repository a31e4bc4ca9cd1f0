package io.guestdma.net;

import io.guestdma.memory.IoVector;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class RxQueueTest {
    private static MemorySegment frame(byte[] bytes) {
        return MemorySegment.ofArray(bytes);
    }

    private static byte[] head(RxQueue q) {
        byte[] out = new byte[q.headLength()];
        q.copyHead(0, MemorySegment.ofArray(out));
        return out;
    }

    /** Against a model: whatever mix of sizes, offers and removals, frames come out whole and in order, and the bounds hold. */
    @Property(tries = 60)
    void framesComeOutWholeAndInOrderAndTheBoundsHold(@ForAll long seed, @ForAll @IntRange(min = 1, max = 40) int maxFrames) {
        Random random = new Random(seed);
        RxQueue q = new RxQueue(4 * 65_600, maxFrames);
        ArrayDeque<byte[]> model = new ArrayDeque<>();
        long modelBytes = 0;
        long drops = 0;
        for (int op = 0; op < 600; op++) {
            if (random.nextInt(3) > 0) {
                int size = random.nextBoolean() ? 1 + random.nextInt(1500) : 1 + random.nextInt(RxQueue.MAX_FRAME_BYTES);
                byte[] f = new byte[size];
                random.nextBytes(f);
                long record = 8 + ((size + 7L) & ~7L);
                boolean queued = q.offer(frame(f));
                if (queued) {
                    model.add(f);
                    modelBytes += record;
                } else {
                    drops++;
                    // Refused only when it could not fit: too many frames, or the bytes (with a
                    // possible skip to the ring's start) are not there. A skip is shorter than the
                    // largest record, so with that much to spare it would have fitted.
                    assertThat(model.size() >= maxFrames || modelBytes + record + 65_544 > 4 * 65_600)
                            .as("refused with room").isTrue();
                }
            } else if (!model.isEmpty()) {
                byte[] expected = model.poll();
                assertThat(head(q)).isEqualTo(expected);
                q.removeHead();
                modelBytes -= 8 + ((expected.length + 7L) & ~7L);
            } else {
                assertThat(q.headLength()).isEqualTo(-1);
            }
            assertThat(q.size()).isEqualTo(model.size()).isLessThanOrEqualTo(maxFrames);
            assertThat(q.dropped()).isEqualTo(drops);
        }
        while (!model.isEmpty()) {
            assertThat(head(q)).isEqualTo(model.poll());
            q.removeHead();
        }
        assertThat(q.isEmpty()).isTrue();
    }

    @Test
    void aFrameGivenInPiecesArrivesWholeAndCopiesOutIntoPieces() {
        RxQueue q = new RxQueue();
        byte[] data = new byte[3000];
        new Random(1).nextBytes(data);
        try (Arena arena = Arena.ofConfined()) {
            IoVector in = new IoVector();
            in.add(arena.allocate(100).copyFrom(MemorySegment.ofArray(data).asSlice(0, 100)));
            in.add(arena.allocate(2900).copyFrom(MemorySegment.ofArray(data).asSlice(100, 2900)));
            assertThat(q.offer(in)).isTrue();
            IoVector out = new IoVector().add(arena.allocate(7)).add(arena.allocate(1000)).add(arena.allocate(4000));
            q.copyHead(0, out, 5, 3000);
            byte[] got = new byte[3000];
            out.copyTo(5, got, 0, 3000);
            assertThat(got).isEqualTo(data);
            assertThatThrownBy(() -> q.copyHead(1, out, 0, 3000)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> q.copyHead(0, out, 4000, 3000)).isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void badFramesAndAnEmptyQueueAreRefusedClearly() {
        RxQueue q = new RxQueue();
        assertThatThrownBy(() -> q.offer(frame(new byte[0]))).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> q.offer(frame(new byte[RxQueue.MAX_FRAME_BYTES + 1])))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("65535");
        assertThatThrownBy(q::removeHead).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> q.copyHead(0, MemorySegment.ofArray(new byte[1]))).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> new RxQueue(1000, 10)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new RxQueue(RxQueue.DEFAULT_CAPACITY_BYTES, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aWaitingProducerGetsRoomWhenTheConsumerTakesAFrameAndGivesUpWhenClosed() throws Exception {
        RxQueue q = new RxQueue(RxQueue.DEFAULT_CAPACITY_BYTES, 1);
        assertThat(q.offer(frame(new byte[] {1}))).isTrue();
        CompletableFuture<Boolean> second = CompletableFuture.supplyAsync(() -> {
            try {
                return q.offer(frame(new byte[] {2}), Long.MAX_VALUE);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        });
        Thread.sleep(50);
        assertThat(second).isNotDone();
        assertThat(head(q)).containsExactly(1);
        q.removeHead();
        assertThat(second.get(5, TimeUnit.SECONDS)).isTrue();
        assertThat(head(q)).containsExactly(2);

        CompletableFuture<Boolean> third = CompletableFuture.supplyAsync(() -> {
            try {
                return q.offer(frame(new byte[] {3}), Long.MAX_VALUE);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        });
        Thread.sleep(50);
        q.close();
        assertThat(third.get(5, TimeUnit.SECONDS)).as("closed: dropped, not queued").isFalse();
        assertThat(q.dropped()).isEqualTo(1);
        assertThat(Arrays.equals(head(q), new byte[] {2})).as("what was queued can still be taken").isTrue();
    }

    @Test
    void theListenerHearsOfTheFirstFrameAndItsFailureCostsNothing() {
        RxQueue q = new RxQueue();
        int[] calls = new int[1];
        q.onFrame(() -> {
            calls[0]++;
            throw new IllegalStateException("a NIC bug");
        });
        assertThat(q.offer(frame(new byte[] {1}))).isTrue();
        assertThat(q.offer(frame(new byte[] {2}))).isTrue();
        assertThat(calls[0]).as("only on empty -> not empty").isEqualTo(1);
        assertThat(q.size()).isEqualTo(2);
    }
}
