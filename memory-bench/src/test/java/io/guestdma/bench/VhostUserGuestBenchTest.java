package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The guest measurement's plan and how a guest's report becomes per-round ratios (no guest booted). */
class VhostUserGuestBenchTest {
    @Test
    void eachRoundIsOneRatioPerKey_oursOverQemuStorageDaemons() throws IOException {
        Map<String, String> report = new LinkedHashMap<>();
        report.put("disks", "guestdma=/dev/vda qemu-storage-daemon=/dev/vdb");
        report.put("1-randread-guestdma", "12000");
        report.put("1-randread-qemu-storage-daemon", "10000");
        report.put("1-seqwrite-guestdma", "500");
        report.put("1-seqwrite-qemu-storage-daemon", "1000");
        report.put("2-randread-qemu-storage-daemon", "8000");
        report.put("2-randread-guestdma", "10000.5");
        report.put("2-seqwrite-qemu-storage-daemon", "400");
        report.put("2-seqwrite-guestdma", "600");

        assertThat(VhostUserGuestBench.ratios(report, 2)).containsExactly(
                Map.entry(VhostUserGuestBench.RANDREAD, List.of(1.2, 10000.5 / 8000)),
                Map.entry(VhostUserGuestBench.SEQWRITE, List.of(0.5, 1.5)));
    }

    @Test
    void aJobWithoutIops_failsNamingIt() {
        Map<String, String> report = Map.of("1-randread-guestdma", "12000", "1-randread-qemu-storage-daemon", "",
                "1-seqwrite-guestdma", "500", "1-seqwrite-qemu-storage-daemon", "1000");
        assertThatThrownBy(() -> VhostUserGuestBench.ratios(report, 1)).isInstanceOf(IOException.class)
                .hasMessageContaining("1-randread-qemu-storage-daemon");
        Map<String, String> zero = new LinkedHashMap<>(report);
        zero.put("1-randread-qemu-storage-daemon", "0");
        assertThatThrownBy(() -> VhostUserGuestBench.ratios(zero, 1)).isInstanceOf(IOException.class);
        assertThatThrownBy(() -> VhostUserGuestBench.ratios(report, 2)).as("a round the guest never ran")
                .isInstanceOf(IOException.class);
    }

    @Test
    void theWorkloadAlternatesWhichBackEndGoesFirst_andTheBoundFollowsThePlan() {
        var plan = new VhostUserGuestBench.Plan(4, 3, 1, 2);
        String script = plan.workload();
        assertThat(script).contains("--runtime=3 --ramp_time=1", "--runtime=2 --name=warm", "-le 4 ]",
                        "\"guestdma-bench-disk guestdma\") O=$d", "\"guestdma-bench-disk qemu-storage-daemon\") Q=$d")
                .containsSubsequence("job $r randread $A", "job $r randread $B", "job $r seqwrite $A", "job $r seqwrite $B")
                .contains("if [ $((r % 2)) = 1 ]; then A=\"guestdma $O\"; B=\"qemu-storage-daemon $Q\";"
                        + " else A=\"qemu-storage-daemon $Q\"; B=\"guestdma $O\"; fi");
        assertThat(plan.jobs()).isEqualTo(4 * 4 + 2);
        assertThat(plan.fioSeconds()).isEqualTo(4 * 4 * (3 + 1) + 2 * 2);
        assertThat(plan.boundSeconds()).isEqualTo(VhostUserGuestBench.BOOT_SECONDS + 68 + 2 * 18 + 30);
        assertThat(plan.bootQuietSeconds()).isEqualTo(VhostUserGuestBench.BOOT_SECONDS + 4);
        assertThat(plan.quietSeconds()).as("the warm-up's two jobs, 5 s per fio start, 10 s to spare")
                .isEqualTo(2 * 2 + 2 * 5 + 10);
        assertThat(VhostUserGuestBench.QUICK.boundSeconds()).isLessThan(VhostUserGuestBench.FULL.boundSeconds());
        assertThat(VhostUserGuestBench.QUICK.seconds()).as("the same jobs, fewer rounds").isEqualTo(VhostUserGuestBench.FULL.seconds());
        assertThat(VhostUserGuestBench.QUICK.rampSeconds()).isEqualTo(VhostUserGuestBench.FULL.rampSeconds());
    }
}
