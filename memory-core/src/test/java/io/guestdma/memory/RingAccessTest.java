package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteOrder;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/**
 * What a virtqueue-style device needs of guest memory beyond read and write: pinned ring views
 * with ordered and atomic accessors, fill, explicit dirty marking, and region transactions.
 */
class RingAccessTest {

    @Test
    void acquireAndReleasePublishRingEntriesBetweenThreads() throws Exception {
        // The guest side writes an entry, then releases its index (offset 0); the device side
        // acquires the index and must see every entry written before it, then releases its own
        // index (offset 2) so that the slot may be reused: a virtqueue's avail/used hand-off.
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            RamView guest = mem.ramView(0x1000, 0x1000, ByteOrder.LITTLE_ENDIAN, true);
            RamView device = mem.ramView(0x1000, 0x1000, ByteOrder.LITTLE_ENDIAN, true);
            int rounds = 300_000;
            int slots = 64;
            AtomicLong wrong = new AtomicLong();
            Thread consumer = Thread.ofPlatform().start(() -> {
                int seen = 0;
                while (seen < rounds) {
                    int avail = device.getShortAcquire(0) & 0xffff;
                    while ((seen & 0xffff) != avail) {
                        if (device.getLong(8 + 8L * (seen % slots)) != seen) {
                            wrong.incrementAndGet();
                        }
                        seen++;
                        device.setShortRelease(2, (short) seen);
                    }
                    Thread.onSpinWait();
                }
            });
            for (int i = 0; i < rounds; i++) {
                while (((i - (guest.getShortAcquire(2) & 0xffff)) & 0xffff) >= slots) {
                    Thread.onSpinWait(); // ring full: wait for the device
                }
                guest.setLong(8 + 8L * (i % slots), i);
                guest.setShortRelease(0, (short) (i + 1));
            }
            consumer.join(TimeUnit.SECONDS.toMillis(60));
            assertThat(consumer.isAlive()).isFalse();
            assertThat(wrong.get()).as("entries seen before their index").isZero();
        }
    }

    /**
     * Message passing, jcstress's MP shape, for every index width and both byte orders: the writer
     * stores a payload (plain) and then release-stores the index that names it; the reader
     * acquire-loads the index and then loads the payload (plain). Seeing an index but a payload
     * older than it is the forbidden outcome. Slots are reused every 256 rounds, so a newer payload
     * is allowed. Each side uses its own cached view of the same RAM, as a device and a guest do.
     */
    @Test
    void releaseAcquirePublicationHoldsForEveryWidthAndByteOrder() throws Exception {
        for (ByteOrder order : new ByteOrder[] {ByteOrder.LITTLE_ENDIAN, ByteOrder.BIG_ENDIAN}) {
            for (int width : new int[] {2, 4, 8}) {
                try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
                    RamView writer = mem.ramView(0x2000, 0x2000, order, true);
                    RamView reader = mem.ramView(0x2000, 0x2000, order, true);
                    int rounds = 60_000; // below 2^16, so that a 16-bit index never wraps
                    AtomicLong forbidden = new AtomicLong();
                    AtomicLong observed = new AtomicLong();
                    Thread consumer = Thread.ofPlatform().start(() -> {
                        long last = 0;
                        while (last < rounds) {
                            long index = switch (width) {
                                case 2 -> reader.getShortAcquire(0) & 0xffffL;
                                case 4 -> reader.getIntAcquire(0) & 0xffff_ffffL;
                                default -> reader.getLongAcquire(0);
                            };
                            if (index != last) {
                                long payload = reader.getLong(8 + 8 * (index % 256));
                                if (payload < index) {
                                    forbidden.incrementAndGet();
                                }
                                observed.incrementAndGet();
                                last = index;
                            }
                        }
                    });
                    for (long i = 1; i <= rounds; i++) {
                        writer.setLong(8 + 8 * (i % 256), i);
                        switch (width) {
                            case 2 -> writer.setShortRelease(0, (short) i);
                            case 4 -> writer.setIntRelease(0, (int) i);
                            default -> writer.setLongRelease(0, i);
                        }
                    }
                    consumer.join(TimeUnit.SECONDS.toMillis(60));
                    assertThat(consumer.isAlive()).isFalse();
                    assertThat(observed.get()).as("%s %d-byte index: publications seen", order, width).isPositive();
                    assertThat(forbidden.get()).as("%s %d-byte index: payloads older than their index", order, width)
                            .isZero();
                }
            }
        }
    }

    @Test
    void atomicsAreAtomicAcrossThreadsAndMarkPagesDirty() throws Exception {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            DirtyLog.Client log = mem.dirtyLog().register("test");
            RamView view = mem.ramView(0x3000, 64, ByteOrder.LITTLE_ENDIAN, true);
            Runnable adder = () -> {
                for (int i = 0; i < 100_000; i++) {
                    view.getAndAddInt(0, 1);
                    view.getAndAddLong(8, 2);
                }
            };
            Thread a = Thread.ofPlatform().start(adder);
            Thread b = Thread.ofPlatform().start(adder);
            a.join();
            b.join();
            assertThat(view.getInt(0)).isEqualTo(200_000);
            assertThat(view.getLong(8)).isEqualTo(400_000);
            assertThat(view.compareAndSetInt(16, 0, 7)).isTrue();
            assertThat(view.compareAndSetInt(16, 0, 9)).isFalse();
            assertThat(view.getAndBitwiseOrLong(24, 0x10)).isZero();
            assertThat(view.getAndBitwiseOrInt(32, 0x3)).isZero();
            assertThat(view.getAndBitwiseOrInt(32, 0x4)).isEqualTo(3);
            assertThat(mem.readInt(0x3000 + 16)).isEqualTo(7);
            assertThat(log.getAndClear(0, 0x10000).cardinality()).isEqualTo(1);
            assertThatThrownBy(() -> view.getIntAcquire(2)).isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void byteOrderReadOnlyRomAndNonRamAreExplicit() {
        RecordingDevice dev = new RecordingDevice(0x1000, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x4000).rom("rom", 0x8000, 0x1000)
                .mmio("dev", 0x10000, 0x1000, dev).build()) {
            RamView be = mem.ramView(0x100, 16, ByteOrder.BIG_ENDIAN, true);
            be.setIntRelease(0, 0x01020304);
            assertThat(mem.readByte(0x100)).isEqualTo((byte) 1);
            assertThat(be.getIntAcquire(0)).isEqualTo(0x01020304);
            assertThat(mem.readInt(0x100)).isEqualTo(0x04030201);

            RamView rom = mem.ramView(0x8000, 16, ByteOrder.LITTLE_ENDIAN, false);
            assertThat(rom.isWritable()).isFalse();
            assertThatThrownBy(() -> rom.setShort(0, (short) 1)).isInstanceOf(UnsupportedOperationException.class);
            assertThatThrownBy(() -> mem.ramView(0x8000, 16, ByteOrder.LITTLE_ENDIAN, true))
                    .isInstanceOf(DmaAccessException.class).hasMessageContaining("not RAM");
            assertThatThrownBy(() -> mem.ramView(0x10000, 16, ByteOrder.LITTLE_ENDIAN, false))
                    .isInstanceOf(DmaAccessException.class);
            assertThatThrownBy(() -> mem.ramView(0x3ff8, 16, ByteOrder.LITTLE_ENDIAN, false))
                    .as("across the end of RAM").isInstanceOf(DmaAccessException.class);
            assertThatThrownBy(() -> mem.ramView(-8L, 16, ByteOrder.LITTLE_ENDIAN, false))
                    .as("over 2^64").isInstanceOf(DmaAccessException.class);
            assertThatThrownBy(() -> be.getLong(12)).isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void aViewSurvivesUnrelatedRegionChangesAndFailsOnceItsRamIsGone() throws Exception {
        GuestMemory mem = GuestMemory.builder().ram("ring", 0, 0x1000).ram("other", 0x1000, 0x1000)
                .build();
        RamView view = mem.ramView(0x100, 64, ByteOrder.LITTLE_ENDIAN, true);
        view.setIntRelease(0, 42);
        mem.addRegion(new MmioRegion("new-device", 0x100000, 0x1000, new RecordingDevice(0x1000, 1, 8)));
        assertThat(view.getIntAcquire(0)).as("still the same RAM").isEqualTo(42);
        CompletableFuture<Void> gone = mem.removeRegion("ring");
        assertThat(gone).isDone();
        assertThatThrownBy(() -> view.getIntAcquire(0)).isInstanceOf(DmaAccessException.class)
                .hasMessageContaining("no longer");
        assertThatThrownBy(() -> view.setShortRelease(2, (short) 1)).as("and on every access after")
                .isInstanceOf(DmaAccessException.class);
        RamView other = mem.ramView(0x1100, 64, ByteOrder.LITTLE_ENDIAN, true);
        other.setIntRelease(0, 7);
        mem.close();
        assertThatThrownBy(() -> other.getIntAcquire(0)).as("closed memory").isInstanceOf(IllegalStateException.class);
        mem.released().get(5, TimeUnit.SECONDS);
    }

    @Test
    void fillAndMarkDirtyCoverRamAndLeaveTheRestAlone() {
        RecordingDevice dev = new RecordingDevice(0x1000, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x4000).mmio("dev", 0x4000, 0x1000, dev)
                .build()) {
            DirtyLog.Client log = mem.dirtyLog().register("migration");
            assertThat(mem.fill(0x100, 0x2000, (byte) 0xab)).isEqualTo(AccessResult.OK);
            assertThat(mem.readByte(0x20ff)).isEqualTo((byte) 0xab);
            assertThat(mem.readByte(0x2100)).isZero();
            assertThat(log.getAndClear(0, 0x4000).cardinality()).isEqualTo(3);
            // Across RAM, the device and unassigned space: the device sees writes, the rest is reported.
            assertThat(mem.fill(0x3ff0, 0x1020, (byte) 0x5a)).isEqualTo(AccessResult.UNASSIGNED);
            assertThat(dev.registers[0xfff]).isEqualTo((byte) 0x5a);
            assertThat(mem.readByte(0x3fff)).isEqualTo((byte) 0x5a);
            assertThatThrownBy(() -> mem.fill(0, -1, (byte) 0)).isInstanceOf(IllegalArgumentException.class);
            log.getAndClear(0, 0x4000);
            // A write made outside the library (straight into the backing), then declared.
            mem.backing().segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0x3001, (byte) 1);
            mem.markDirty(0x2ff0, 0x3000); // RAM, the device, unassigned: only RAM pages count
            assertThat(log.getAndClear(0, 0x4000).stream().toArray()).containsExactly(2, 3);
        }
    }

    @Test
    void aTransactionReplacesARegionWithNoWindowOfUnassignedSpace() throws Exception {
        RecordingDevice a = new RecordingDevice(0x1000, 1, 8);
        RecordingDevice b = new RecordingDevice(0x1000, 1, 8);
        java.util.Arrays.fill(a.registers, (byte) 1);
        java.util.Arrays.fill(b.registers, (byte) 2);
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x1000).mmio("bar", 0x10000, 0x1000, a).build()) {
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong holes = new AtomicLong();
            Thread reader = Thread.ofPlatform().start(() -> {
                byte[] one = new byte[1];
                while (!stop.get()) {
                    if (mem.read(0x10000, one, 0, 1) != AccessResult.OK) {
                        holes.incrementAndGet();
                    }
                }
            });
            for (int i = 0; i < 2000; i++) {
                RecordingDevice next = i % 2 == 0 ? b : a;
                mem.transaction().replace(new MmioRegion("bar", 0x10000, 0x1000, next)).commit();
            }
            stop.set(true);
            reader.join();
            assertThat(holes.get()).as("reads that found the BAR unassigned").isZero();
            assertThat(mem.readByte(0x10000)).isEqualTo((byte) 1);

            // An invalid transaction changes nothing.
            assertThatThrownBy(() -> mem.transaction().remove("bar")
                    .add(new RamRegion("overlap", 0x800, 0x1000, 0)).commit())
                    .isInstanceOf(IllegalArgumentException.class);
            assertThat(mem.regions()).extracting(Region::name).containsExactly("ram", "bar");
            RegionTransaction once = mem.transaction().remove("bar");
            once.commit();
            assertThatThrownBy(once::commit).isInstanceOf(IllegalStateException.class);
            assertThat(mem.regionAt(0x10000)).isEmpty();
        }
    }
}
