package io.guestdma.memory;

import static io.guestdma.memory.DmaDirection.FROM_DEVICE;
import static io.guestdma.memory.DmaDirection.TO_DEVICE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteOrder;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A device's view of memory: the bus-master enable switch, a window, and an IOMMU whose page table
 * lives in guest RAM, through the copy path, map, DmaStream, DmaPacket and ring views.
 */
class DeviceAddressSpaceTest {
    private static final long PAGE = 4096;
    private static final long PAGE_TABLE = 0x80000;
    private static final long READ = 1;
    private static final long WRITE = 2;

    /**
     * A one-level IOMMU: the 8-byte entry for I/O page n sits at PAGE_TABLE + 8n in guest RAM and
     * holds the target page's address with permission bits 0 (read) and 1 (write); 0 is "not
     * mapped". It counts its walks, to show the IOTLB at work.
     */
    private static final class PageTableIommu implements Iommu {
        final GuestMemory memory;
        final AtomicInteger walks = new AtomicInteger();

        PageTableIommu(GuestMemory memory) {
            this.memory = memory;
        }

        @Override
        public IommuTranslation translate(long iova, DmaDirection direction) {
            walks.incrementAndGet();
            long page = iova & -PAGE;
            if (Long.compareUnsigned(page >>> 12, 512) >= 0) {
                return IommuTranslation.fault(iova);
            }
            long entry = memory.readLong(PAGE_TABLE + 8 * (page >>> 12));
            if ((entry & (READ | WRITE)) == 0) {
                return IommuTranslation.fault(iova);
            }
            return new IommuTranslation(page, entry & -PAGE, PAGE, (entry & READ) != 0, (entry & WRITE) != 0);
        }

        void map(long iovaPage, long targetPage, long permissions) {
            memory.writeLong(PAGE_TABLE + 8 * (iovaPage >>> 12), targetPage | permissions);
        }
    }

    private static GuestMemory memory() {
        return GuestMemory.builder().ram("ram", 0, 0x100000).build();
    }

    private static void assertNothingHeld(GuestMemory mem) {
        assertThat(mem.bouncePool().bytesInFlight()).isZero();
        assertThat(mem.liveMappings()).isZero();
    }

