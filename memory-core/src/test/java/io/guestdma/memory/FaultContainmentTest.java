package io.guestdma.memory;

import static io.guestdma.memory.DmaDirection.FROM_DEVICE;
import static io.guestdma.memory.DmaDirection.TO_DEVICE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * What a failing device handler, a hostile scatter-gather list or a stale I/O vector can do to the
 * address space: each case here was found by an outside review against the public API, and each
 * one leaked, wrapped or wrote where it must not before. After every case the pool and the
 * mappings are back to zero and the address space still closes.
 */
class FaultContainmentTest {
    private static final long TOP = 0xffff_ffff_ffff_fff0L; // 2^64 - 0x10

    /** An MMIO device whose handler throws whatever {@code fault} supplies. */
    static MmioHandler failing(Supplier<? extends Throwable> fault) {
        return new MmioHandler() {
            @Override
            public long read(long offset, int size) {
                throw sneaky(fault.get());
            }

            @Override
            public void write(long offset, int size, long value) {
                throw sneaky(fault.get());
            }
        };
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> RuntimeException sneaky(Throwable t) throws T {
        throw (T) t;
    }

    private static void assertNothingHeld(GuestMemory mem) {
        assertThat(mem.bouncePool().bytesInFlight()).as("bounce bytes in flight").isZero();
        assertThat(mem.liveMappings()).as("live mappings").isZero();
    }

    private static void assertCloses(GuestMemory mem) throws Exception {
        mem.close();
        mem.released().get(5, TimeUnit.SECONDS);
    }

    // ------------------------------------------------------------------ 1: handler faults

    @Test
    void aHandlerThatThrowsDuringAToDeviceMapGivesMapFailedAndHoldsNothing() throws Exception {
        GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x10000)
                .mmio("bad", 0x20000, 0x1000, failing(() -> new IllegalStateException("device broke")))
                .build();
        MapResult result = mem.map(0x20000, 0x200, TO_DEVICE);
        assertThat(result).isInstanceOf(MapFailed.class);
        assertThat(((MapFailed) result).result()).isEqualTo(AccessResult.DEVICE_ERROR);
        assertThat(mem.deviceFaults()).isEqualTo(1);
        assertNothingHeld(mem);
        // The pool still works: a second device's bounce map is granted the whole pool.
        assertThat(mem.map(0x30000, 4096, TO_DEVICE)).isInstanceOfSatisfying(DmaMapping.class,
                m -> assertThat(mem.unmap(m, 0)).isEqualTo(AccessResult.OK));
        assertCloses(mem);
    }

    @Test
    void assertionErrorsAndStackOverflowsFromAHandlerAreDeviceErrorsToo() throws Exception {
        for (Supplier<Throwable> fault : java.util.List.<Supplier<Throwable>>of(
                () -> new AssertionError("handler assertion"), () -> new StackOverflowError())) {
            GuestMemory mem = GuestMemory.builder().mmio("bad", 0x20000, 0x1000, failing(fault)).build();
            assertThat(mem.map(0x20000, 16, TO_DEVICE)).isInstanceOf(MapFailed.class);
            assertThat(mem.read(0x20000, new byte[8], 0, 8)).isEqualTo(AccessResult.DEVICE_ERROR);
            assertNothingHeld(mem);
            assertCloses(mem);
        }
    }

    @Test
    void aHandlerThatRunsOutOfMemoryIsRethrownButTheMapReleasesEverything() throws Exception {
        GuestMemory mem = GuestMemory.builder()
                .mmio("bad", 0x20000, 0x1000, failing(() -> new OutOfMemoryError("simulated"))).build();
        assertThatThrownBy(() -> mem.map(0x20000, 64, TO_DEVICE)).isInstanceOf(OutOfMemoryError.class);
        assertNothingHeld(mem);
        assertCloses(mem);
    }

