package io.guestdma.conformance;

import static io.guestdma.conformance.IdeDriver.*;

import io.guestdma.conformance.Conformance.Image;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Seeded random bus-master DMA on QEMU 7.2 and on our machine: PRD tables with entries in RAM,
 * straddling the end of RAM, wholly in unassigned space (our bounce path), of odd sizes and
 * addresses, 0 (= 64 KiB) sizes, with and without EOT; tables themselves in RAM, across the end
 * of RAM or in unassigned space; READ/WRITE DMA and their EXT forms at LBAs inside, at and past
 * the end of the disk; aborted transfers and transfers with bus mastering off. After every
 * command: the bus-master status, interrupt line, ATA status and error, and the guest RAM the
 * PRDs point at; at the end, the disk image.
 *
 * <p>A failure names its seed; rerun just that one with {@code -Dguestdma.seed=N}.
 */
class RandomDmaConformanceTest {
    private static final long MiB = 1 << 20;
    private static final long RAM = 64 * MiB;
    private static final long DISK = 16 * MiB;
    private static final long DISK_SECTORS = DISK / 512;
    private static final long UNASSIGNED = 0x8000000;
    /** PRD tables go here, below the low hole, out of the way of the data. */
    private static final long TABLES = 0x90000;
    /** QEMU has the VGA window, option ROMs and the BIOS at 0xa0000; our machine has RAM: keep out. */
    private static final long LOW_HOLE_END = 0x100000;
    private static final int COMMANDS_PER_SEED = 100;

    private static Target qemu;

    @BeforeAll
    static void requireQemu() {
        qemu = QemuTarget.require();
    }

    static Stream<Long> seeds() {
        String chosen = System.getProperty("guestdma.seed");
        if (chosen != null && !chosen.isBlank()) {
            return Stream.of(Long.decode(chosen.strip()));
        }
        return LongStream.of(1, 2, 3, 4, 5, 20240601).boxed();
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void randomDma(long seed) throws Exception {
        Conformance.assertSame(qemu, Targets.ours(), Image.patterned(DISK, DISK, seed), "",
                "random DMA, seed " + seed + " (rerun with -Dguestdma.seed=" + seed + ")",
                ide -> run(ide, new Random(seed)));
    }

    /** One PRD entry as generated, and the RAM it covers (for checking afterwards). */
    private record Entry(long address, int count, int byteCount) {
    }

    private static void run(IdeDriver ide, Random random) {
        ide.setUp();
        for (int n = 0; n < COMMANDS_PER_SEED; n++) {
            boolean ext = random.nextInt(4) == 0;
            boolean write = random.nextBoolean();
            int cmd = write ? (ext ? CMD_WRITE_DMA_EXT : CMD_WRITE_DMA) : (ext ? CMD_READ_DMA_EXT : CMD_READ_DMA);
            int count = sectorCount(random, ext);
            long lba = lba(random, ext, count == 0 ? (ext ? 65536 : 256) : count);
            int chosenFlags = switch (random.nextInt(20)) {
                case 0, 1 -> CMDF_ABORT;
                case 2 -> CMDF_NO_BM;
                default -> 0;
            };
            int flags = chosenFlags;

            int entryCount = random.nextInt(10) == 0 ? 20 + random.nextInt(30) : 1 + random.nextInt(6);
            long table = tableAddress(random, entryCount);
            // The engine may read entries at any time during the transfer: data never lands on
            // the table or on the zeros after it (read as further entries when EOT is missing).
            long tableEnd = table + 8L * entryCount + 4096;
            boolean eot = random.nextInt(8) != 0;
            long transferBytes = 512L * (count == 0 ? (ext ? 65536 : 256) : count);
            boolean odd = random.nextInt(3) == 0;
            List<Entry> entries = prdEntries(random, entryCount, table, tableEnd, odd);
            if (odd && !oddSizesAreSafe(entries, eot, table, transferBytes)) {
                entries = prdEntries(random, entryCount, table, tableEnd, false);
            }
            if (flags == CMDF_ABORT && !allInRam(entries, table)) {
                flags = 0; // QEMU 7.2 asserts when a bounce-buffered transfer is stopped: see allInRam
            }
            ByteBuffer b = ByteBuffer.allocate(entries.size() * 8).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < entries.size(); i++) {
                Entry e = entries.get(i);
                boolean last = i == entries.size() - 1;
                b.putInt((int) e.address()).putInt(e.count() | (last && eot ? PRDT_EOT : 0));
            }

            // Writes carry fresh random data; reads land on a known marker.
            List<long[]> ranges = ramRanges(entries);
            for (long[] r : ranges) {
                if (write) {
                    byte[] data = new byte[(int) r[1]];
                    random.nextBytes(data);
                    ide.qts.memwrite(r[0], data);
                } else {
                    ide.qts.memset(r[0], r[1], 0xc5);
                }
            }
            ide.qts.memset(table, tableEnd - table, 0);
            ide.qts.memwrite(table, b.array());
            String label = String.format("#%d %s lba %d count %d%s%s, table 0x%x, %s%s", n,
                    write ? "write" : "read", lba, count, ext ? " ext" : "",
                    flags == CMDF_ABORT ? " aborted" : flags == CMDF_NO_BM ? " no-busmaster" : "",
                    table, entries, eot ? "" : " no EOT");
            ide.sendDmaRequest(label, cmd | flags, lba, count, table);
            if (!write) {
                for (long[] r : ranges) {
                    ide.recordRam(label + " RAM 0x" + Long.toHexString(r[0]), r[0], (int) r[1]);
                }
            }
        }
    }

