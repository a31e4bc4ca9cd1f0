package io.guestdma.block.testing;

/** blkdebug configuration files that tests in several modules share. */
public final class BlkdebugScripts {
    /**
     * The script QEMU's ide-test writes for its flush retry cases: the first flush that reaches
     * the disk fails with EIO (once, in state 1), and the same event moves the state to 2.
     */
    public static final String RETRY_FLUSH = """
            [inject-error]
            event = "flush_to_disk"
            errno = "5"
            state = "1"
            immediately = "off"
            once = "on"
            [set-state]
            event = "flush_to_disk"
            new_state = "2"
            """;

    private BlkdebugScripts() {
    }
}
