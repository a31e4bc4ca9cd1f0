package io.guestdma.bench;

import java.io.IOException;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * IDE DMA end to end: a READ DMA or WRITE DMA command issued through the PIIX controller's
 * registers, the PRD table walked, the data moved between scattered guest RAM and a raw image in
 * the page cache. COPY is the engine's heap-buffer mode; the MAP paths are the zero-copy engine on
 * the FileChannel and on the native backend. One operation is one whole command.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class IdeDmaBenchmark extends SuiteSettings {

    /** Transfer size: 4k in 1 PRD, 64k in 16, 1m in 64 (LBA48). */
    @Param({"4k", "64k", "1m"})
    public String size;

    /** The data path under test. */
    @Param({"COPY", "MAP_FILECHANNEL", "MAP_NATIVE"})
    public String path;

    private IdeWorkload workload;

    /**
     * Builds the machine for this size and path (after building and closing a throwaway one).
     *
     * @throws IOException if the image cannot be created
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        // The first close in a JVM allocates; rehearse it outside measurement (see SuiteSettings).
        IdeWorkload.create(TransferShape.of(size), DataPath.valueOf(path)).close();
        workload = IdeWorkload.create(TransferShape.of(size), DataPath.valueOf(path));
    }

    /**
     * Tears the machine down and deletes the image.
     *
     * @throws IOException if closing fails
     */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        workload.close();
    }

    /** @return the bus-master status, so the command cannot be optimised away */
    @Benchmark
    public int write() {
        return workload.write();
    }

    /** @return the bus-master status */
    @Benchmark
    public int read() {
        return workload.read();
    }
}