    private static int sectorCount(Random random, boolean ext) {
        return switch (random.nextInt(10)) {
            case 0 -> 0;                                   // 256 (LBA28) or 65536 (LBA48)
            case 1 -> 128 + random.nextInt(129);
            default -> 1 + random.nextInt(ext ? 300 : 64);
        };
    }

    private static long lba(Random random, boolean ext, int sectors) {
        return switch (random.nextInt(8)) {
            case 0 -> DISK_SECTORS - sectors;              // ends exactly at the end
            case 1 -> DISK_SECTORS - sectors + 1 + random.nextInt(sectors); // straddles it
            case 2 -> DISK_SECTORS + random.nextInt(1000); // wholly past it
            case 3 -> ext ? (1L << 48) - 1 - random.nextInt(4) : 0xfffffff - random.nextInt(4);
            default -> random.nextLong(Math.max(1, DISK_SECTORS - sectors));
        };
    }

    /**
     * QEMU 7.2's dma_blk_cb mishandles a mapped chunk that is not a multiple of 512 bytes: it
     * keeps only the remainder (qemu_iovec_discard_back with QEMU_ALIGN_DOWN) and never unmaps
     * what it dropped, so a dropped bounce buffer stays busy and the next transfer through it
     * hangs (and cancelling that one trips an assertion in ide_cancel_dma_sync). Sizes that are
     * not multiples of 512 are therefore only generated where QEMU maps the whole list at once
     * and the list is cut to the (aligned) transfer size: every entry in RAM, a proper table and
     * at least as many PRD bytes as the transfer moves.
     */
    private static boolean oddSizesAreSafe(List<Entry> entries, boolean eot, long table, long transferBytes) {
        if (!allInRam(entries, table)) {
            return false;
        }
        long total = 0;
        for (Entry e : entries) {
            total += e.byteCount();
        }
        if (!eot) {
            total += 65536L * (512 - entries.size()); // zero entries up to QEMU's one-page fail-safe
        }
        return total >= transferBytes;
    }

    /**
     * Whether the table and everything it points at is RAM, so QEMU needs no bounce buffer.
     * Stopping a transfer that goes through QEMU 7.2's bounce buffer and moves more than 16 KiB
     * trips {@code assert(s->bus->dma->aiocb == NULL)} in ide_cancel_dma_sync (the transfer is
     * parked waiting for the bounce buffer, which blk_drain does not wait for), so aborted
     * transfers stay in RAM.
     */
    private static boolean allInRam(List<Entry> entries, long table) {
        if (table < TABLES || table >= LOW_HOLE_END) {
            return false;
        }
        for (Entry e : entries) {
            if (e.address() + e.byteCount() > RAM) {
                return false;
            }
        }
        return true;
    }

    private static List<Entry> prdEntries(Random random, int n, long table, long tableEnd, boolean odd) {
        List<Entry> entries = new ArrayList<>();
        while (entries.size() < n) {
            int count = switch (random.nextInt(10)) {
                case 0 -> 0;                               // 64 KiB
                case 1 -> odd ? random.nextInt(65536) : 512 * random.nextInt(128); // bit 0 is ignored
                case 2 -> odd ? 2 + 2 * random.nextInt(300) : 512;
                default -> 512 * (1 + random.nextInt(16));
            };
            int bytes = (count & 0xfffe) == 0 ? 65536 : count & 0xfffe;
            long address = switch (random.nextInt(10)) {
                case 0 -> RAM - 512 * (1 + random.nextInt(8)) - (odd ? 2 : 0); // straddles the end
                case 1 -> UNASSIGNED + 0x1000L * random.nextInt(4096) + random.nextInt(64);     // bounce path
                case 2 -> 0x10000 + random.nextInt(0x70000);                                   // below the hole
                default -> LOW_HOLE_END + random.nextLong(RAM - LOW_HOLE_END - 0x20000);
            };
            long end = address + bytes;
            boolean inHole = address < LOW_HOLE_END && end > TABLES;
            boolean onTable = address < tableEnd && end > table;
            if (!inHole && !onTable) {
                entries.add(new Entry(address, count, bytes));
            }
        }
        return entries;
    }

    private static long tableAddress(Random random, int entries) {
        return switch (random.nextInt(12)) {
            case 0 -> UNASSIGNED + 0x10000;                // reads as zeros: 64 KiB at address 0
            case 1 -> RAM - 8L * Math.max(1, entries / 2); // runs off the end of RAM
            default -> TABLES + 8L * random.nextInt(0x1000);
        };
    }

    /**
     * The RAM the transfer may touch, clipped to RAM: the entries' ranges, plus the first 64 KiB,
     * where zero entries point (read after a table without EOT, or from a table outside RAM).
     */
    private static List<long[]> ramRanges(List<Entry> entries) {
        List<long[]> ranges = new ArrayList<>();
        for (Entry e : entries) {
            long start = e.address();
            long end = Math.min(RAM, start + e.byteCount());
            if (start < RAM && end > start) {
                ranges.add(new long[] {start, end - start});
            }
        }
        ranges.add(new long[] {0, 65536});
        return ranges;
    }
}
