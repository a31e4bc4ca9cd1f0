package io.guestdma.conformance;

import static io.guestdma.conformance.IdeDriver.*;

import java.io.ByteArrayOutputStream;

/**
 * The guest side of an ATAPI CD-ROM on the primary master, in the manner of QEMU's ide-test
 * ({@code send_scsi_cdb}, {@code cdrom_pio_impl}, {@code test_cdrom_dma}): PACKET with a byte
 * count limit, the 12-byte packet by PIO, then every DRQ block with its interrupt, interrupt reason
 * and byte count, or a bus-master transfer. Everything the target shows goes into the log.
 */
final class AtapiDriver {
    static final int CMD_PACKET = 0xa0;
    static final int CMD_IDENTIFY_PACKET = 0xa1;
    static final int CMD_DEVICE_RESET = 0x08;

    private final IdeDriver ide;

    AtapiDriver(IdeDriver ide) {
        this.ide = ide;
    }

    /** A 12-byte packet: the opcode and then the given bytes from byte 1 on. */
    static byte[] cdb(int... bytes) {
        byte[] packet = new byte[12];
        for (int i = 0; i < bytes.length; i++) {
            packet[i] = (byte) bytes[i];
        }
        return packet;
    }

    /** READ(10) of {@code count} sectors from {@code lba}. */
    static byte[] read10(long lba, int count) {
        return cdb(0x28, 0, (int) (lba >>> 24), (int) (lba >>> 16), (int) (lba >>> 8), (int) lba, 0,
                count >>> 8, count, 0);
    }

    /** READ(12) of {@code count} sectors from {@code lba}. */
    static byte[] read12(long lba, long count) {
        return cdb(0xa8, 0, (int) (lba >>> 24), (int) (lba >>> 16), (int) (lba >>> 8), (int) lba,
                (int) (count >>> 24), (int) (count >>> 16), (int) (count >>> 8), (int) count);
    }

    /**
     * Issues PACKET with {@code dma} in the feature register and the byte count limit in the
     * cylinder registers, then writes the packet once the drive asks for it.
     */
    void sendPacket(String label, byte[] packet, int byteCountLimit, boolean dma) {
        ide.ideOut(REG_DEVICE, 0);
        ide.ideOut(REG_FEATURE, dma ? 1 : 0);
        ide.ideOut(REG_LBA_MIDDLE, byteCountLimit & 0xff);
        ide.ideOut(REG_LBA_HIGH, (byteCountLimit >>> 8) & 0xff);
        ide.ideOut(REG_COMMAND, CMD_PACKET);
        ide.log.hex(label + " status after PACKET", ide.waitNotBusy());
        ide.log.hex(label + " reason after PACKET", ide.ideIn(REG_NSECTORS));
        ide.log.flag(label + " irq after PACKET", ide.qts.irq(IDE_PRIMARY_IRQ));
        for (int i = 0; i < 12; i += 2) {
            ide.qts.outw(IDE_BASE + REG_DATA, (packet[i] & 0xff) | (packet[i + 1] & 0xff) << 8);
        }
    }

    /**
     * A PIO command: the packet, then each DRQ block (interrupt, reason, byte count, status,
     * data), then the final status. Reads {@code wide} with 32-bit accesses where the block allows.
     *
     * @return all data received
     */
    byte[] pio(String label, byte[] packet, int byteCountLimit) {
        sendPacket(label, packet, byteCountLimit, false);
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        for (int block = 0; block < 200; block++) {
            int alt = ide.waitNotBusy();
            String at = label + " block " + block;
            ide.log.flag(at + " irq", ide.qts.irq(IDE_PRIMARY_IRQ));
            ide.log.hex(at + " alt status", alt);
            ide.log.hex(at + " reason", ide.ideIn(REG_NSECTORS));
            int count = ide.ideIn(REG_LBA_MIDDLE) | ide.ideIn(REG_LBA_HIGH) << 8;
            ide.log.hex(at + " byte count", count);
            ide.log.hex(at + " error", ide.ideIn(REG_ERROR));
            int status = ide.ideIn(REG_STATUS);
            ide.log.hex(at + " status", status);
            ide.log.flag(at + " irq after status read", ide.qts.irq(IDE_PRIMARY_IRQ));
            if ((status & DRQ) == 0) {
                break;
            }
            ByteArrayOutputStream chunk = new ByteArrayOutputStream();
            for (int i = 0; i < (count + 1) / 2; i++) {
                int word = ide.qts.inw(IDE_BASE + REG_DATA);
                chunk.write(word);
                chunk.write(word >>> 8);
            }
            ide.log.bytes(at + " data", chunk.toByteArray());
            data.writeBytes(chunk.toByteArray());
        }
        return data.toByteArray();
    }

    /**
     * A DMA command: PRD table at {@link IdeDriver#PRDT_ADDR}, the packet with the DMA feature,
     * START to memory, poll the bus master, then the registers.
     */
    void dma(String label, byte[] packet, int[][] prdt) {
        ide.writePrdt(PRDT_ADDR, prdt);
        ide.bmOut(BM_CMD, 0);
        ide.bmOut(BM_STATUS, BM_INTR);
        ide.qts.outl(BMDMA_BASE + BM_PRDT, (int) PRDT_ADDR);
        sendPacket(label, packet, 0, true);
        ide.log.hex(label + " alt status before START", ide.qts.inb(IDE_CONTROL));
        ide.bmOut(BM_CMD, BM_START | BM_WRITE);
        int bm = ide.waitForBusMaster();
        ide.log.hex(label + " bm status", bm);
        ide.log.flag(label + " irq", ide.qts.irq(IDE_PRIMARY_IRQ));
        ide.log.hex(label + " alt status", ide.qts.inb(IDE_CONTROL));
        ide.log.hex(label + " reason", ide.ideIn(REG_NSECTORS));
        ide.log.hex(label + " error", ide.ideIn(REG_ERROR));
        ide.log.hex(label + " status", ide.ideIn(REG_STATUS));
        ide.bmOut(BM_CMD, 0);
        ide.log.hex(label + " bm status after stop", ide.bmIn(BM_STATUS));
    }

    /** REQUEST SENSE with an 18-byte allocation: the sense key and ASC the last command left. */
    void requestSense(String label) {
        pio(label + " (request sense)", cdb(0x03, 0, 0, 0, 18), 18);
    }
}
