/**
 * A minimal PC that runs QEMU's IDE tests: {@link io.guestdma.machine.PcMachine} (RAM, the I/O
 * port space, PCI configuration mechanism #1 and the PIIX IDE function) and
 * {@link io.guestdma.machine.QtestServer}, QEMU's qtest protocol over a pair of streams, which
 * {@code bin/qtest-machine} ({@link io.guestdma.machine.QtestMachine}) serves on stdin/stdout.
 *
 * <p>It doubles as the example of wiring guest memory and the IDE controller into an emulator.
 * The essential part of {@code PcMachine}'s constructor:
 *
 * <pre>{@code
 * GuestMemory memory = GuestMemory.ofRam(64 << 20);
 * PiixIde ide = new PiixIde(memory, Runnable::run, DmaMode.MAP,
 *         level -> irq(14, level), level -> irq(15, level));
 * ide.attach(0, 0, DriveConfig.of(FileChannelBackend.open(image, BlockOptions.defaults())));
 *
 * PciFunction ideFunction = PciFunction.builder(0x8086, 0x7010)      // PIIX3 IDE, 00:01.1
 *         .classCode(0x010180).status(0x0280).ioBar(4, 16).build();  // BAR4: bus master
 * pci.attach(1, 1, ideFunction);
 * ports.map(0xcf8, 4, pci.addressPort());
 * ports.map(0xcfc, 4, pci.dataPort());
 * ports.map(0x1f0, 8, legacyIde(0x1f0));   // -> ide.ioRead / ide.ioWrite, always decoded
 * ports.map(0x3f6, 1, legacyIde(0x3f6));
 * ideFunction.onConfigWrite(() -> {        // the command register gates BAR4 and DMA
 *     ide.setBusMasterEnabled((ideFunction.command() & PciFunction.COMMAND_MASTER) != 0);
 *     long base = ideFunction.ioBarBase(4);   // -1 unless I/O is enabled and a base is set
 *     // (re)map ports base..base+15 -> ide.busMasterRead / ide.busMasterWrite
 * });
 * }</pre>
 */
package io.guestdma.machine;
