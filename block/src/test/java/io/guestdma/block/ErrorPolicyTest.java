package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;
import java.io.IOException;
import org.junit.jupiter.api.Test;

class ErrorPolicyTest {
    private static final PosixException FULL = new PosixException("write", Errno.ENOSPC);

    @Test
    void enospcStopsOnlyForAFullDiskWhereverTheErrnoSits() {
        assertThat(ErrorPolicy.ENOSPC.actionFor(FULL)).isEqualTo(ErrorPolicy.STOP);
        assertThat(ErrorPolicy.ENOSPC.actionFor(new IOException("wrapped", FULL))).isEqualTo(ErrorPolicy.STOP);
        assertThat(ErrorPolicy.ENOSPC.actionFor(new PosixException("write", Errno.EIO))).isEqualTo(ErrorPolicy.REPORT);
        assertThat(ErrorPolicy.ENOSPC.actionFor(new IOException("no errno"))).isEqualTo(ErrorPolicy.REPORT);
        assertThat(ErrorPolicy.ENOSPC.actionFor(null)).isEqualTo(ErrorPolicy.REPORT);
    }

    @Test
    void theOtherPoliciesAreTheirOwnAction() {
        for (ErrorPolicy p : new ErrorPolicy[] {ErrorPolicy.REPORT, ErrorPolicy.IGNORE, ErrorPolicy.STOP}) {
            assertThat(p.actionFor(FULL)).isEqualTo(p);
            assertThat(p.actionFor(null)).isEqualTo(p);
        }
    }

    @Test
    void ioStatusIsKeptForStopOnEitherSideAndEnospcOnWrites() {
        assertThat(ErrorPolicy.keepsIoStatus(ErrorPolicy.REPORT, ErrorPolicy.ENOSPC)).isTrue();
        assertThat(ErrorPolicy.keepsIoStatus(ErrorPolicy.STOP, ErrorPolicy.REPORT)).isTrue();
        assertThat(ErrorPolicy.keepsIoStatus(ErrorPolicy.REPORT, ErrorPolicy.STOP)).isTrue();
        assertThat(ErrorPolicy.keepsIoStatus(ErrorPolicy.IGNORE, ErrorPolicy.REPORT)).isFalse();
        assertThat(ErrorPolicy.keepsIoStatus(ErrorPolicy.REPORT, ErrorPolicy.IGNORE)).isFalse();
    }

    @Test
    void errnoComesFromTheCauseChainOrIsEio() {
        assertThat(ErrorPolicy.errno(new RuntimeException(new IOException(FULL)))).isEqualTo(Errno.ENOSPC);
        assertThat(ErrorPolicy.errno(new IOException("plain"))).isEqualTo(Errno.EIO);
        assertThat(ErrorPolicy.errno(null)).isEqualTo(Errno.EIO);
        IOException a = new IOException("a");
        IOException b = new IOException("b", a);
        a.initCause(b);
        assertThat(ErrorPolicy.errno(a)).as("a cause cycle ends").isEqualTo(Errno.EIO);
    }
}
