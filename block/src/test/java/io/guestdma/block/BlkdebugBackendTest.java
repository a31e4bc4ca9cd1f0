package io.guestdma.block;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.block.FaultInjectingBackend.Operation;
import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** blkdebug's configuration syntax and its rules, state machine and breakpoints, as QEMU's. */
class BlkdebugBackendTest {
    private static final String RETRY_FLUSH = io.guestdma.block.testing.BlkdebugScripts.RETRY_FLUSH;

    @TempDir
    Path dir;

    private BlkdebugBackend open(String config) throws IOException {
        Path image = dir.resolve("disk.img");
        byte[] bytes = new byte[64 * 512];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) (i / 512);
        }
        Files.write(image, bytes);
        return new BlkdebugBackend(FileChannelBackend.open(image, BlockOptions.defaults()),
                BlkdebugConfig.parse(config, "test.conf"));
    }

    private static void writeSector(BlockBackend disk, long sector, int fill) throws IOException {
        byte[] data = new byte[512];
        Arrays.fill(data, (byte) fill);
        disk.write(sector * 512, ByteBuffer.wrap(data));
    }

    private static byte[] readSector(BlockBackend disk, long sector) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(512);
        disk.read(sector * 512, b);
        return b.array();
    }

    @Test
    void idetestsRetryScriptFailsOneFlushToDiskThenMovesToState2() throws IOException {
        try (BlkdebugBackend disk = open(RETRY_FLUSH)) {
            disk.flush(); // nothing written yet: no flush_to_disk, nothing fails
            assertThat(disk.state()).isEqualTo(1);
            writeSector(disk, 1, 0x5a);
            assertThatThrownBy(disk::flush).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.EIO));
            assertThat(disk.state()).as("set-state ran on the same event").isEqualTo(2);
            disk.flush(); // the retry: the rule was once=on and the state moved on
            assertThat(disk.injected()).hasSize(1);
            assertThat(disk.injected().get(0).operation()).isEqualTo(Operation.FLUSH);
            assertThat(readSector(disk, 1)).containsOnly(0x5a);
        }
    }

    @Test
    void sectorAndIotypeSelectTheRequestsThatFail() throws IOException {
        try (BlkdebugBackend disk = open("""
                # fails reads of sector 5 with ENOSPC's errno until another event injects
                [inject-error]
                event = "read_aio"
                errno = "28"
                sector = "5"
                iotype = "read"
                """)) {
            assertThat(readSector(disk, 4)).containsOnly(4);
            assertThatThrownBy(() -> readSector(disk, 5)).isInstanceOfSatisfying(PosixException.class,
                    e -> assertThat(e.errno()).isEqualTo(Errno.ENOSPC));
            assertThatThrownBy(() -> disk.read(4 * 512, ByteBuffer.allocate(1024)))
                    .as("a request covering the sector").isInstanceOf(PosixException.class);
            writeSector(disk, 5, 1); // not a read
            assertThatThrownBy(() -> readSector(disk, 5)).as("not once: still active")
                    .isInstanceOf(PosixException.class);
        }
    }

    @Test
    void anotherInjectingEventReplacesTheActiveRules() throws IOException {
        try (BlkdebugBackend disk = open("""
                [inject-error]
                event = "read_aio"
                sector = "3"
                [inject-error]
                event = "write_aio"
                sector = "9"
                """)) {
            assertThatThrownBy(() -> readSector(disk, 3)).isInstanceOf(PosixException.class);
            assertThatThrownBy(() -> writeSector(disk, 9, 1)).isInstanceOf(PosixException.class);
            assertThat(readSector(disk, 9)).as("the write moved nothing").containsOnly(9);
            assertThatThrownBy(() -> readSector(disk, 3)).as("read_aio activated its own rule again")
                    .isInstanceOf(PosixException.class);
            writeSector(disk, 3, 7); // sector 9's rule is not for sector 3
            assertThat(disk.state()).isEqualTo(1);
        }
    }

    @Test
    void aBreakpointHoldsTheFlushUntilResumed() throws Exception {
        try (BlkdebugBackend disk = open("")) {
            CountDownLatch holding = new CountDownLatch(1);
            disk.onHold(holding::countDown);
            disk.breakpoint("flush_to_os", "A");
            assertThat(disk.resume("A")).as("nothing held yet").isFalse();
            CompletableFuture<Void> flush = CompletableFuture.runAsync(() -> {
                try {
                    disk.flush();
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            assertThat(holding.await(10, TimeUnit.SECONDS)).isTrue();
            assertThat(disk.awaitHeld("A", 10, TimeUnit.SECONDS)).isTrue();
            assertThat(flush).isNotDone();
            assertThat(disk.resume("A")).isTrue();
            flush.get(10, TimeUnit.SECONDS);
            disk.flush(); // the breakpoint was used up
            assertThat(disk.isHeld("A")).isFalse();
        }
    }

    @Test
    void closingReleasesAHeldRequestWithAnError() throws Exception {
        BlkdebugBackend disk = open("");
        disk.breakpoint("read_aio", "B");
        CompletableFuture<byte[]> read = CompletableFuture.supplyAsync(() -> {
            try {
                return readSector(disk, 0);
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        assertThat(disk.awaitHeld("B", 10, TimeUnit.SECONDS)).isTrue();
        disk.close();
        assertThatThrownBy(() -> read.get(10, TimeUnit.SECONDS)).hasMessageContaining("closed while a request was held");
    }

    @Test
    void badConfigurationsNameTheLine() {
        assertThatThrownBy(() -> BlkdebugConfig.parse("[inject-error]\nevent = flush_to_os\n", "c"))
                .hasMessage("c:2: parse error: the value of 'event' must be in double quotes");
        assertThatThrownBy(() -> BlkdebugConfig.parse("event = \"flush_to_os\"\n", "c"))
                .hasMessage("c:1: no group defined");
        assertThatThrownBy(() -> BlkdebugConfig.parse("[suspend]\n", "c")).hasMessageContaining("c:1: there is no option group 'suspend'");
        assertThatThrownBy(() -> BlkdebugConfig.parse("\n[inject-error]\nerrno = \"5\"\n", "c"))
                .hasMessage("c:2: [inject-error] needs event");
        assertThatThrownBy(() -> BlkdebugConfig.parse("[inject-error]\nevent = \"l2_load\"\n", "c"))
                .hasMessageContaining("c:1: blkdebug event 'l2_load' is not raised by a raw image here");
        assertThatThrownBy(() -> BlkdebugConfig.parse("[set-state]\nevent = \"read_aio\"\nnew_state = \"x\"\n", "c"))
                .hasMessageContaining("Parameter 'new_state' expects a number");
        assertThatThrownBy(() -> BlkdebugConfig.parse("[inject-error]\nevent = \"read_aio\"\nonce = \"maybe\"\n", "c"))
                .hasMessageContaining("Parameter 'once' expects 'on' or 'off'");
        assertThatThrownBy(() -> BlkdebugConfig.parse("[inject-error]\nevent = \"read_aio\"\ncolour = \"red\"\n", "c"))
                .hasMessageContaining("Invalid parameter 'colour'");
        assertThat(BlkdebugConfig.parse(RETRY_FLUSH, "c").rules()).hasSize(2);
    }
}
