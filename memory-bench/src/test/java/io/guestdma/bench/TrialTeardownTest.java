package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.testing.NbdServer;
import io.guestdma.vhostuser.testing.ChildJvm;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * JMH runs a trial's teardown inside the last measured iteration, so what a teardown allocates
 * the first time in a JVM (class loading, lambda linkage, an exception) counts as allocation per
 * operation: the migration's teardown (0.4 MB over the iteration's ~5 migrations) read as 1.23
 * B/page in one fork of five against the 0.45 B/page the migrations allocate, and the NBD
 * teardown's first walk of its scratch directory as 2.5 B/op at depth 1 against 0.5. Each
 * benchmark rehearses its teardown in its setup (see SuiteSettings); these check, in a fresh JVM,
 * the only place a teardown runs, that it then allocates little.
 */
class TrialTeardownTest {
    @Test
    void theMigrationTeardownAllocatesLittle(@TempDir Path dir) throws Exception {
        long bytes = Long.parseLong(ChildJvm.line(dir, List.of("-Xmx512m"), TeardownProbe.class, "teardown=",
                "migration"));
        // 64 KB over the last iteration's ~5 migrations of 32 768 pages each: under 0.4 B/page.
        assertThat(bytes).as("heap bytes of the migration trial's teardown").isLessThan(64 * 1024L);
    }

    @Test
    void theNbdTeardownAllocatesLittle(@TempDir Path dir) throws Exception {
        NbdServer.require("qemu-nbd");
        long bytes = Long.parseLong(ChildJvm.line(dir, List.of("-Xmx256m"), TeardownProbe.class, "teardown=", "nbd"));
        // 16 KB over the last iteration's few thousand writes: well under the 1 B/op of the target.
        assertThat(bytes).as("heap bytes of the NBD trial's teardown").isLessThan(16 * 1024L);
    }
}
