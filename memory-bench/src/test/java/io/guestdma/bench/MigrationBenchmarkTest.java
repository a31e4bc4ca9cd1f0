package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.vhostuser.testing.ChildJvm;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code migration_alloc_bytes_per_page} divides a measured iteration's heap allocation by about
 * five migrations, and JMH runs the trial's teardown inside the last measured iteration: a
 * teardown that allocates 0.4 MB the first time (class loading, lambda linkage, an asynchronous
 * close's exception) read as 1.2 B/page in one fork of five, against 0.45 B/page that the
 * migrations allocate. The teardown must stay small in a fresh JVM, the only place it runs.
 */
class MigrationBenchmarkTest {
    @Test
    void theTrialTeardownAllocatesLittleInAFreshJvm(@TempDir Path dir) throws Exception {
        long bytes = Long.parseLong(ChildJvm.line(dir, List.of("-Xmx512m"), MigrationTeardownProbe.class, "teardown="));
        // 64 KB over the last iteration's ~5 migrations of 32 768 pages each: under 0.4 B/page.
        assertThat(bytes).as("heap bytes of the trial's teardown").isLessThan(64 * 1024L);
    }
}
