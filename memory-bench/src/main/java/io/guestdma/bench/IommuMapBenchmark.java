package io.guestdma.bench;

import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaMapping;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.IommuTranslation;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Map and unmap of 64 KiB through a device address space behind an IOMMU whose translations are
 * warm in the space's IOTLB (sixteen 4 KiB pages mapped to consecutive guest pages, as a guest's
 * DMA buffer usually is), against the same through a device space without an IOMMU.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class IommuMapBenchmark extends SuiteSettings {
    private static final long IOVA = 0x8000_0000L;
    private static final long TARGET = 0x20_0000;
    private static final int BYTES = 64 * 1024;

    private GuestMemory memory;
    private DeviceAddressSpace plain;
    private DeviceAddressSpace iommu;

    /** Guest RAM, a plain device space and one behind a page-by-page IOMMU. */
    @Setup(Level.Trial)
    public void setUp() {
        GuestMemory.ofRam(16L << 20).close(); // the first close in a JVM allocates (see SuiteSettings)
        memory = GuestMemory.ofRam(16L << 20);
        plain = memory.deviceSpace("plain");
        iommu = memory.deviceSpace("iommu", 0, -1L, 0, (iova, direction) -> {
            long page = iova & -4096L;
            long offset = page - IOVA;
            return offset >= 0 && offset < 1 << 20 ? new IommuTranslation(page, TARGET + offset, 4096, true, true)
                    : IommuTranslation.fault(iova);
        });
        iommu.unmap((DmaMapping) iommu.map(IOVA, BYTES, DmaDirection.FROM_DEVICE), 0); // warm the IOTLB
    }

    /** Closes guest memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        memory.close();
    }

    /** @return the mapped length, without an IOMMU */
    @Benchmark
    public long mapUnmapPlain() {
        DmaMapping m = (DmaMapping) plain.map(TARGET, BYTES, DmaDirection.FROM_DEVICE);
        long n = m.length();
        plain.unmap(m, n);
        return n;
    }

    /** @return the mapped length, through the IOMMU (one run of sixteen consecutive pages) */
    @Benchmark
    public long mapUnmapIommu() {
        DmaMapping m = (DmaMapping) iommu.map(IOVA, BYTES, DmaDirection.FROM_DEVICE);
        long n = m.length();
        iommu.unmap(m, n);
        return n;
    }
}
