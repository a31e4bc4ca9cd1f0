package io.guestdma.ide;

import static io.guestdma.ide.IdeRig.*;
import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.memory.GuestMemory;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;

/**
 * The MAP and COPY engines are indistinguishable to the guest: the same command sequence with the
 * same random PRD tables (RAM, MMIO and unassigned space, odd sizes, 0 = 64 KiB, missing EOT),
 * LBAs up to and past the end, aborts and bus mastering toggled leaves the same RAM, disk, status
 * registers and interrupt history.
 */
class DmaModeEquivalenceProperties {
    private static final long RAM = 4L << 20;
    private static final long MMIO_BASE = 0xfe000000L;
    private static final int MMIO_SIZE = 65536;
    private static final long SECTORS = 4096;

    record Prd(long address, int count) {
    }

    record Step(int command, long lba, int nsectors, List<Prd> prds, boolean abort,
                boolean busMaster, long[] trimEntries) {
    }

    @Provide
    Arbitrary<List<Step>> sequences() {
        Arbitrary<Long> address = Arbitraries.oneOf(
                Arbitraries.longs().between(0x20000, RAM - 1).map(a -> a & ~1L),
                Arbitraries.longs().between(RAM - 4096, RAM + 4096),
                Arbitraries.longs().between(MMIO_BASE, MMIO_BASE + MMIO_SIZE - 2),
                Arbitraries.longs().between(0x80000000L, 0xfffff000L));
        Arbitrary<Integer> count = Arbitraries.oneOf(
                Arbitraries.integers().between(1, 8).map(n -> n * 512),
                Arbitraries.integers().between(0, 0xffff),
                Arbitraries.just(0));
        Arbitrary<Prd> prd = Combinators.combine(address, count, Arbitraries.integers().between(0, 9))
                .as((a, c, eotChance) -> new Prd(a, c));
        Arbitrary<List<Prd>> table = prd.list().ofMinSize(1).ofMaxSize(6).map(list -> {
            List<Prd> t = new ArrayList<>(list);
            Prd last = t.removeLast();
            t.add(new Prd(last.address(), last.count() | PRD_EOT));
            return t;
        });
        Arbitrary<List<Prd>> noEot = prd.list().ofMinSize(1).ofMaxSize(4);
        Arbitrary<Long> lba = Arbitraries.oneOf(Arbitraries.longs().between(0, SECTORS - 1),
                Arbitraries.longs().between(SECTORS - 40, SECTORS + 2));
        Arbitrary<long[]> trim = Arbitraries.longs().between(0, SECTORS + 4)
                .flatMap(s -> Arbitraries.integers().between(0, 40)
                        .map(n -> ((long) n << 48) | s))
                .array(long[].class).ofMinSize(1).ofMaxSize(4);
        Arbitrary<Step> step = Combinators.combine(
                        Arbitraries.of(CMD_READ_DMA, CMD_WRITE_DMA, CMD_DSM),
                        lba, Arbitraries.integers().between(0, 40),
                        Arbitraries.frequencyOf(Tuple.of(4, table), Tuple.of(1, noEot)),
                        Arbitraries.of(false, false, true),
                        Arbitraries.of(true, true, true, false), trim)
                .as(Step::new);
        return step.list().ofMinSize(1).ofMaxSize(4);
    }

    @Property(tries = 60)
    void mapAndCopyLookTheSameToTheGuest(@ForAll("sequences") List<Step> steps) {
        List<Object> map = run(DmaMode.MAP, steps);
        List<Object> copy = run(DmaMode.COPY, steps);
        assertThat(copy).hasSameSizeAs(map);
        for (int i = 0; i < map.size(); i++) {
            assertThat(copy.get(i)).as("observation %d", i).isEqualTo(map.get(i));
        }
    }

    private static List<Object> run(DmaMode mode, List<Step> steps) {
        RecordingMmio mmio = new RecordingMmio(MMIO_SIZE);
        GuestMemory memory = GuestMemory.builder()
                .ram("ram", 0, RAM)
                .mmio("dev", MMIO_BASE, MMIO_SIZE, mmio)
                .bouncePoolBytes(4096)
                .build();
        List<Object> seen = new ArrayList<>();
        try (IdeRig rig = IdeRig.builder().mode(mode).memory(memory).sectors(SECTORS).build()) {
            rig.writeDisk(0, pattern((int) SECTORS * 512, 1));
            rig.memory.write(0x20000, pattern((int) (RAM - 0x20000), 2), 0, (int) (RAM - 0x20000));
            for (Step step : steps) {
                rig.ide.setBusMasterEnabled(true);
                List<Prd> prds = step.prds();
                long[][] table = new long[prds.size()][];
                for (int i = 0; i < table.length; i++) {
                    table[i] = new long[] {prds.get(i).address(), prds.get(i).count() & 0xffffffffL};
                }
                rig.writePrdt(PRDT_ADDR, table);
                if (step.command() == CMD_DSM) {
                    long data = prds.getFirst().address();
                    for (int i = 0; i < step.trimEntries().length; i++) {
                        rig.memory.writeLong(data + 8L * i, step.trimEntries()[i]);
                    }
                }
                rig.ide.setBusMasterEnabled(step.busMaster());
                DmaResult r = rig.sendDma(step.command(), step.lba(), step.nsectors(), PRDT_ADDR,
                        step.abort());
                seen.add(r);
                seen.add(List.of(rig.inb(REG_NSECTORS), rig.inb(REG_LBA_LOW), rig.inb(REG_LBA_MID)));
            }
            seen.add(java.util.Arrays.hashCode(rig.ram(0, (int) RAM)));
            seen.add(java.util.Arrays.hashCode(rig.diskBytes(0, (int) SECTORS * 512)));
            seen.add(java.util.Arrays.hashCode(mmio.contents()));
            seen.add(rig.irq14.transitions());
            seen.add(memory.bouncePool().bytesInFlight());
        }
        return seen;
    }
}
