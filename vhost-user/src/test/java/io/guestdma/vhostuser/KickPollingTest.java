package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.virtio.VirtioBlk;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * A kick thread that polls its ring before it sleeps (QEMU's {@code poll-max-ns}): a guest that
 * makes requests available in a steady stream is served without kicking, is told not to kick
 * while the thread polls, and a guest whose requests come further apart than the longest poll
 * costs no polling at all.
 */
class KickPollingTest {
    /** VRING_USED_F_NO_NOTIFY in the used ring's flags. */
    private static final int NO_NOTIFY = 1;

    @Test
    void thePollBoundIsChecked() {
        assertThatThrownBy(() -> new VhostUserBackend(m -> {
            throw new AssertionError("not built for a bad bound");
        }, Duration.ofNanos(-1))).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0 to 1 s");
        assertThatThrownBy(() -> new VhostUserBackend(m -> {
            throw new AssertionError("not built for a bad bound");
        }, Duration.ofSeconds(2))).isInstanceOf(IllegalArgumentException.class);
    }

    /** A back end whose kick threads serve the ring themselves, as bin/vhost-user-blk's, and poll. */
    abstract static class Polled extends BlkFrontEndFixture {
        static final long DATA = GUEST + 0x20000;

        @Override
        boolean ioThreads() {
            return false;
        }

        /** Makes {@code count} kicked read requests available, each {@code gapMillis} after the last one's completion. */
        int readsSpacedBy(int count, long gapMillis) throws Exception {
            int used = 0;
            for (int i = 0; i < count; i++) {
                submit(request(VirtioBlk.T_IN, i, DATA, 512, false));
                awaitUsed(++used);
                Thread.sleep(gapMillis);
            }
            return used;
        }

        int usedIndex() {
            return Short.toUnsignedInt(ram().get(SHORT, ring(0) + USED + 2));
        }

        boolean toldNotToKick() {
            return (ram().get(SHORT, ring(0) + USED) & NO_NOTIFY) != 0;
        }
    }

    /** Requests 20 ms apart, the poll allowed a second: it grows until it finds them. */
    @Nested
    class Streaming extends Polled {
        @Override
        Duration pollMax() {
            return Duration.ofSeconds(1);
        }

        @Test
        void aRequestMadeAvailableWhileThePollRunsIsServedWithoutAKick() throws Exception {
            try (FrontEnd fe = connectAndStart()) {
                // Each wait (20 ms) is longer than the poll and within the bound, so the poll doubles
                // from 4 us until it outlasts the wait (about 14 rounds).
                int used = readsSpacedBy(24, 20);
                // The poll that follows this request's completion lasts longer than 20 ms: the
                // request below is made available once it has begun.
                submit(request(VirtioBlk.T_IN, 24, DATA, 512, false));
                awaitUsed(++used);
                // A thread left unscheduled for the poll's 30 ms or so (a loaded machine) finds the
                // poll over, and then the guest must kick: a request made available after the guest
                // was told to kick again proves nothing. Such a round kicks and tries the next poll
                // (longer for the late kick); a request made available while the guest was still
                // told not to kick must be served without one.
                boolean servedWithoutAKick = false;
                for (int round = 0; round < 20 && !servedWithoutAKick; round++) {
                    // Well within the 1 s bound: a longer wait would drop the poll to 0.
                    long deadline = System.nanoTime() + 200_000_000L;
                    while (!toldNotToKick() && System.nanoTime() < deadline) {
                        Thread.onSpinWait();
                    }
                    submit(0, request(VirtioBlk.T_IN, 7, DATA, 512, false), false);
                    // A driver's full barrier (virtio_mb): the index is out before the flag is read.
                    VarHandle.fullFence();
                    servedWithoutAKick = toldNotToKick();
                    if (!servedWithoutAKick) {
                        Linux.signal(kick);
                    }
                    awaitUsed(++used);
                    assertThat(ram().get(ValueLayout.JAVA_BYTE, ring(0) + 0x11000)).as("status OK").isZero();
                }
                assertThat(servedWithoutAKick).as("never told not to kick across a request: nobody polls").isTrue();
            }
        }
    }

    /** Requests 50 ms apart, the poll allowed 5 ms: it never starts. */
    @Nested
    class Sparse extends Polled {
        @Override
        Duration pollMax() {
            return Duration.ofMillis(5);
        }

        @Test
        void aGuestWhoseRequestsComeFurtherApartThanTheBoundIsNotPolled() throws Exception {
            try (FrontEnd fe = connectAndStart()) {
                int used = readsSpacedBy(5, 50);
                assertThat(toldNotToKick()).as("told to kick: nobody polls").isFalse();
                submit(0, request(VirtioBlk.T_IN, 7, DATA, 512, false), false);
                Thread.sleep(100);
                assertThat(usedIndex()).as("not served without a kick").isEqualTo(used);
                Linux.signal(kick);
                awaitUsed(++used);
            }
        }
    }

    /** Polling off (the default): a request nobody kicks for waits. */
    @Nested
    class Off extends Polled {
        @Override
        Duration pollMax() {
            return Duration.ZERO;
        }

        @Test
        void withoutPollingOnlyAKickServesARequest() throws Exception {
            try (FrontEnd fe = connectAndStart()) {
                int used = readsSpacedBy(1, 50); // the device's drain has ended: the ring is left to the guest's kick
                submit(0, request(VirtioBlk.T_IN, 1, DATA, 512, false), false);
                Thread.sleep(100);
                assertThat(usedIndex()).isEqualTo(used);
                Linux.signal(kick);
                awaitUsed(++used);
            }
        }
    }
}
