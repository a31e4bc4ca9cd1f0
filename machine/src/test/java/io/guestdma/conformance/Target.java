package io.guestdma.conformance;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** Something that runs a PC with one IDE disk and speaks qtest: QEMU, or our machine. */
interface Target {

    /** @return a short name for messages */
    String name();

    /**
     * Starts a fresh machine with 64 MiB of RAM and {@code image} as the primary master.
     *
     * @param image a raw image
     * @param driveOptions appended to {@code file=IMAGE,if=ide,format=raw} (e.g. ",discard=unmap"),
     *     in the syntax QEMU and qtest-machine share
     * @return a client connected to it; closing the client ends the machine
     */
    QtestClient start(Path image, String driveOptions) throws IOException;

    /**
     * Like {@link #start(Path, String)} with more machine options after the drive (e.g.
     * {@code -global ide-hd.serial=X}), for targets that take them.
     *
     * @throws UnsupportedOperationException if the target cannot take extra options
     */
    default QtestClient start(Path image, String driveOptions, List<String> extraArgs) throws IOException {
        if (extraArgs.isEmpty()) {
            return start(image, driveOptions);
        }
        throw new UnsupportedOperationException(name() + " takes no extra machine options");
    }

    /**
     * Starts a fresh machine from a command line of its own (memory, drives, devices), after the
     * options that make it a qtest target.
     *
     * @param machineArgs e.g. {@code -m 64M -drive ... -device ...}
     * @return a client connected to it; closing the client ends the machine
     * @throws UnsupportedOperationException if the target cannot take a command line of its own
     */
    default QtestClient startWith(List<String> machineArgs) throws IOException {
        throw new UnsupportedOperationException(name() + " takes no command line of its own");
    }
}
