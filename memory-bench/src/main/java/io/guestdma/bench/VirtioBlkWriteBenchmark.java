package io.guestdma.bench;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.NativeBackend;
import java.io.IOException;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * virtio-blk 64 KiB writes at queue depth 1 on the native backend over a page-cached image: the
 * device zero-copy (MAP_NATIVE) and the same device moving the data through the copy path's heap buffer
 * (COPY, as the IDE's COPY mode). Their ratio is virtio_blk_write_64k_qd1_map_over_copy.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class VirtioBlkWriteBenchmark extends SuiteSettings {
    /** MAP_NATIVE (zero-copy) or COPY (a heap buffer): the IDE benchmark's names, so one -p covers both. */
    @Param({"MAP_NATIVE", "COPY"})
    public String path;

    private VirtioBlkWorkload workload;
    private ImageFile image;
    private BlockBackend disk;

    /**
     * Builds the image and the device (after rehearsing a device).
     *
     * @throws IOException if the image cannot be created
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        image = ImageFile.create(64L << 20);
        disk = NativeBackend.open(image.path(), BlockOptions.defaults());
        boolean copy = path.equals("COPY");
        new VirtioBlkWorkload(disk, 1, 1, 65536, true, copy).close();
        workload = new VirtioBlkWorkload(disk, 1, 1, 65536, true, copy);
    }

    /**
     * Closes the device, the disk and the image.
     *
     * @throws IOException if closing fails
     */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        workload.close();
        disk.close();
        image.close();
    }

    /** @return the used index */
    @Benchmark
    public int write64kQd1() {
        return workload.batch(0);
    }
}
