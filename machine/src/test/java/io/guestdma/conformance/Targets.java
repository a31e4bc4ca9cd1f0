package io.guestdma.conformance;

import java.util.List;

/** The targets the conformance tests compare with QEMU. */
final class Targets {
    private Targets() {
    }

    /** Our machine in-process, in each engine mode and on each backend, NBD (to qemu-nbd) included. */
    static List<Target> ours() {
        return List.of(
                new MachineTarget("ours(map,filechannel)", ""),
                new MachineTarget("ours(copy,filechannel)", ",dma=copy"),
                new MachineTarget("ours(map,native)", ",backend=native"),
                new MachineTarget("ours(map,nbd)", "", true));
    }

    /** Our machine in-process with the defaults only: for scenarios that do no DMA. */
    static List<Target> oursDefault() {
        return List.of(new MachineTarget("ours", ""));
    }
}
