package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.memory.internal.Posix;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * RAM and ROM regions that bring a backing of their own (hot-plugged DIMMs, memory another process
 * shares, what a vhost-user back end maps from a VMM's descriptors): sharing, the dirty log across
 * backings, hot-plug under DMA with the backing unmapped only after the last mapping, and the
 * errors a hostile descriptor or layout gets.
 */
class OwnBackingTest {
    private static final long DIMM = 0x1000_0000L;

    @Test
    void aMemfdRegionIsSharedWithASecondMappingAndASecondProcess() throws Exception {
        RamBacking memfd = RamBacking.memfd("dimm", 0x40000);
        int fd = memfd.fd().orElseThrow();
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            // The region's bytes start 0x10000 into the memfd, as a vhost-user region's mmap_offset.
            mem.addRegion(new RamRegion("dimm", DIMM, 0x20000, 0x10000, memfd));
            assertThat(mem.backingOffsetOf(DIMM).orElseThrow()).as("above the default backing").isGreaterThanOrEqualTo(0x10000);

            try (RamBacking peer = RamBacking.sharedFd(fd, 0x10000, 0x20000, true)) {
                assertThat(peer.kind()).isEqualTo(RamBacking.Kind.SHARED_FD);
                // The guest (copy path, typed store, a device's DMA) writes; the second mapping sees it.
                mem.write(DIMM + 0x10, "guest".getBytes(StandardCharsets.US_ASCII), 0, 5);
                mem.writeLong(DIMM + 0x1ff8, 0x1122334455667788L);
                DmaMapping dma = (DmaMapping) mem.map(DIMM + 0x3000, 0x100, DmaDirection.FROM_DEVICE);
                assertThat(dma.bounced()).isFalse();
                dma.segment().fill((byte) 0x5a);
                mem.unmap(dma, 0x100);
                assertThat(ascii(peer.segment().asSlice(0x10, 5))).isEqualTo("guest");
                assertThat(peer.segment().get(ValueLayout.JAVA_LONG_UNALIGNED, 0x1ff8)).isEqualTo(0x1122334455667788L);
                assertThat(peer.segment().get(ValueLayout.JAVA_BYTE, 0x30ff)).isEqualTo((byte) 0x5a);
                // ... and the other way round.
                peer.segment().set(ValueLayout.JAVA_INT_UNALIGNED, 0x1_0000, 0xcafef00d);
                assertThat(mem.readInt(DIMM + 0x1_0000)).isEqualTo(0xcafef00d);
                DmaMapping read = (DmaMapping) mem.map(DIMM + 0x1_0000, 4, DmaDirection.TO_DEVICE);
                assertThat(read.segment().get(ValueLayout.JAVA_INT_UNALIGNED, 0)).isEqualTo(0xcafef00d);
                mem.unmap(read, 4);
            }
            // A mapping at an offset that is not page-aligned starts at the page below and is sliced.
            try (RamBacking unaligned = RamBacking.sharedFd(fd, 0x10010, 0x1000, false)) {
                assertThat(ascii(unaligned.segment().asSlice(0, 5))).isEqualTo("guest");
                assertThat(unaligned.isWritable()).isFalse();
                assertThatThrownBy(() -> unaligned.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 1))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("read-only");
            }

            // A second process: dd reads the guest's bytes through /proc/PID/fd/N and writes its own.
            String file = "/proc/" + ProcessHandle.current().pid() + "/fd/" + fd;
            long guestInFile = 0x10000 + 0x10;
            assertThat(run("dd if=" + file + " bs=1 skip=" + guestInFile + " count=5 status=none")).isEqualTo("guest");
            run("printf 'other' | dd of=" + file + " bs=1 seek=" + (0x10000 + 0x8000) + " conv=notrunc status=none");
            byte[] seen = new byte[5];
            assertThat(mem.read(DIMM + 0x8000, seen, 0, 5)).isEqualTo(AccessResult.OK);
            assertThat(new String(seen, StandardCharsets.US_ASCII)).isEqualTo("other");
        }
        assertThat(memfd.isClosed()).as("the address space owned the region's backing and closed it").isTrue();
    }

    @Test
    void theDirtyLogCoversEveryBackingTheSameWay() throws Exception {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            DirtyLog.Client log = mem.dirtyLog().register("migration");
            RamBacking dimm = RamBacking.memfd("dimm", 0x8000);
            mem.addRegion(new RamRegion("dimm", DIMM, 0x8000, 0, dimm));
            mem.addRegion(new RamRegion("anon", 2 * DIMM, 0x4000, 0, RamBacking.anonymous(0x4000)));
            long ram = mem.backingOffsetOf(0).orElseThrow();
            long dimmAt = mem.backingOffsetOf(DIMM).orElseThrow();
            long anonAt = mem.backingOffsetOf(2 * DIMM).orElseThrow();
            assertThat(ram).isZero();
            assertThat(List.of(dimmAt, anonAt)).allMatch(at -> at >= 0x10000 && at % DirtyLog.PAGE_SIZE == 0);
            assertThat(Math.abs(dimmAt - anonAt)).as("ranges apart").isGreaterThanOrEqualTo(0x4000);
            assertThat(mem.dirtyLog().pages() * DirtyLog.PAGE_SIZE).isGreaterThanOrEqualTo(Math.max(dimmAt + 0x8000, anonAt + 0x4000));

            // New memory counts as written for a client that was there before it arrived.
            assertThat(log.getAndClear(dimmAt, 0x8000).cardinality()).isEqualTo(8);
            assertThat(log.getAndClear(anonAt, 0x4000).cardinality()).isEqualTo(4);
            assertThat(log.dirtyPages()).isZero();

            // Every way of writing marks the right page of the right backing.
            mem.writeInt(0x2000, 1);                                        // default backing, page 2
            mem.writeInt(DIMM + 0x1000, 1);                                 // dimm page 1
            DmaMapping m = (DmaMapping) mem.map(DIMM + 0x5000, 0x2000, DmaDirection.FROM_DEVICE);
            mem.unmap(m, 0x1001);                                           // dimm pages 5 and 6
            RamView view = mem.ramView(2 * DIMM + 0x3000, 16, ByteOrder.LITTLE_ENDIAN, true);
            view.setShortRelease(0, (short) 1);                             // anon page 3
            dimm.segment().set(ValueLayout.JAVA_BYTE, 0x7000, (byte) 1);    // outside the library...
            mem.markDirty(DIMM + 0x7000, 1);                                // ...then declared: dimm page 7
            DmaStream stream = new DmaStream(mem);
            stream.start(new SgList().add(2 * DIMM, 0x1000), DmaDirection.FROM_DEVICE, 1);
            stream.mapNext(Long.MAX_VALUE);
            stream.unmapChunk(0x1000);                                      // anon page 0

            assertThat(log.getAndClear(0, 0x10000).stream().toArray()).containsExactly(2);
            assertThat(log.getAndClear(dimmAt, 0x8000).stream().toArray()).containsExactly(1, 5, 6, 7);
            assertThat(log.getAndClear(anonAt, 0x4000).stream().toArray()).containsExactly(0, 3);
            assertThat(log.dirtyPages()).isZero();
        }
    }

    @Test
    void aDeviceThatKeepsAMappingKeepsTheBackingMappedAndALateAccessFailsSafely() throws Exception {
        GuestMemory mem = GuestMemory.ofRam(0x10000);
        RamBacking dimm = RamBacking.memfd("dimm", 0x4000);
        mem.addRegion(new RamRegion("dimm", DIMM, 0x4000, 0, dimm));
        DmaMapping held = (DmaMapping) mem.map(DIMM, 0x1000, DmaDirection.FROM_DEVICE);
        RamView ring = mem.ramView(DIMM + 0x2000, 64, ByteOrder.LITTLE_ENDIAN, true);

        CompletableFuture<Void> removed = mem.removeRegion("dimm");
        assertThat(mem.regionAt(DIMM)).isEmpty();
        assertThatThrownBy(() -> ring.getShortAcquire(0)).isInstanceOf(DmaAccessException.class);
        assertThat(removed).as("a mapping through the old snapshot is live").isNotDone();
        assertThat(dimm.isClosed()).isFalse();
        held.segment().set(ValueLayout.JAVA_INT, 0, 7); // still the device's memory until it unmaps

        mem.unmap(held, 4);
        removed.get(5, TimeUnit.SECONDS);
        assertThat(dimm.isClosed()).as("unmapped once the last mapping was").isTrue();
        assertThat(mem.ownBackings()).isZero();
        // A device that kept the segment after unmap: the access throws, it never reaches freed memory.
        assertThatThrownBy(() -> held.segment().get(ValueLayout.JAVA_INT, 0)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> ring.getShortAcquire(0)).isInstanceOf(DmaAccessException.class);
        mem.close();
        mem.released().get(5, TimeUnit.SECONDS);
    }

    @Test
    void hotPlugUnderConcurrentDmaLeaksNothingAndNeverTouchesUnmappedMemory() throws Exception {
        long fdsBefore = openDescriptors();
        List<RamBacking> backings = new ArrayList<>();
        List<CompletableFuture<Void>> removals = new ArrayList<>();
        ConcurrentLinkedQueue<Throwable> errors = new ConcurrentLinkedQueue<>();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong hits = new AtomicLong();
        AtomicLong lateFailures = new AtomicLong();
        GuestMemory mem = GuestMemory.ofRam(0x10000);
        List<Thread> devices = new ArrayList<>();
        for (int t = 0; t < 2; t++) {
            int id = t;
            devices.add(Thread.ofPlatform().start(() -> {
                try {
                    DmaStream stream = new DmaStream(mem);
                    byte[] bytes = new byte[64];
                    for (int i = 0; !stop.get(); i++) {
                        long at = DIMM + 0x1000L * (i % 8) + 64L * id;
                        if (mem.map(at, 64, DmaDirection.FROM_DEVICE) instanceof DmaMapping m) {
                            if (!m.bounced()) {
                                m.segment().set(ValueLayout.JAVA_INT_UNALIGNED, 0, i);
                                hits.incrementAndGet();
                            }
                            mem.unmap(m, 64);
                        }
                        mem.read(at, bytes, 0, 64);
                        mem.writeLong(at + 8, i);
                        stream.start(new SgList().add(at, 64).add(0x1000L * id, 64), DmaDirection.TO_DEVICE, 1);
                        while (!stream.done()) {
                            long n = stream.mapNext(Long.MAX_VALUE);
                            if (n == 0) {
                                break; // bounce space taken by the other thread: move on
                            }
                            stream.iov().copyTo(0, MemorySegment.ofArray(new byte[(int) n]));
                            stream.unmapChunk(n);
                        }
                    }
                } catch (Throwable e) {
                    errors.add(e);
                }
            }));
        }
        // A rogue device keeps using a segment after unmapping it: it must get an exception once
        // the backing is gone, from inside its loop, not a crash.
        Thread rogue = null;
        try {
            for (int round = 0; errors.isEmpty() && (round < 200 || hits.get() < 2000 && round < 20_000); round++) {
                RamBacking dimm = round % 2 == 0 ? RamBacking.memfd("dimm" + round, 0x8000) : RamBacking.anonymous(0x8000);
                backings.add(dimm);
                mem.transaction().add(new RamRegion("dimm", DIMM, 0x8000, 0, dimm)).commit();
                if (round == 100) {
                    DmaMapping m = (DmaMapping) mem.map(DIMM, 0x1000, DmaDirection.FROM_DEVICE);
                    MemorySegment kept = m.segment();
                    mem.unmap(m, 0);
                    rogue = Thread.ofPlatform().start(() -> {
                        try {
                            for (long i = 0; ; i++) {
                                kept.set(ValueLayout.JAVA_LONG, 8 * (i & 511), i);
                            }
                        } catch (IllegalStateException expected) {
                            lateFailures.incrementAndGet();
                        }
                    });
                }
                Thread.sleep(0, 100_000);
                removals.add(mem.transaction().remove("dimm").commit());
            }
        } finally {
            stop.set(true);
            for (Thread t : devices) {
                t.join();
            }
        }
        assertThat(errors).isEmpty();
        CompletableFuture.allOf(removals.toArray(new CompletableFuture<?>[0])).get(10, TimeUnit.SECONDS);
        rogue.join(TimeUnit.SECONDS.toMillis(10));
        assertThat(rogue.isAlive()).isFalse();
        assertThat(lateFailures.get()).as("the late accesses ended with IllegalStateException").isEqualTo(1);
        assertThat(backings).allMatch(RamBacking::isClosed);
        assertThat(mem.ownBackings()).isZero();
        assertThat(mem.liveMappings()).isZero();
        assertThat(mem.bouncePool().bytesInFlight()).isZero();
        mem.close();
        mem.released().get(5, TimeUnit.SECONDS);
        assertThat(openDescriptors()).as("memfds closed").isLessThanOrEqualTo(fdsBefore);
    }

    @Test
    void replacingARegionWithOneOnANewBackingLeavesNoWindowAndReusingTheBackingKeepsItMapped() throws Exception {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            RamBacking first = RamBacking.memfd("one", 0x1000);
            first.segment().fill((byte) 1);
            mem.addRegion(new RamRegion("dimm", DIMM, 0x1000, 0, first));
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong holes = new AtomicLong();
            AtomicLong reads = new AtomicLong();
            Thread reader = Thread.ofPlatform().start(() -> {
                byte[] one = new byte[1];
                while (!stop.get()) {
                    if (mem.read(DIMM + 0x800, one, 0, 1) != AccessResult.OK || one[0] == 0) {
                        holes.incrementAndGet();
                    }
                    reads.incrementAndGet();
                }
            });
            List<RamBacking> replaced = new ArrayList<>();
            List<CompletableFuture<Void>> gone = new ArrayList<>();
            RamBacking current = first;
            for (int i = 0; i < 300 || reads.get() < 10_000; i++) {
                RamBacking next = RamBacking.anonymous(0x1000);
                next.segment().fill((byte) (2 + i % 100));
                gone.add(mem.transaction().replace(new RamRegion("dimm", DIMM, 0x1000, 0, next)).commit());
                replaced.add(current);
                current = next;
            }
            stop.set(true);
            reader.join();
            assertThat(holes.get()).as("reads that found the DIMM unassigned or unfilled").isZero();
            CompletableFuture.allOf(gone.toArray(new CompletableFuture<?>[0])).get(5, TimeUnit.SECONDS);
            assertThat(replaced).allMatch(RamBacking::isClosed);
            assertThat(current.isClosed()).isFalse();

            // The same backing moved to another address (a BAR move) in one transaction: it stays mapped.
            CompletableFuture<Void> moved = mem.transaction().remove("dimm")
                    .add(new RamRegion("dimm-moved", 2 * DIMM, 0x1000, 0, current)).commit();
            moved.get(5, TimeUnit.SECONDS);
            assertThat(current.isClosed()).isFalse();
            assertThat(mem.readByte(2 * DIMM)).isEqualTo(current.segment().get(ValueLayout.JAVA_BYTE, 0));
            // Removed, then added back before the removal drained: the pending unmap is void.
            DmaMapping held = (DmaMapping) mem.map(2 * DIMM, 16, DmaDirection.TO_DEVICE);
            CompletableFuture<Void> removal = mem.removeRegion("dimm-moved");
            mem.addRegion(new RamRegion("dimm-back", 3 * DIMM, 0x1000, 0, current));
            mem.unmap(held, 16);
            removal.get(5, TimeUnit.SECONDS);
            assertThat(current.isClosed()).isFalse();
            assertThat(mem.readByte(3 * DIMM)).isEqualTo(current.segment().get(ValueLayout.JAVA_BYTE, 0));
            assertThat(mem.ownBackings()).isEqualTo(1);
        }
    }

    @Test
    void hostileLayoutsAndDescriptorsGetClearErrors(@TempDir Path dir) throws Exception {
        long page = Posix.pageSize();
        try (GuestMemory mem = GuestMemory.ofRam(0x10000); GuestMemory other = GuestMemory.ofRam(0x1000)) {
            RamBacking dimm = RamBacking.anonymous(0x4000);
            // Overlapping the default RAM: refused, nothing claimed, the caller still owns the backing.
            assertThatThrownBy(() -> mem.addRegion(new RamRegion("dimm", 0x8000, 0x4000, 0, dimm)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("overlaps");
            assertThat(dimm.isClosed()).isFalse();
            assertThat(mem.ownBackings()).isZero();
            assertThatThrownBy(() -> new RamRegion("big", DIMM, 0x4000, 0x1000, dimm))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("own backing has 0x4000 bytes");
            other.addRegion(new RamRegion("dimm", DIMM, 0x4000, 0, dimm));
            assertThatThrownBy(() -> mem.addRegion(new RamRegion("dimm", DIMM, 0x4000, 0, dimm)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("another address space");
            RamBacking closed = RamBacking.anonymous(0x1000);
            closed.close();
            assertThatThrownBy(() -> mem.addRegion(new RamRegion("gone", DIMM, 0x1000, 0, closed)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("closed");

            RamBacking memfd = RamBacking.memfd("vmm", 4 * page);
            int fd = memfd.fd().orElseThrow();
            assertThatThrownBy(() -> RamBacking.sharedFd(fd, 0, page + 1, true))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("multiple of the page size");
            assertThatThrownBy(() -> RamBacking.sharedFd(fd, 0, 0, true))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("multiple of the page size");
            assertThatThrownBy(() -> RamBacking.sharedFd(fd, 2 * page, 4 * page, true))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("past the end of the file");
            assertThatThrownBy(() -> RamBacking.sharedFd(fd, Long.MAX_VALUE - page, 4 * page, true))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("out of range");
            assertThatThrownBy(() -> RamBacking.sharedFd(-1, 0, page, true))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a descriptor");
            memfd.close();
            assertThatThrownBy(() -> RamBacking.sharedFd(fd, 0, page, true))
                    .isInstanceOf(IOException.class).hasMessageContaining("EBADF");

            int devNull = Posix.open(Path.of("/dev/null"), Posix.O_RDWR, 0);
            try {
                assertThatThrownBy(() -> RamBacking.sharedFd(devNull, 0, page, true))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("not a regular file");
            } finally {
                Posix.close(devNull);
            }

            // A read-only descriptor: ROM yes, RAM no.
            Path image = dir.resolve("rom.bin");
            byte[] content = new byte[(int) page];
            java.util.Arrays.fill(content, (byte) 0x3c);
            Files.write(image, content);
            int readOnly = Posix.open(image, Posix.O_RDONLY, 0);
            RamBacking rom;
            try {
                assertThatThrownBy(() -> RamBacking.sharedFd(readOnly, 0, page, true))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("read-only");
                rom = RamBacking.sharedFd(readOnly, 0, page, false);
            } finally {
                Posix.close(readOnly); // borrowed: the mapping keeps the file
            }
            assertThatThrownBy(() -> new RamRegion("ram-on-rom", DIMM, page, 0, rom))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("read-only");
            mem.addRegion(new RomRegion("bios", 0xfff0_0000L, page, 0, rom));
            assertThat(mem.readByte(0xfff0_0010L)).isEqualTo((byte) 0x3c);
            mem.writeByte(0xfff0_0010L, (byte) 1); // ROM: dropped, never a fault on the read-only mapping
            assertThat(mem.readByte(0xfff0_0010L)).isEqualTo((byte) 0x3c);
            DmaMapping toRom = (DmaMapping) mem.map(0xfff0_0000L, 16, DmaDirection.FROM_DEVICE);
            assertThat(toRom.bounced()).isTrue();
            toRom.segment().fill((byte) 9);
            mem.unmap(toRom, 16);
            assertThat(mem.readByte(0xfff0_0000L)).isEqualTo((byte) 0x3c);
            assertThat(Files.readAllBytes(image)).containsOnly((byte) 0x3c);
        }
    }

    private static String ascii(MemorySegment bytes) {
        return new String(bytes.toArray(ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII);
    }

    private static String run(String shell) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("sh", "-c", shell).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII);
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as("%s: %s", shell, out).isZero();
        return out;
    }

    private static long openDescriptors() throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        }
    }
}