    @Test
    void copyPathAndTypedAccessesReportAFailedHandlerAndKeepGoing() {
        byte[] good = new byte[0x1000];
        RecordingDevice next = new RecordingDevice(0x1000, 1, 8);
        java.util.Arrays.fill(next.registers, (byte) 0x5a);
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000)
                .mmio("bad", 0x1000, 0x1000, failing(() -> new RuntimeException("x")))
                .mmio("good", 0x2000, 0x1000, next).build()) {
            byte[] into = new byte[0x2000];
            java.util.Arrays.fill(into, (byte) 1);
            // Crosses RAM, the failing device and a working one: the failure is reported and the
            // working parts are still read, as QEMU's dispatch carries on after MEMTX_ERROR.
            assertThat(mem.read(0x800, into, 0, into.length)).isEqualTo(AccessResult.DEVICE_ERROR);
            assertThat(into[0x900]).as("failed part reads zero").isZero();
            assertThat(into[0x1900]).as("the next device was still read").isEqualTo((byte) 0x5a);
            assertThat(mem.write(0x1000, good, 0, 16)).isEqualTo(AccessResult.DEVICE_ERROR);
            assertThat(mem.readInt(0x1000)).as("a failed typed load reads 0, like unassigned space").isZero();
            mem.writeLong(0x1008, -1L); // dropped, no exception
            assertThat(mem.deviceFaults()).isGreaterThanOrEqualTo(4);
            // A fault outranks an unassigned byte in the same access, whatever their order.
            assertThat(mem.read(0x2ff8, new byte[0x10], 0, 0x10)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(mem.read(0x1ff8, new byte[0x1010], 0, 0x1010)).isEqualTo(AccessResult.DEVICE_ERROR);
            assertThat(mem.read(0xfff_fff8L, new byte[0x10], 0, 0x10).and(AccessResult.DEVICE_ERROR))
                    .isEqualTo(AccessResult.DEVICE_ERROR);
        }
    }

    @Test
    void aFromDeviceBounceWhoseWriteBackFailsIsReleasedAndReported() throws Exception {
        GuestMemory mem = GuestMemory.builder()
                .mmio("bad", 0x20000, 0x1000, failing(() -> new IllegalStateException("no"))).build();
        DmaMapping m = (DmaMapping) mem.map(0x20000, 0x100, FROM_DEVICE);
        m.segment().fill((byte) 7);
        assertThat(mem.unmap(m, 0x100)).isEqualTo(AccessResult.DEVICE_ERROR);
        assertThat(m.isUnmapped()).isTrue();
        assertNothingHeld(mem);
        assertCloses(mem);
    }

    @Test
    void aStreamChunkWithAFailingPieceReleasesTheOthersAndThrowsOnce() throws Exception {
        GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x10000)
                .mmio("other", 0x10000, 0x1000, new RecordingDevice(0x1000, 1, 8))
                .mmio("bad", 0x20000, 0x1000, failing(() -> new IllegalStateException("no")))
                .bouncePoolBytes(0x2000).build();
        DmaStream stream = new DmaStream(mem);
        SgList sg = new SgList().add(0x1000, 0x200).add(0x10000, 0x200).add(0x20000, 0x200);
        stream.start(sg, TO_DEVICE, 512);
        assertThatThrownBy(() -> stream.mapNext(Long.MAX_VALUE)).isInstanceOf(DmaAccessException.class)
                .hasMessageContaining("0x20000")
                .satisfies(e -> assertThat(((DmaAccessException) e).address()).isEqualTo(0x20000));
        assertNothingHeld(mem);
        assertThat(stream.chunkBytes()).isZero();
        assertThat(stream.position()).isZero();
        // The stream is usable again: a new transfer over good memory works.
        stream.start(new SgList().add(0, 0x400), FROM_DEVICE, 512);
        assertThat(stream.mapNext(Long.MAX_VALUE)).isEqualTo(0x400);
        assertThat(stream.unmapChunk(0x400)).isEqualTo(AccessResult.OK);
        assertNothingHeld(mem);
        assertCloses(mem);
    }

    // ------------------------------------------------------------------ 2: re-entrancy

    @Test
    void dmaThatReachesTheDevicesOwnRegistersIsRefusedNotNested() {
        ReentrancyGuard guard = new ReentrancyGuard("nic");
        int[] nested = new int[1];
        GuestMemory[] memory = new GuestMemory[1];
        MmioHandler registers = new MmioHandler() {
            @Override
            public long read(long offset, int size) {
                return 0x11;
            }

            @Override
            public void write(long offset, int size, long value) {
                // A doorbell: the device's "DMA" reads its own registers through guest memory.
                if (offset == 0) {
                    nested[0]++;
                    memory[0].read(0x40000, new byte[8], 0, 8);
                }
            }
        };
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000)
                .region(new MmioRegion("nic", 0x40000, 0x1000, registers, guard)).build()) {
            memory[0] = mem;
            byte[] seen = new byte[8];
            // Outside the device, a register read works.
            assertThat(mem.read(0x40000, seen, 0, 8)).isEqualTo(AccessResult.OK);
            // Inside it (the doorbell write), the same read is refused and counted, not nested.
            assertThat(mem.write(0x40000, new byte[1], 0, 1)).isEqualTo(AccessResult.OK);
            assertThat(nested[0]).isEqualTo(1);
            assertThat(guard.refusals()).isEqualTo(1);
            assertThat(guard.isEngaged()).as("released after the access").isFalse();
            // A DMA map of the registers while the device is engaged on this thread fails cleanly.
            assertThat(guard.enter()).isTrue();
            try {
                assertThat(mem.map(0x40000, 8, TO_DEVICE)).isInstanceOf(MapFailed.class);
            } finally {
                guard.exit();
            }
            assertNothingHeld(mem);
        }
    }

    @Test
    void theGuardIsPerThread() throws Exception {
        ReentrancyGuard guard = new ReentrancyGuard("dev");
        assertThat(guard.enter()).isTrue();
        try {
            boolean[] other = new boolean[1];
            Thread t = Thread.ofPlatform().start(() -> {
                other[0] = guard.enter();
                guard.exit();
            });
            t.join();
            assertThat(other[0]).as("another thread is not re-entrant").isTrue();
            assertThat(guard.enter()).as("this thread is").isFalse();
        } finally {
            guard.exit();
        }
        assertThat(guard.isEngaged()).isFalse();
    }

    // ------------------------------------------------------------------ 5: no wrap past 2^64

    @Test
    void aStreamEntryRunningPast2To64NeverWritesGuestAddressZero() throws Exception {
        GuestMemory mem = GuestMemory.builder().ram("low", 0, 0x1000).build();
        byte[] before = new byte[0x1000];
        java.util.Arrays.fill(before, (byte) 0x33);
        mem.write(0, before, 0, before.length);
        DmaStream stream = new DmaStream(mem);
        stream.start(new SgList().add(TOP, 0x100), FROM_DEVICE, 1);
        long total = 0;
        while (!stream.done()) {
            long n = stream.mapNext(Long.MAX_VALUE);
            assertThat(n).isPositive();
            stream.iov().fill(0, (byte) 0xee, n);
            stream.unmapChunk(n);
            total += n;
        }
        assertThat(total).isEqualTo(0x100);
        byte[] after = new byte[0x1000];
        mem.read(0, after, 0, after.length);
        assertThat(after).as("RAM at guest address 0 untouched").isEqualTo(before);
        assertNothingHeld(mem);

        // Reading it: the bytes past the top read as zeros, not as RAM at 0.
        stream.start(new SgList().add(TOP, 0x100), TO_DEVICE, 1);
        byte[] read = new byte[0x100];
        int at = 0;
        while (!stream.done()) {
            long n = stream.mapNext(Long.MAX_VALUE);
            stream.iov().copyTo(0, read, at, (int) n);
            stream.unmapChunk(n);
            at += (int) n;
        }
        for (int i = 0x10; i < 0x100; i++) {
            assertThat(read[i]).as("byte %d past the top", i).isZero();
        }
        assertNothingHeld(mem);
        assertCloses(mem);
    }

    @Test
    void aPacketRunningPast2To64NeverWritesGuestAddressZero() throws Exception {
        GuestMemory mem = GuestMemory.builder().ram("low", 0, 0x1000).build();
        mem.writeLong(0, 0x1122334455667788L);
        DmaPacket packet = new DmaPacket(mem);
        IoVector iov = packet.map(new SgList().add(TOP, 0x100), FROM_DEVICE);
        assertThat(iov.size()).isEqualTo(0x100);
        iov.fill(0, (byte) 0xee, 0x100);
        assertThat(packet.complete(0x100)).isEqualTo(AccessResult.UNASSIGNED);
        assertThat(mem.readLong(0)).isEqualTo(0x1122334455667788L);
        assertNothingHeld(mem);
        // And through the fallback: a pool too small for the packet.
        GuestMemory tiny = GuestMemory.builder().ram("low", 0, 0x1000).bouncePoolBytes(16).build();
        tiny.writeLong(0, 42);
        DmaPacket small = new DmaPacket(tiny);
        IoVector viaCopy = small.map(new SgList().add(TOP, 0x100), FROM_DEVICE);
        assertThat(small.usedFallback()).isTrue();
        viaCopy.fill(0, (byte) 0xee, 0x100);
        small.complete(0x100);
        assertThat(tiny.readLong(0)).isEqualTo(42);
        IoVector readBack = small.map(new SgList().add(TOP, 0x100), TO_DEVICE);
        assertThat(readBack.isZero()).as("nothing up there: zeros").isTrue();
        small.complete(0);
        assertNothingHeld(tiny);
        assertCloses(mem);
        assertCloses(tiny);
    }

    // ------------------------------------------------------------------ 6: stale native iovecs

    @Test
    void nativeIovecsOfReleasedMemoryAreRefusedEvenWhenCached() throws Exception {
        GuestMemory mem = GuestMemory.ofRam(0x10000);
        DmaMapping m = (DmaMapping) mem.map(0x1000, 0x1000, FROM_DEVICE);
        IoVector iov = new IoVector().add(m.segment());
        MemorySegment first = iov.writableNativeIovecs();
        assertThat(first.get(ValueLayout.JAVA_LONG, 0)).isEqualTo(m.segment().address());
        mem.unmap(m, 0);
        mem.close();
        mem.released().get(5, TimeUnit.SECONDS);
        assertThatThrownBy(iov::nativeIovecs).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("released");
        assertThatThrownBy(iov::writableNativeIovecs).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void writableNativeIovecsRefuseReadOnlySegments() {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            DmaMapping m = (DmaMapping) mem.map(0x1000, 0x1000, TO_DEVICE);
            IoVector iov = new IoVector().add(Arena.ofAuto().allocate(512)).add(m.segment());
            assertThat(iov.nativeIovecs()).isNotNull(); // reading it (pwritev) is fine
            assertThatThrownBy(iov::writableNativeIovecs).isInstanceOf(UnsupportedOperationException.class)
                    .hasMessageContaining("segment 1");
            mem.unmap(m, 0);
        }
    }

    // ------------------------------------------------------------------ 7: guest-sized allocation

    @Test
    void aHugePacketThatCannotMapWholeFailsInsteadOfAllocatingItsSize() throws Exception {
        RecordingDevice dev = new RecordingDevice(0x1000, 1, 8);
        GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).mmio("dev", 0x10000, 0x1000, dev).build();
        DmaPacket packet = new DmaPacket(mem);
        // 16 TiB through unassigned space: the pool can never hold it, and the fallback is bounded.
        SgList huge = new SgList().add(0x10000, 0x1000).add(0x100000, 16L << 40);
        assertThatThrownBy(() -> packet.map(huge, TO_DEVICE)).isInstanceOf(DmaAccessException.class)
                .hasMessageContaining("fallback bound");
        assertNothingHeld(mem);
        // Within the bound the fallback works, and the mapper is reusable after the failure.
        SgList ok = new SgList().add(0x10000, 0x1000).add(0x100000, 0x8000);
        IoVector iov = packet.map(ok, TO_DEVICE);
        assertThat(iov.size()).isEqualTo(0x9000);
        packet.complete(0);
        assertThat(packet.maxFallbackBytes()).isEqualTo(DmaPacket.DEFAULT_MAX_FALLBACK_BYTES);
        assertThatThrownBy(() -> new DmaPacket(mem, 0)).isInstanceOf(IllegalArgumentException.class);
        DmaPacket strict = new DmaPacket(mem, 0x1000);
        assertThatThrownBy(() -> strict.map(ok, TO_DEVICE)).isInstanceOf(DmaAccessException.class);
        assertNothingHeld(mem);
        assertCloses(mem);
    }

    @Test
    void aPacketOverAFailingDeviceFailsAndHoldsNothing() throws Exception {
        GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000)
                .mmio("bad", 0x10000, 0x1000, failing(() -> new IllegalStateException("no"))).build();
        DmaPacket packet = new DmaPacket(mem);
        assertThatThrownBy(() -> packet.map(new SgList().add(0, 0x100).add(0x10000, 0x100), TO_DEVICE))
                .isInstanceOf(DmaAccessException.class);
        assertNothingHeld(mem);
        // Not left active: the next packet maps.
        packet.map(new SgList().add(0, 0x100), TO_DEVICE);
        packet.complete(0);
        assertCloses(mem);
    }

    // ------------------------------------------------------------------ 9: sizes as documented

    @Test
    void ofRamRejectsSizesItsContractRejects() {
        assertThatThrownBy(() -> GuestMemory.ofRam(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> GuestMemory.ofRam(100)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("4096");
        assertThatThrownBy(() -> GuestMemory.ofRam(-4096)).isInstanceOf(IllegalArgumentException.class);
        try (GuestMemory ok = GuestMemory.ofRam(4096)) {
            assertThat(ok.regions()).hasSize(1);
        }
    }
}
