package io.guestdma.conformance;

import java.io.IOException;
import java.nio.file.Path;

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
}
