package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The virtual clock's timers, and qtest's clock commands moving it. */
class VirtualClockTest {

    @Test
    void timersFireInDeadlineOrderWithTheClockAtTheirDeadline() {
        VirtualClock clock = new VirtualClock();
        List<String> fired = new ArrayList<>();
        clock.schedule(300, () -> fired.add("c@" + clock.nanos()));
        clock.schedule(100, () -> fired.add("a@" + clock.nanos()));
        clock.schedule(100, () -> fired.add("b@" + clock.nanos()));
        VirtualClock.Timer cancelled = clock.schedule(200, () -> fired.add("cancelled"));
        assertThat(cancelled.cancel()).isTrue();
        assertThat(cancelled.cancel()).isFalse();
        assertThat(clock.nextDeadline()).isEqualTo(100);
        assertThat(clock.step(250)).isEqualTo(250);
        assertThat(fired).containsExactly("a@100", "b@100");
        assertThat(clock.advanceTo(10)).as("never backwards").isEqualTo(250);
        assertThat(clock.stepToNextDeadline()).isEqualTo(300);
        assertThat(fired).containsExactly("a@100", "b@100", "c@300");
        assertThat(clock.stepToNextDeadline()).as("no timers: stays").isEqualTo(300);
        assertThat(clock.nextDeadline()).isEqualTo(-1);
    }

    @Test
    void aTimerMayRearmItselfAndFiresAgainInTheSameMove() {
        VirtualClock clock = new VirtualClock();
        List<Long> ticks = new ArrayList<>();
        Runnable[] tick = new Runnable[1];
        tick[0] = () -> {
            ticks.add(clock.nanos());
            clock.schedule(clock.nanos() + 1000, tick[0]);
        };
        clock.schedule(1000, tick[0]);
        clock.advanceTo(3500);
        assertThat(ticks).containsExactly(1000L, 2000L, 3000L);
        assertThat(clock.nextDeadline()).isEqualTo(4000);
    }

    @Test
    void qtestClockCommandsMoveTheMachinesClockAndFireItsTimers() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        List<Long> fired = new ArrayList<>();
        try (PcMachine machine = new PcMachine(MachineConfig.parse(List.of("-m", "1M")))) {
            machine.clock().schedule(5000, () -> fired.add(machine.clock().nanos()));
            machine.clock().schedule(7000, () -> fired.add(machine.clock().nanos()));
            String script = "clock_step\nclock_step 100\nclock_set 6000\nclock_set 10\nclock_step\nclock_step\n";
            new QtestServer(machine, new ByteArrayInputStream(script.getBytes(StandardCharsets.ISO_8859_1)), out)
                    .serve();
        }
        assertThat(out.toString(StandardCharsets.ISO_8859_1).lines())
                .containsExactly("OK 5000", "OK 5100", "OK 6000", "OK 6000", "OK 7000", "OK 7000");
        assertThat(fired).containsExactly(5000L, 7000L);
    }
}
