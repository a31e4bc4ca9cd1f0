/**
 * The PIIX IDE controller with bus-master DMA, modelled on QEMU 7.2's {@code piix3-ide}.
 *
 * <p>{@link io.guestdma.ide.PiixIde} is the whole PCI function: two ATA channels (legacy ports
 * 0x1f0/0x3f6 and 0x170/0x376, IRQ 14 and 15), each with a master and a slave hard disk
 * ({@link io.guestdma.ide.DriveConfig}) and a bus-master engine programmed through BAR4. The
 * engine walks the guest's PRD table into a scatter-gather list and moves the data either
 * zero-copy ({@link io.guestdma.ide.DmaMode#MAP}: map, vectored backend I/O, unmap, chunk by
 * chunk) or through a heap buffer ({@link io.guestdma.ide.DmaMode#COPY}); the guest cannot tell
 * the two apart. Backend failures follow QEMU's rerror/werror policies
 * ({@link io.guestdma.block.ErrorPolicy}).
 */
package io.guestdma.ide;
