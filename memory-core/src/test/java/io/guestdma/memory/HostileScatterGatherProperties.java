package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Guest-written scatter-gather lists against streaming and packet DMA: entries in RAM, in a
 * working device, in a device whose handler throws, in unassigned space, just below 2^64 and
 * running over it. Whatever the list, after the transfer nothing is mapped or held, no exception
 * but {@link DmaAccessException} reaches the device, no RAM byte outside the list's own (unwrapped)
 * ranges changes, and a list that touches no failing device lands every byte where it points.
 */
class HostileScatterGatherProperties {
    private static final long RAM = 0x10000;
    private static final long DEVICE = 0x20000;
    private static final long BROKEN = 0x30000;
    private static final long TOP_RAM = -0x4000L; // RAM in the last 16 KiB below 2^64

    record Entry(int kind, long offset, int length) {
        long address() {
            return switch (kind) {
                case 0 -> offset % RAM;
                case 1 -> DEVICE + offset % 0x1000;
                case 2 -> BROKEN + offset % 0x1000;
                case 3 -> 0x100000 + offset;                 // unassigned
                case 4 -> TOP_RAM + offset % 0x4000;         // RAM just below the top
                default -> -1L - offset % 0x800;              // runs over 2^64
            };
        }
    }

    @Provide
    Arbitrary<List<Entry>> lists() {
        Arbitrary<Entry> entry = Combinators.combine(Arbitraries.integers().between(0, 5),
                Arbitraries.longs().between(0, 0xffff), Arbitraries.integers().between(1, 0x1800)).as(Entry::new);
        return entry.list().ofMinSize(1).ofMaxSize(8);
    }

    private static GuestMemory memory(int pool) {
        MmioHandler broken = FaultContainmentTest.failing(() -> new IllegalStateException("broken"));
        return GuestMemory.builder().ram("low", 0, RAM).ram("top", TOP_RAM, 0x4000)
                .mmio("device", DEVICE, 0x1000, new RecordingDevice(0x1000, 1, 8))
                .mmio("broken", BROKEN, 0x1000, broken)
                .bouncePoolBytes(pool).build();
    }

    /** Every RAM address an entry names without wrapping, as an index into low RAM or top RAM. */
    private static boolean[][] targets(List<Entry> list) {
        boolean[] low = new boolean[(int) RAM];
        boolean[] top = new boolean[0x4000];
        for (Entry e : list) {
            long a = e.address();
            for (int i = 0; i < e.length(); i++) {
                long at = a + i;
                if (Long.compareUnsigned(at, a) < 0) {
                    break; // wrapped: nothing there
                }
                if (Long.compareUnsigned(at, RAM) < 0) {
                    low[(int) at] = true;
                } else if (Long.compareUnsigned(at, TOP_RAM) >= 0) {
                    top[(int) (at - TOP_RAM)] = true;
                }
            }
        }
        return new boolean[][] {low, top};
    }

    private static byte[][] snapshot(GuestMemory mem) {
        byte[] low = new byte[(int) RAM];
        byte[] top = new byte[0x4000];
        mem.read(0, low, 0, low.length);
        mem.read(TOP_RAM, top, 0, top.length);
        return new byte[][] {low, top};
    }

    private static void assertOnlyTargetsChanged(byte[][] before, byte[][] after, boolean[][] targets) {
        for (int r = 0; r < 2; r++) {
            for (int i = 0; i < before[r].length; i++) {
                if (!targets[r][i] && before[r][i] != after[r][i]) {
                    throw new AssertionError(String.format("%s RAM byte 0x%x changed outside every entry",
                            r == 0 ? "low" : "top", i));
                }
            }
        }
    }

    private static boolean touchesBroken(List<Entry> list) {
        return list.stream().anyMatch(e -> e.kind() == 2);
    }

    @Property(tries = 300)
    void streamingWritesLandOnlyWhereTheListPoints(@ForAll("lists") List<Entry> list) {
        try (GuestMemory mem = memory(4096)) {
            byte[] fill = new byte[(int) RAM];
            new java.util.Random(list.hashCode()).nextBytes(fill);
            mem.write(0, fill, 0, fill.length);
            mem.write(TOP_RAM, fill, 0, 0x4000);
            byte[][] before = snapshot(mem);
            SgList sg = new SgList();
            list.forEach(e -> sg.add(e.address(), e.length()));
            DmaStream stream = new DmaStream(mem);
            stream.start(sg, DmaDirection.FROM_DEVICE, 1);
            boolean faulted = false;
            long position = 0;
            List<long[]> written = new ArrayList<>();
            try {
                while (!stream.done()) {
                    long n = stream.mapNext(Long.MAX_VALUE);
                    assertThat(n).as("a 4 KiB pool always maps something when nothing else is held").isPositive();
                    stream.iov().fill(0, (byte) 0xa5, n);
                    stream.unmapChunk(n);
                    written.add(new long[] {position, n});
                    position += n;
                }
            } catch (DmaAccessException e) {
                faulted = true;
            }
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
            assertThat(mem.liveMappings()).isZero();
            if (faulted) {
                assertThat(touchesBroken(list)).as("only a broken device fails the stream").isTrue();
            }
            byte[][] after = snapshot(mem);
            assertOnlyTargetsChanged(before, after, targets(list));
            if (!faulted) {
                assertThat(position).isEqualTo(sg.size());
                boolean[][] t = targets(list);
                for (int r = 0; r < 2; r++) {
                    for (int i = 0; i < t[r].length; i++) {
                        if (t[r][i]) {
                            assertThat(after[r][i]).as("RAM target byte 0x%x", i).isEqualTo((byte) 0xa5);
                        }
                    }
                }
            }
        }
    }

    @Property(tries = 300)
    void packetsAreWholeOrFailCleanly(@ForAll("lists") List<Entry> list) {
        try (GuestMemory mem = memory(1 + (list.size() * 977) % 8192)) {
            byte[][] before = snapshot(mem);
            SgList sg = new SgList();
            list.forEach(e -> sg.add(e.address(), e.length()));
            DmaPacket packet = new DmaPacket(mem, 0x8000);
            boolean failed = false;
            try {
                IoVector iov = packet.map(sg, DmaDirection.FROM_DEVICE);
                assertThat(iov.size()).isEqualTo(sg.size());
                iov.fill(0, (byte) 0x3c, sg.size());
                packet.complete(sg.size());
            } catch (DmaAccessException e) {
                failed = true;
            }
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
            assertThat(mem.liveMappings()).isZero();
            if (failed) {
                assertThat(touchesBroken(list) || sg.size() > 0x8000).as("why it failed").isTrue();
            }
            assertOnlyTargetsChanged(before, snapshot(mem), targets(list));
            // A packet over a broken device may fail at map (TO_DEVICE) time; a fresh map works.
            IoVector again = packet.map(new SgList().add(0, 16), DmaDirection.TO_DEVICE);
            assertThat(again.size()).isEqualTo(16);
            packet.complete(0);
        }
    }
}
