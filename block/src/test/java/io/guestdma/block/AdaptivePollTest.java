package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class AdaptivePollTest {

    @Test
    void growsWhileRepliesComeJustAfterSleepingAndStaysWhilePollingCatchesThem() {
        AdaptivePoll poll = new AdaptivePoll(64_000);
        assertThat(poll.window()).isZero();
        poll.waited(30_000, false);
        assertThat(poll.window()).isEqualTo(4_000);
        for (int i = 0; i < 10; i++) {
            poll.waited(30_000, false);
        }
        assertThat(poll.window()).isEqualTo(64_000);
        poll.waited(30_000, true);
        assertThat(poll.window()).as("caught: the window is right").isEqualTo(64_000);
    }

    @Test
    void shrinksToNothingWhenRepliesTakeLongerThanTheLimit() {
        AdaptivePoll poll = new AdaptivePoll(64_000);
        for (int i = 0; i < 10; i++) {
            poll.waited(10_000, false);
        }
        poll.waited(5_000_000, false);
        assertThat(poll.window()).as("one slow reply is noise").isEqualTo(64_000);
        for (int i = 0; i < 5 * AdaptivePoll.SLOW_RUN; i++) {
            poll.waited(5_000_000, false);
        }
        assertThat(poll.window()).as("a slow server costs no spinning").isZero();
    }

    @Test
    void aZeroLimitNeverPolls() {
        AdaptivePoll poll = new AdaptivePoll(0);
        poll.waited(1_000, false);
        assertThat(poll.window()).isZero();
    }
}