    @Test
    void aDisabledBusMasterSeesNothingAndLosesItsWrites() {
        try (GuestMemory mem = memory()) {
            mem.fill(0x1000, 0x2000, (byte) 0x77);
            DeviceAddressSpace dev = mem.deviceSpace("nic");
            dev.setEnabled(false);
            byte[] seen = new byte[16];
            assertThat(dev.read(0x1000, seen, 0, 16)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(seen).containsOnly((byte) 0);
            assertThat(dev.write(0x1000, new byte[] {1, 2, 3}, 0, 3)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(mem.readByte(0x1000)).isEqualTo((byte) 0x77);
            // Maps are bounced to nowhere: zeros in, nothing out.
            DmaMapping m = (DmaMapping) dev.map(0x1000, 512, TO_DEVICE);
            assertThat(m.bounced()).isTrue();
            assertThat(m.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)).containsOnly((byte) 0);
            dev.unmap(m, 512);
            DmaStream stream = new DmaStream(dev);
            stream.start(new SgList().add(0x1000, 0x1800), FROM_DEVICE, 512);
            while (!stream.done()) {
                long n = stream.mapNext(Long.MAX_VALUE);
                stream.iov().fill(0, (byte) 0x11, n);
                assertThat(stream.unmapChunk(n)).isEqualTo(AccessResult.UNASSIGNED);
            }
            assertThat(mem.readByte(0x1800)).isEqualTo((byte) 0x77);
            DmaPacket packet = new DmaPacket(dev);
            assertThat(packet.map(new SgList().add(0x1000, 64), TO_DEVICE).isZero()).isTrue();
            packet.complete(0);
            assertNothingHeld(mem);
            dev.setEnabled(true);
            assertThat(dev.readByte(0x1000)).isEqualTo((byte) 0x77);
        }
    }

    @Test
    void aWindowShowsPartOfTheRootAtAnotherAddress() {
        try (GuestMemory mem = memory()) {
            mem.writeLong(0x3000, 0x1122334455667788L);
            DeviceAddressSpace dev = mem.deviceSpace("dma32", 0x8000_0000L, 0x10000, 0, null);
            assertThat(dev.readLong(0x8000_3000L)).isEqualTo(0x1122334455667788L);
            byte[] out = new byte[8];
            assertThat(dev.read(0x3000, out, 0, 8)).as("below the window").isEqualTo(AccessResult.UNASSIGNED);
            assertThat(dev.read(0x8000_fffcL, out, 0, 8)).as("running out of it").isEqualTo(AccessResult.UNASSIGNED);
            DmaMapping m = (DmaMapping) dev.map(0x8000_f000L, 0x4000, FROM_DEVICE);
            assertThat(m.length()).as("cut at the window's end").isEqualTo(0x1000);
            assertThat(m.address()).isEqualTo(0xf000);
            dev.unmap(m, 0);
            assertNothingHeld(mem);
        }
    }

    @Test
    void anIommuWithItsPageTableInGuestRamScattersDmaAndEnforcesPermissions() {
        try (GuestMemory mem = memory()) {
            PageTableIommu iommu = new PageTableIommu(mem);
            iommu.map(0x0000, 0x5000, READ | WRITE);
            iommu.map(0x1000, 0x2000, READ | WRITE);
            iommu.map(0x2000, 0x9000, READ | WRITE);
            iommu.map(0x3000, 0x7000, READ); // read-only
            DeviceAddressSpace dev = mem.deviceSpace("nvme", 0, -1L, 0, iommu);

            // A 12 KiB write through the stream lands page by page where the table says.
            DmaStream stream = new DmaStream(dev);
            stream.start(new SgList().add(0x0000, 0x3000), FROM_DEVICE, 512);
            long offset = 0;
            while (!stream.done()) {
                long n = stream.mapNext(Long.MAX_VALUE);
                for (long i = 0; i < n; i++) {
                    stream.iov().fill(i, (byte) ((offset + i) >>> 12 | 0x40), 1);
                }
                stream.unmapChunk(n);
                offset += n;
            }
            assertThat(mem.readByte(0x5000)).isEqualTo((byte) 0x40);
            assertThat(mem.readByte(0x2fff)).isEqualTo((byte) 0x41);
            assertThat(mem.readByte(0x9abc)).isEqualTo((byte) 0x42);
            // Maps are cut where the translated run ends.
            DmaMapping m = (DmaMapping) dev.map(0x0800, 0x2000, TO_DEVICE);
            assertThat(m.length()).isEqualTo(0x800);
            assertThat(m.address()).isEqualTo(0x5800);
            dev.unmap(m, 0);
            // Pages mapped to consecutive targets are one piece, up to the first that is not.
            iommu.map(0x10000, 0x20000, READ | WRITE);
            iommu.map(0x11000, 0x21000, READ | WRITE);
            iommu.map(0x12000, 0x22000, READ | WRITE);
            iommu.map(0x13000, 0x40000, READ | WRITE);
            DmaMapping run = (DmaMapping) dev.map(0x10800, 0x4000, FROM_DEVICE);
            assertThat(run.address()).isEqualTo(0x20800);
            assertThat(run.length()).as("three pages, from the middle of the first").isEqualTo(0x2800);
            assertThat(run.bounced()).isFalse();
            dev.unmap(run, 0);
            // Writing the read-only page fails on every path; reading it works.
            assertThat(dev.map(0x3000, 16, FROM_DEVICE)).isInstanceOf(MapFailed.class);
            assertThat(dev.write(0x3000, new byte[4], 0, 4)).isEqualTo(AccessResult.DEVICE_ERROR);
            assertThat(dev.read(0x3000, new byte[4], 0, 4)).isEqualTo(AccessResult.OK);
            assertThat(dev.read(0x4000, new byte[4], 0, 4)).as("unmapped page").isEqualTo(AccessResult.DEVICE_ERROR);
            // A chunk that reaches the read-only page fails whole, its writable page released.
            stream.start(new SgList().add(0x2000, 0x2000), FROM_DEVICE, 512);
            assertThatThrownBy(() -> stream.mapNext(Long.MAX_VALUE)).isInstanceOf(DmaAccessException.class)
                    .hasMessageContaining("IOMMU");
            assertThat(dev.iommuFaults()).isGreaterThanOrEqualTo(4);
            assertNothingHeld(mem);
        }
    }

    @Test
    void translationsAreCachedUntilInvalidatedAndInvalidationWaitsForInFlightDma() {
        try (GuestMemory mem = memory()) {
            PageTableIommu iommu = new PageTableIommu(mem);
            iommu.map(0x0000, 0x5000, READ | WRITE);
            DeviceAddressSpace dev = mem.deviceSpace("dev", 0, -1L, 0, iommu);
            for (int i = 0; i < 100; i++) {
                dev.unmap((DmaMapping) dev.map(0x100, 64, FROM_DEVICE), 0);
            }
            assertThat(iommu.walks.get()).as("one walk, then the IOTLB").isEqualTo(1);

            // A device that unmaps promptly: the invalidation completes when it does.
            DmaMapping inFlight = (DmaMapping) dev.map(0x0, 0x1000, FROM_DEVICE);
            iommu.map(0x0000, 0x6000, READ | WRITE); // the guest remaps the page...
            CompletableFuture<Void> done = dev.invalidate(0, PAGE); // ...and invalidates
            assertThat(done).as("waits for the mapping made through the old translation").isNotDone();
            DmaMapping after = (DmaMapping) dev.map(0x0, 16, FROM_DEVICE);
            assertThat(after.address()).as("new accesses use the new translation").isEqualTo(0x6000);
            inFlight.segment().fill((byte) 9);
            dev.unmap(inFlight, 0x1000);
            assertThat(done).isDone();
            assertThat(mem.readByte(0x5000)).as("the old target got the in-flight DMA").isEqualTo((byte) 9);
            dev.unmap(after, 0);

            // A stream chunk holds its translation generation until unmapped, too.
            DmaStream stream = new DmaStream(dev);
            stream.start(new SgList().add(0, 0x800), FROM_DEVICE, 512);
            stream.mapNext(Long.MAX_VALUE);
            CompletableFuture<Void> second = dev.invalidate(0, 0);
            assertThat(second).isNotDone();
            stream.unmapChunk(0);
            assertThat(second).isDone();

            // A device that never unmaps keeps the invalidation pending; nothing is revoked.
            DmaMapping stuck = (DmaMapping) dev.map(0x0, 64, TO_DEVICE);
            CompletableFuture<Void> third = dev.invalidate(0, PAGE);
            assertThat(third).isNotDone();
            assertThat(stuck.segment().get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0)).as("still readable").isNotNull();
            dev.unmap(stuck, 0);
            assertThat(third).isDone();
            assertNothingHeld(mem);
        }
    }

