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
    void eachRoundIsOneRatioPerKey_oursOverQemuStorageDaemons_eachSideTheSumOfItsTwoJobs() throws IOException {
        Map<String, String> report = new LinkedHashMap<>();
        report.put("disks", "guestdma=/dev/vda qemu-storage-daemon=/dev/vdb");
        put(report, 1, "randread", "12000", "10000", "10000", "14000");
        put(report, 1, "seqwrite", "500", "1000", "900", "500");
        put(report, 2, "randread", "10000.5", "8000", "7000", "11000");
        put(report, 2, "seqwrite", "600", "400", "300", "700");

        assertThat(VhostUserGuestBench.ratios(report, 2)).containsExactly(
                Map.entry(VhostUserGuestBench.RANDREAD, List.of(22000.0 / 24000, 18000.5 / 18000)),
                Map.entry(VhostUserGuestBench.SEQWRITE, List.of(1500.0 / 1400, 1000.0 / 1000)));
    }

    /** One key's four jobs of a round, as the guest reports them: ours twice, then qemu-storage-daemon's twice. */
    private static void put(Map<String, String> report, int round, String job, String ours1, String ours2,
            String theirs1, String theirs2) {
        report.put(round + "-" + job + "-guestdma-1", ours1);
        report.put(round + "-" + job + "-guestdma-2", ours2);
        report.put(round + "-" + job + "-qemu-storage-daemon-1", theirs1);
        report.put(round + "-" + job + "-qemu-storage-daemon-2", theirs2);
    }

    @Test
    void aJobWithoutIops_failsNamingIt() {
        Map<String, String> report = new LinkedHashMap<>();
        put(report, 1, "randread", "12000", "12000", "10000", "");
        put(report, 1, "seqwrite", "500", "500", "1000", "1000");
        assertThatThrownBy(() -> VhostUserGuestBench.ratios(report, 1)).isInstanceOf(IOException.class)
                .hasMessageContaining("1-randread-qemu-storage-daemon-2");
        Map<String, String> zero = new LinkedHashMap<>(report);
        zero.put("1-randread-qemu-storage-daemon-2", "0");
        assertThatThrownBy(() -> VhostUserGuestBench.ratios(zero, 1)).isInstanceOf(IOException.class);
        Map<String, String> oneJobMissing = new LinkedHashMap<>(report);
        oneJobMissing.put("1-randread-qemu-storage-daemon-2", "10000");
        oneJobMissing.remove("1-seqwrite-guestdma-2");
        assertThatThrownBy(() -> VhostUserGuestBench.ratios(oneJobMissing, 1)).as("a back end's second job missing")
                .isInstanceOf(IOException.class).hasMessageContaining("1-seqwrite-guestdma-2");
        assertThatThrownBy(() -> VhostUserGuestBench.ratios(oneJobMissing, 2)).as("a round the guest never ran")
                .isInstanceOf(IOException.class);
    }

    @Test
    void theWorkloadAlternatesWhichBackEndGoesFirst_andTheBoundFollowsThePlan() {
        var plan = new VhostUserGuestBench.Plan(4, 3, 1, 2);
        String script = plan.workload();
        assertThat(script).contains("--runtime=3 --ramp_time=1", "--runtime=2 --name=warm", "-le 4 ]",
                        "\"guestdma-bench-disk guestdma\") O=$d", "\"guestdma-bench-disk qemu-storage-daemon\") Q=$d")
                .containsSubsequence("job $r randread $A 1", "job $r randread $B 1", "job $r randread $B 2",
                        "job $r randread $A 2", "job $r seqwrite $A 1", "job $r seqwrite $B 1", "job $r seqwrite $B 2",
                        "job $r seqwrite $A 2")
                .contains("if [ $((r % 2)) = 1 ]; then A=\"guestdma $O\"; B=\"qemu-storage-daemon $Q\";"
                        + " else A=\"qemu-storage-daemon $Q\"; B=\"guestdma $O\"; fi");
        assertThat(plan.jobs()).as("4 rounds of 2 keys x A B B A, and the warm-up's 2").isEqualTo(4 * 8 + 2);
        assertThat(plan.fioSeconds()).isEqualTo(4 * 8 * (3 + 1) + 2 * 2);
        assertThat(plan.boundSeconds()).isEqualTo(VhostUserGuestBench.BOOT_SECONDS + 132 + 2 * 34 + 30);
        assertThat(plan.bootQuietSeconds()).isEqualTo(VhostUserGuestBench.BOOT_SECONDS + 4);
        assertThat(plan.quietSeconds()).as("the warm-up's two jobs, 5 s per fio start, 10 s to spare")
                .isEqualTo(2 * 2 + 2 * 5 + 10);
        assertThat(VhostUserGuestBench.QUICK.boundSeconds()).isLessThan(VhostUserGuestBench.FULL.boundSeconds());
        assertThat(VhostUserGuestBench.QUICK.seconds()).as("the same jobs, fewer rounds").isEqualTo(VhostUserGuestBench.FULL.seconds());
        assertThat(VhostUserGuestBench.QUICK.rampSeconds()).isEqualTo(VhostUserGuestBench.FULL.rampSeconds());
    }
}
