package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The C reference is built and run for real, and every way it can fail ends in a reason. */
class CReferenceTest {

    @Test
    void withACompilerEveryCaseIsMeasuredAndTheImageIsGone(@TempDir Path dir) throws Exception {
        CReference c = CReference.measure(dir, 0.05);
        assumeThat(c).as("a C compiler on this machine").isInstanceOf(CReference.Measured.class);
        CReference.Measured m = (CReference.Measured) c;
        assertThat(m.opsPerSecond()).containsOnlyKeys("write.4k", "read.4k", "write.64k", "read.64k", "write.1m", "read.1m");
        assertThat(m.opsPerSecond().values()).allSatisfy(ops -> assertThat(ops).isPositive());
        assertThat(c.ops("write", "64k")).isPresent();
        try (var left = Files.list(dir)) {
            assertThat(left).as("the reference's image is unlinked").isEmpty();
        }
    }

    @Test
    void aMissingCompilerOrAFailedBuildOrRunIsAReasonNotAnException(@TempDir Path dir) {
        assertThat(CReference.measure(Path.of("/bin/false"), dir, 0.05)).isInstanceOfSatisfying(CReference.NotMeasured.class,
                n -> assertThat(n.reason()).contains("could not build"));
        // A compiler that "builds" nothing runnable: the run step fails and says so.
        assertThat(CReference.measure(Path.of("/bin/true"), dir, 0.05)).isInstanceOfSatisfying(CReference.NotMeasured.class,
                n -> assertThat(n.reason()).contains(CReference.SOURCE));
        assertThat(CReference.measure(Path.of("/bin/true"), dir, 0.05).ops("write", "64k")).isEmpty();
        // An image directory the reference cannot create its image in.
        assumeThat(CReference.measure(dir, 0.05)).isInstanceOf(CReference.Measured.class);
        assertThat(CReference.measure(Path.of("/proc/guestdma-no-such-dir"), 0.05)).isInstanceOfSatisfying(CReference.NotMeasured.class,
                n -> assertThat(n.reason()).isNotBlank());
    }
}
