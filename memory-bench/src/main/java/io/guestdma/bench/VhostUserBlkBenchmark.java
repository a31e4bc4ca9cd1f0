package io.guestdma.bench;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.NativeBackend;
import io.guestdma.vhostuser.FakeVmm;
import io.guestdma.vhostuser.VhostUserBackend;
import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioBlkConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * vhost-user-blk's request path without a guest: a {@link FakeVmm} shares a memfd as guest RAM with
 * our back end over its Unix socket, as QEMU does, and submits batches of 32 4 KiB reads on ring 0
 * with one kick; the back end's kick thread wakes from poll, reads the kick, and our virtio-blk
 * (on that thread, as {@code bin/vhost-user-blk} configures it) does the reads from a page-cached image with the native backend and signals the call eventfd.
 * One operation per request; with {@code -prof gc}, the allocation per request over every thread
 * (vhost_user_blk_alloc_bytes_per_request).
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
public class VhostUserBlkBenchmark extends SuiteSettings {
    static final int DEPTH = 32;

    /** The back end, its image and the VMM driving it. */
    @State(Scope.Benchmark)
    public static class Served {
        ImageFile image;
        BlockBackend disk;
        Path dir;
        VhostUserBackend backend;
        FakeVmm vmm;

        /**
         * Builds the image, then (after a rehearsal, see {@link SuiteSettings}) the back end and the VMM.
         *
         * @throws IOException if the image, the socket or the VMM's start fails
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            image = ImageFile.create(64L << 20);
            disk = NativeBackend.open(image.path(), BlockOptions.defaults());
            dir = Files.createTempDirectory("guestdma-vhost-bench");
            serve("rehearsal.sock");
            vmm.batch();
            stop();
            serve("vhost.sock");
        }

        private void serve(String name) throws IOException {
            backend = new VhostUserBackend(m -> new VirtioBlk(m, disk, VirtioBlkConfig.defaults().withIoThreads(false)));
            backend.listen(dir.resolve(name));
            vmm = FakeVmm.start(dir.resolve(name), DEPTH, 4096, false);
        }

        private void stop() {
            vmm.close();
            backend.close();
            ((VirtioBlk) backend.device()).close();
        }

        /**
         * Closes the VMM, the back end, the disk and the image.
         *
         * @throws IOException if closing fails
         */
        @TearDown(Level.Trial)
        public void tearDown() throws IOException {
            stop();
            disk.close();
            image.close();
            Files.deleteIfExists(dir);
        }
    }

    /**
     * @param served the back end and its VMM
     * @return how many of the batch's requests failed (0)
     * @throws IOException if the kick fails
     */
    @Benchmark
    @OperationsPerInvocation(DEPTH)
    public int read4kQd32(Served served) throws IOException {
        return served.vmm.batch();
    }
}
