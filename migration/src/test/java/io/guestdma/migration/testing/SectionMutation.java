package io.guestdma.migration.testing;

import java.util.Arrays;
import java.util.List;

/**
 * How the devices' hostile-load properties damage a saved section: bytes overwritten near the
 * front (where the registers and counters are) and anywhere, then possibly a cut.
 */
public final class SectionMutation {
    private SectionMutation() {
    }

    /**
     * Returns a damaged copy of a section.
     *
     * @param section the section as saved
     * @param nearTheFront offsets (taken modulo the length) to overwrite
     * @param anywhere more offsets, taken modulo the length
     * @param values the bytes to write, used in turn; at least as many as the offsets
     * @param cut 0..99: from 90 on, the section keeps only {@code (cut - 90) / 10} of its bytes
     * @return the damaged copy
     */
    public static byte[] apply(byte[] section, List<Integer> nearTheFront, List<Integer> anywhere,
                               List<Byte> values, int cut) {
        byte[] damaged = section.clone();
        int v = 0;
        for (int at : nearTheFront) {
            damaged[at % damaged.length] = values.get(v++ % values.size());
        }
        for (int at : anywhere) {
            damaged[at % damaged.length] = values.get(v++ % values.size());
        }
        return cut >= 90 ? Arrays.copyOf(damaged, damaged.length * (cut - 90) / 10) : damaged;
    }
}
