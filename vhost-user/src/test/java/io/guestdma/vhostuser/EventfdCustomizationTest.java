package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.vhostuser.testing.ChildJvm;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kick thread's downcalls (eventfd write and read, poll) are customized by the JDK when
 * {@code Linux} is initialized, not at their 128th call from interpreted or C1 code, whose moment
 * depends on the JIT (a hidden class, tens of KB of heap, in the middle of serving requests). In an
 * interpreted JVM, where every call counts, their first 300 calls allocate nothing.
 */
class EventfdCustomizationTest {
    @Test
    void theKickPathsFirstCallsAllocateNothing(@TempDir Path dir) throws IOException, InterruptedException {
        String kick = ChildJvm.line(dir, List.of("-Xint", "-Xmx64m"), EventfdCustomizationProbe.class, "kick=");
        assertThat(Long.parseLong(kick)).as("heap bytes of 300 signal/poll/drain rounds").isLessThan(1024);
    }
}