    @Test
    void aBufferMappedAgainKeepsItsTranslationGenerationAndFollowsInvalidationsAndRegionChanges() {
        try (GuestMemory mem = memory()) {
            PageTableIommu iommu = new PageTableIommu(mem);
            iommu.map(0x0000, 0x5000, READ | WRITE);
            iommu.map(0x1000, 0x6000, READ);
            DeviceAddressSpace dev = mem.deviceSpace("dev", 0, -1L, 0, iommu);
            dev.unmap((DmaMapping) dev.map(0x0, 0x1000, FROM_DEVICE), 0); // routed and remembered
            DirtyLog.Client migration = mem.dirtyLog().register("migration");
            migration.getAndClear(0, 0x100000);

            // Mapped again, whole or in part: the same target, and it holds its generation.
            DmaMapping part = (DmaMapping) dev.map(0x100, 64, FROM_DEVICE);
            assertThat(part.address()).isEqualTo(0x5100);
            assertThat(part.length()).isEqualTo(64);
            part.segment().fill((byte) 3);
            dev.unmap(part, 64);
            assertThat(mem.readByte(0x5100)).isEqualTo((byte) 3);
            assertThat(migration.isDirty(0x5000)).as("the store is in the dirty log").isTrue();
            DmaMapping inFlight = (DmaMapping) dev.map(0x0, 0x1000, FROM_DEVICE);
            assertThat(inFlight.address()).isEqualTo(0x5000);
            iommu.map(0x0000, 0x7000, READ | WRITE);
            CompletableFuture<Void> done = dev.invalidate(0, PAGE);
            assertThat(done).as("waits for the buffer mapped again").isNotDone();
            DmaMapping after = (DmaMapping) dev.map(0x0, 0x1000, FROM_DEVICE);
            assertThat(after.address()).as("the new translation, not the remembered one").isEqualTo(0x7000);
            dev.unmap(inFlight, 0);
            assertThat(done).isDone();
            dev.unmap(after, 0);

            // Other directions, ranges past the mapping and bad lengths are not served from it.
            dev.unmap((DmaMapping) dev.map(0x0, 0x1000, FROM_DEVICE), 0);
            DmaMapping read = (DmaMapping) dev.map(0x0, 0x1000, TO_DEVICE);
            assertThat(read.segment().isReadOnly()).isTrue();
            dev.unmap(read, 0);
            assertThat(dev.map(0xf00, 0x200, FROM_DEVICE)).as("runs into the read-only page")
                    .isInstanceOfSatisfying(DmaMapping.class, m -> {
                        assertThat(m.length()).isEqualTo(0x100);
                        dev.unmap(m, 0);
                    });
            assertThat(dev.map(0x1000, 16, FROM_DEVICE)).isInstanceOf(MapFailed.class);
            assertThatThrownBy(() -> dev.map(0x0, 0, FROM_DEVICE)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> dev.map(0x0, 16, null)).isInstanceOf(NullPointerException.class);

            // A disabled bus master sees nothing, remembered mapping or not.
            dev.unmap((DmaMapping) dev.map(0x0, 0x1000, FROM_DEVICE), 0);
            dev.setEnabled(false);
            DmaMapping nowhere = (DmaMapping) dev.map(0x0, 16, FROM_DEVICE);
            assertThat(nowhere.bounced()).isTrue();
            assertThat(dev.unmap(nowhere, 16)).isEqualTo(AccessResult.UNASSIGNED);
            dev.setEnabled(true);

            // A region change: the RAM behind the remembered mapping is gone, so the map is bounced.
            dev.unmap((DmaMapping) dev.map(0x0, 0x1000, FROM_DEVICE), 0);
            mem.writeLong(0x7000, 0x1122334455667788L);
            assertThat(mem.removeRegion("ram")).isDone();
            DmaMapping gone = (DmaMapping) dev.map(0x0, 8, TO_DEVICE);
            assertThat(gone.bounced()).as("unassigned now, not the old backing").isTrue();
            assertThat(gone.segment().get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0)).isZero();
            dev.unmap(gone, 0);
            assertNothingHeld(mem);
        }
    }

    @Test
    void aRingViewThroughTheIommuFollowsInvalidationsOrFails() {
        try (GuestMemory mem = memory()) {
            PageTableIommu iommu = new PageTableIommu(mem);
            iommu.map(0x1000, 0x8000, READ | WRITE);
            DeviceAddressSpace dev = mem.deviceSpace("virtio", 0, -1L, 0, iommu);
            RamView ring = dev.ramView(0x1010, 64, ByteOrder.LITTLE_ENDIAN, true);
            ring.setShortRelease(2, (short) 5);
            assertThat(mem.readShort(0x8012)).isEqualTo((short) 5);
            dev.invalidate(0x1000, PAGE); // same mapping: the view carries on
            assertThat(ring.getShortAcquire(2)).isEqualTo((short) 5);
            iommu.map(0x1000, 0x9000, READ | WRITE);
            dev.invalidate(0x1000, PAGE);
            assertThatThrownBy(() -> ring.getShortAcquire(2)).isInstanceOf(DmaAccessException.class)
                    .hasMessageContaining("no longer translates");
            assertThatThrownBy(() -> dev.ramView(0x1ff0, 64, ByteOrder.LITTLE_ENDIAN, false))
                    .as("across two translations").isInstanceOf(DmaAccessException.class);
        }
    }
}
