package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.NbdBackend;
import io.guestdma.block.testing.NbdServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The IDE drive on an NBD export whose server dies in the middle of a DMA write: under
 * werror=stop the controller pauses holding the request; once the server is back,
 * {@link PiixIde#resume()} retries it over a new connection, and the image ends up byte for byte
 * what a run without the crash leaves.
 */
class IdeOverNbdTest {
    @TempDir
    Path dir;

    private final List<AutoCloseable> opened = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = opened.size() - 1; i >= 0; i--) {
            opened.get(i).close();
        }
    }

    /** The write the guest issues: 24 sectors at LBA 30 from two PRD entries. */
    private static void startWrite(IdeRig rig, byte[] data) {
        rig.memory.write(BUF_ADDR, data, 0, data.length);
        rig.writePrdt(PRDT_ADDR, new long[][] {{BUF_ADDR, 4096}, {BUF_ADDR + 4096, 8192 | PRD_EOT}});
        rig.outb(REG_DEVICE, LBA);
        rig.bmWrite(BM_CMD, 0);
        rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
        rig.command(CMD_WRITE_DMA, 30, 24);
        rig.bmWrite(BM_CMD, BM_START);
    }

    private static void assertCompleted(IdeRig rig) {
        assertThat(rig.ide.isPaused()).isFalse();
        assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_INTR);
        assertThat(rig.irq14.level()).isTrue();
        assertThat(rig.inb(REG_STATUS)).isEqualTo(DRDY | DSC);
    }

    @ParameterizedTest
    @EnumSource(DmaMode.class)
    void aServerKilledMidWriteUnderStopResumesAfterRestartAndLosesNothing(DmaMode mode) throws Exception {
        byte[] data = pattern(3 * 4096, 5);
        NbdServer[] server = new NbdServer[1];
        try (IdeRig rig = IdeRig.builder().mode(mode)
                .remote(image -> {
                    try {
                        // Each write sits in the server for a second: time to kill it mid-write.
                        server[0] = NbdServer.nbdkit(dir, "ide-" + mode, "--exit-with-parent", "--filter=delay",
                                "file", "file=" + image, "delay-write=1");
                        opened.add(server[0]);
                        BlockBackend nbd = NbdBackend.open(server[0].address(), BlockOptions.defaults(),
                                Duration.ofSeconds(20));
                        opened.add(nbd);
                        return nbd;
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                })
                .configure(c -> c.withPolicies(ErrorPolicy.STOP, ErrorPolicy.STOP))
                .build();
             IdeRig reference = IdeRig.builder().mode(mode).build()) {
            Thread killer = Thread.ofPlatform().start(() -> {
                try {
                    Thread.sleep(300);
                } catch (InterruptedException e) {
                    return;
                }
                server[0].kill();
            });
            startWrite(rig, data);
            killer.join();

            assertThat(rig.ide.isPaused()).as("the lost connection stopped the controller").isTrue();
            assertThat(rig.bmRead(BM_STATUS)).isEqualTo(BM_ACTIVE);
            assertThat(rig.irq14.level()).isFalse();

            server[0].restart();
            rig.ide.resume();
            assertCompleted(rig);
            assertThat(rig.inb(REG_LBA_LOW)).isEqualTo(54);
            ((NbdBackend) rig.disk).flush();

            startWrite(reference, data);
            assertCompleted(reference);
            assertThat(Files.readAllBytes(rig.image)).as("the image equals a run without the crash")
                    .isEqualTo(Files.readAllBytes(reference.image));
            assertThat(rig.diskBytes(30 * 512, data.length)).isEqualTo(data);
            assertThat(((NbdBackend) rig.disk).connectionCount()).isEqualTo(2);
        }
    }
}
