package io.guestdma.ide;

import io.guestdma.block.ErrorPolicy;
import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.block.BlockOptions;
import io.guestdma.block.FaultInjectingBackend;
import io.guestdma.block.FaultInjectingBackend.Fault;
import io.guestdma.block.FaultInjectingBackend.Operation;
import io.guestdma.block.NbdBackend;
import io.guestdma.block.testing.NbdServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Backend faults (EIO, ENOSPC, short transfers, failed flushes) injected at chosen requests of a
 * fixed guest workload, under each error policy and in both DMA modes. The guest is modelled as a
 * driver that retries a command reported as failed (as Linux's libata does) and the host as an
 * operator that fixes the disk and resumes a stopped VM. Whatever the fault: under REPORT the guest
 * sees ERR+ABRT with an interrupt for the failed command and its retry restores everything; under
 * STOP the guest sees nothing but a held command and the image ends byte for byte equal to a
 * fault-free run; under IGNORE the guest sees success, as in QEMU. A subset runs again with the
 * disk behind qemu-nbd (the faults injected in front of the NBD client).
 */
class FaultInjectionTest {

    /** One guest command of the workload. */
    private record Step(String name, int cmd, long lba, int sectors, long buffer) {
        boolean isDma() {
            return cmd != CMD_FLUSH_CACHE && cmd != CMD_FLUSH_CACHE_EXT;
        }

        boolean toMemory() {
            return cmd == CMD_READ_DMA || cmd == CMD_READ_DMA_EXT;
        }
    }

    /** What the guest saw for one command (after the driver's retries). */
    private record Seen(String step, int attempts, int firstStatus, int firstError, boolean firstIrq, int firstBmStatus,
                        int finalStatus) {
    }

    private static final long DATA_A = 0x200000;
    private static final long DATA_B = 0x300000;
    private static final long DATA_C = 0x400000;
    private static final long READ_BACK = 0x500000;

    private static final List<Step> WORKLOAD = List.of(
            new Step("write A", CMD_WRITE_DMA, 30, 24, DATA_A),
            new Step("write B (LBA48, two COPY chunks)", CMD_WRITE_DMA_EXT, 1000, 300, DATA_B),
            new Step("flush", CMD_FLUSH_CACHE, 0, 0, 0),
            new Step("read A back", CMD_READ_DMA, 30, 24, READ_BACK),
            new Step("write C", CMD_WRITE_DMA, 5, 8, DATA_C),
            new Step("flush ext", CMD_FLUSH_CACHE_EXT, 0, 0, 0));

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        for (DmaMode mode : DmaMode.values()) {
            for (ErrorPolicy policy : ErrorPolicy.values()) {
                for (Fault fault : Fault.values()) {
                    list.add(Arguments.of(mode, policy, Operation.WRITE, 1L, fault));
                    list.add(Arguments.of(mode, policy, Operation.WRITE, 2L, fault));
                    list.add(Arguments.of(mode, policy, Operation.READ, 2L, fault)); // #1 is attach()'s geometry probe
                    list.add(Arguments.of(mode, policy, Operation.FLUSH, 2L, fault));
                }
            }
        }
        return list.stream();
    }

    /** The NBD runs: reads, writes and flushes failing with EIO or short, reported or stopped. */
    static Stream<Arguments> nbdCases() {
        List<Arguments> list = new ArrayList<>();
        for (ErrorPolicy policy : new ErrorPolicy[] {ErrorPolicy.REPORT, ErrorPolicy.STOP}) {
            for (Fault fault : new Fault[] {Fault.EIO, Fault.SHORT_TRANSFER}) {
                list.add(Arguments.of(DmaMode.MAP, policy, Operation.WRITE, 2L, fault));
                list.add(Arguments.of(DmaMode.MAP, policy, Operation.READ, 2L, fault));
            }
            list.add(Arguments.of(DmaMode.MAP, policy, Operation.FLUSH, 2L, Fault.EIO));
        }
        return list.stream();
    }

    /**
     * @param served where NBD servers and clients go to be closed after the rig, or null for a
     *     local image
     */
    private static IdeRig rig(DmaMode mode, ErrorPolicy policy, FaultInjectingBackend[] holder,
                              List<AutoCloseable> served) {
        IdeRig.Builder builder = IdeRig.builder().mode(mode)
                .decorate(b -> holder[0] = new FaultInjectingBackend(b))
                .configure(c -> c.withPolicies(policy, policy));
        if (served != null) {
            builder.remote(image -> {
                try {
                    NbdServer server = NbdServer.qemuNbd(image, image.getParent(), "faults");
                    served.add(server);
                    NbdBackend nbd = NbdBackend.open(server.address(), BlockOptions.defaults());
                    served.add(nbd);
                    return nbd;
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
        return builder.build();
    }

    private static void closeAll(List<AutoCloseable> served) throws Exception {
        for (int i = served.size() - 1; i >= 0; i--) {
            served.get(i).close();
        }
    }

    private static void fillGuest(IdeRig rig) {
        Random random = new Random(99);
        for (long buffer : new long[] {DATA_A, DATA_B, DATA_C}) {
            byte[] bytes = new byte[300 * 512];
            random.nextBytes(bytes);
            rig.memory.write(buffer, bytes, 0, bytes.length);
        }
    }

    /** Runs the workload as a retrying driver and a resuming operator; returns what the guest saw. */
    private static List<Seen> run(IdeRig rig, FaultInjectingBackend disk) {
        List<Seen> seen = new ArrayList<>();
        for (Step step : WORKLOAD) {
            int attempts = 0;
            Seen first = null;
            int status;
            while (true) {
                attempts++;
                int[] r = issue(rig, step);
                if (rig.ide.isPaused()) {
                    // STOP: the VM is paused holding the request; the guest saw no completion.
                    assertThat(rig.irq14.level()).as("%s: no interrupt while stopped", step.name()).isFalse();
                    if (step.isDma()) {
                        assertThat(rig.bmRead(BM_STATUS) & BM_ACTIVE).as("%s: still active", step.name()).isEqualTo(BM_ACTIVE);
                    }
                    disk.heal();
                    rig.ide.resume();
                    assertThat(rig.ide.isPaused()).isFalse();
                    r = complete(rig, step);
                }
                status = r[0];
                if (first == null) {
                    first = new Seen(step.name(), 0, r[0], r[1], r[2] != 0, r[3], 0);
                }
                if ((status & ERR) == 0 || attempts == 3) {
                    break;
                }
                disk.heal(); // the operator fixes the disk; the driver's retry then succeeds
            }
            seen.add(new Seen(step.name(), attempts, first.firstStatus(), first.firstError(), first.firstIrq(),
                    first.firstBmStatus(), status));
        }
        return seen;
    }

    /** Issues one command; returns {ATA status, error, irq before the status read, bm status}. */
    private static int[] issue(IdeRig rig, Step step) {
        rig.outb(REG_DEVICE, LBA);
        if (!step.isDma()) {
            rig.outb(REG_COMMAND, step.cmd());
            return rig.ide.isPaused() ? null : complete(rig, step);
        }
        int pieces = (step.sectors() * 512 + 4095) / 4096;
        long[][] prdt = new long[pieces][];
        int left = step.sectors() * 512;
        for (int i = 0; i < pieces; i++) {
            int n = Math.min(4096, left);
            // Every other page: a real scatter-gather list.
            prdt[i] = new long[] {step.buffer() + 8192L * i, n | (i == pieces - 1 ? PRD_EOT : 0)};
            left -= n;
        }
        rig.writePrdt(PRDT_ADDR, prdt);
        rig.bmWrite(BM_CMD, 0);
        rig.bmWrite(BM_STATUS, BM_INTR | BM_ERROR);
        rig.ide.busMasterWrite(BM_PRDT, 4, (int) PRDT_ADDR);
        boolean ext = step.cmd() == CMD_WRITE_DMA_EXT || step.cmd() == CMD_READ_DMA_EXT;
        if (ext) {
            rig.outb(REG_NSECTORS, step.sectors() >>> 8);
            rig.outb(REG_LBA_LOW, (int) (step.lba() >>> 24) & 0xff);
            rig.outb(REG_LBA_MID, 0);
            rig.outb(REG_LBA_HIGH, 0);
        }
        rig.outb(REG_NSECTORS, step.sectors() & 0xff);
        rig.outb(REG_LBA_LOW, (int) step.lba() & 0xff);
        rig.outb(REG_LBA_MID, (int) (step.lba() >>> 8) & 0xff);
        rig.outb(REG_LBA_HIGH, (int) (step.lba() >>> 16) & 0xff);
        rig.outb(REG_COMMAND, step.cmd());
        rig.bmWrite(BM_CMD, BM_START | (step.toMemory() ? BM_TO_MEMORY : 0));
        return rig.ide.isPaused() ? null : complete(rig, step);
    }

    private static int[] complete(IdeRig rig, Step step) {
        int bm = step.isDma() ? rig.bmRead(BM_STATUS) : 0;
        boolean irq = rig.irq14.level();
        int status = rig.inb(REG_STATUS);
        int error = rig.inb(REG_ERROR);
        if (step.isDma()) {
            rig.bmWrite(BM_CMD, 0);
        }
        return new int[] {status, error, irq ? 1 : 0, bm};
    }

    private static byte[] image(IdeRig rig) {
        try {
            return Files.readAllBytes(rig.image);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static byte[] faultFreeImage(DmaMode mode) {
        FaultInjectingBackend[] holder = new FaultInjectingBackend[1];
        try (IdeRig rig = rig(mode, ErrorPolicy.REPORT, holder, null)) {
            fillGuest(rig);
            List<Seen> seen = run(rig, holder[0]);
            assertThat(seen).allSatisfy(s -> assertThat(s.attempts()).isEqualTo(1));
            return image(rig);
        }
    }

    @ParameterizedTest(name = "{0} {1}: {4} at {2} #{3}")
    @MethodSource("cases")
    void theGuestSeesWhatItsPolicyPromisesAndNothingIsLost(DmaMode mode, ErrorPolicy policy, Operation op, long request,
                                                          Fault fault) {
        check(mode, policy, op, request, fault, null);
    }

    @ParameterizedTest(name = "over NBD, {0} {1}: {4} at {2} #{3}")
    @MethodSource("nbdCases")
    void overNbdTheGuestSeesTheSame(DmaMode mode, ErrorPolicy policy, Operation op, long request, Fault fault)
            throws Exception {
        List<AutoCloseable> served = new ArrayList<>();
        try {
            check(mode, policy, op, request, fault, served);
        } finally {
            closeAll(served);
        }
    }

    private static void check(DmaMode mode, ErrorPolicy policy, Operation op, long request, Fault fault,
                              List<AutoCloseable> served) {
        byte[] expected = faultFreeImage(mode);
        FaultInjectingBackend[] holder = new FaultInjectingBackend[1];
        try (IdeRig rig = rig(mode, policy, holder, served)) {
            FaultInjectingBackend disk = holder[0];
            disk.failAt(op, request, fault);
            fillGuest(rig);
            List<Seen> seen = run(rig, disk);

            assertThat(disk.injected()).as("the fault fired").hasSize(1);
            assertThat(seen).as("every command ends without error").allSatisfy(s -> assertThat(s.finalStatus() & ERR).isZero());
            List<Seen> retried = seen.stream().filter(s -> s.attempts() > 1).toList();
            switch (policy) {
                case REPORT -> {
                    assertThat(retried).as("exactly the failed command was reported, and retried").hasSize(1);
                    Seen failed = retried.get(0);
                    assertThat(failed.firstStatus() & (ERR | DRDY | BSY | DRQ)).isEqualTo(ERR | DRDY);
                    assertThat(failed.firstError()).isEqualTo(ABRT);
                    assertThat(failed.firstIrq()).as("interrupt with the error").isTrue();
                    if (op != Operation.FLUSH) {
                        assertThat(failed.firstBmStatus() & (BM_ACTIVE | BM_INTR)).as("bus master done").isEqualTo(BM_INTR);
                    }
                    assertThat(image(rig)).as("after the guest's retry, the image equals a fault-free run").isEqualTo(expected);
                }
                case STOP -> {
                    assertThat(retried).as("the guest never saw an error").isEmpty();
                    assertThat(image(rig)).as("byte for byte equal to a fault-free run").isEqualTo(expected);
                }
                case IGNORE -> assertThat(retried).as("errors are swallowed, as in QEMU").isEmpty();
            }
            if (policy != ErrorPolicy.IGNORE) {
                for (int page = 0; page < 3; page++) {
                    assertThat(rig.ram(READ_BACK + 8192L * page, 4096)).as("read back what was written, page %d", page)
                            .isEqualTo(rig.ram(DATA_A + 8192L * page, 4096));
                }
            }
        }
    }
}
