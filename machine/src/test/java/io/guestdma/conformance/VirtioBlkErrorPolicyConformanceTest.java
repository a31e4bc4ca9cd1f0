package io.guestdma.conformance;

import io.guestdma.conformance.VirtioDriver.Buf;
import java.util.List;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * virtio-blk-pci's rerror/werror against QEMU 7.2, both launched as libqtest launches QEMU: a
 * blkdebug rule fails one request, and the QMP events (BLOCK_IO_ERROR with QEMU's fields, STOP and
 * RESUME), run states, used ring, status byte and disk must be the same; under {@code stop} the
 * request is held and {@code cont} retries it; {@code werror=enospc}, the default, stops only for a
 * full host disk; BLOCK_IO_ERROR carries {@code nospace} only where a stop or enospc policy keeps
 * QEMU's I/O status.
 */
@Timeout(120) // a missing event would otherwise block on the QMP socket for good
class VirtioBlkErrorPolicyConformanceTest {
    private static final long MiB = 1 << 20;

    /** Fails the first matching request; reads and writes only at sector 16, the one the script asks for. */
    private static final String FAIL_ONCE = """
            [inject-error]
            event = "%s"
            errno = "%s"
            once = "on"
            %s
            """;

    @ParameterizedTest(name = "{0} fails with errno {1} under {2}")
    @CsvSource(delimiter = ';', value = {
        "write_aio; 5; werror=stop",
        "write_aio; 28; werror=enospc",
        "write_aio; 28; cache=writeback",
        "write_aio; 5; cache=writeback",
        "write_aio; 5; werror=report",
        "write_aio; 5; werror=report,rerror=stop",
        "write_aio; 5; werror=ignore,rerror=stop",
        "read_aio; 5; rerror=stop",
        "read_aio; 5; rerror=report,werror=stop",
        "flush_to_disk; 5; werror=stop",
    })
    void aFailedRequestFollowsThePolicy(String event, String errno, String policy) throws Exception {
        IdeTestUnderLibqtestTest.assertSame("virtio-blk " + event + " errno " + errno + " " + policy,
                List.of("-drive", "file=blkdebug:CFG:IMG,if=none,id=d0,format=raw," + policy,
                        "-device", "virtio-blk-pci,drive=d0,addr=04.0"),
                Conformance.Image.patterned(8 * MiB, MiB, 3), FAIL_ONCE.formatted(event, errno,
                        event.equals("flush_to_disk") ? "" : "sector = \"16\""),
                (ide, qmp) -> {
                    VirtioDriver d = new VirtioDriver(ide.qts);
                    Observations log = ide.log;
                    d.plugIn(true);
                    d.start(VirtioBlkConformanceTest.FEATURES, 16);
                    d.c.memset(VirtioBlkConformanceTest.DATA, 4096, 0x6b);
                    int type = event.equals("read_aio") ? 0 : 1;
                    VirtioBlkConformanceTest.header(d, type, 16);
                    List<Buf> chain = VirtioBlkConformanceTest.chain(
                            new Buf(VirtioBlkConformanceTest.DATA, 4096, type == 0));
                    if (event.equals("flush_to_disk")) {
                        VirtioBlkConformanceTest.request(d, log, "write before the flush", chain, false);
                        VirtioBlkConformanceTest.header(d, 4, 0);
                        chain = VirtioBlkConformanceTest.chain();
                    }
                    d.c.memset(VirtioBlkConformanceTest.STATUS, 1, 0x55);
                    int before = d.usedIdx();
                    d.offer(d.place(chain));
                    d.kick();
                    boolean stops = event.equals("read_aio") ? policy.startsWith("rerror=stop")
                            : policy.startsWith("werror=stop") || errno.equals("28") && !policy.contains("werror=report");
                    if (stops) {
                        qmp.awaitEvent("STOP");
                        qmp.execute("{\"execute\": \"query-status\"}");
                        log.hex("used idx while stopped", d.usedIdx());
                        log.hex("status byte while stopped", d.read(VirtioBlkConformanceTest.STATUS, 1));
                        qmp.execute("{\"execute\": \"cont\"}");
                    } else {
                        qmp.awaitEvent("BLOCK_IO_ERROR");
                    }
                    log.flag("done", d.await((before + 1) & 0xffff));
                    VirtioBlkConformanceTest.observe(d, log, "failed request", before);
                    qmp.execute("{\"execute\": \"query-status\"}");
                });
    }
}
