package io.guestdma.conformance;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * fw_cfg as libqos and firmware read it, on QEMU 7.2 and on ours: the items by the traditional
 * interface (selector 0x510, data 0x511), odd accesses, {@code etc/e820} found through the file
 * directory, and the DMA interface (select, read, skip, write, an unknown item, reading past the
 * end). The file directories differ (QEMU has ACPI, SMBIOS and option ROM files we do not), so
 * only {@code etc/e820} is looked up in each.
 */
class FwCfgConformanceTest {
    private static final long ACCESS = 0x1000;
    private static final long BUF = 0x2000;

    private static byte[] item(IdeDriver ide, int key, int length) {
        ide.qts.outw(0x510, key);
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) ide.qts.inb(0x511);
        }
        return b;
    }

    /** A DMA transfer: the FWCfgDmaAccess at {@link #ACCESS}, its address through 0x514/0x518. */
    private static void dma(IdeDriver ide, String label, int control, int length, long address) {
        byte[] access = ByteBuffer.allocate(16).order(ByteOrder.BIG_ENDIAN)
                .putInt(control).putInt(length).putLong(address).array();
        ide.qts.memwrite(ACCESS, access);
        ide.qts.outl(0x514, 0);
        ide.qts.outl(0x518, Integer.reverseBytes((int) ACCESS));
        ide.log.bytes(label + " access after", ide.qts.memread(ACCESS, 16));
        ide.log.bytes(label + " buffer", ide.qts.memread(BUF, 64));
    }

    private static final Conformance.Scenario FW_CFG = ide -> {
        HexFormat hex = HexFormat.of();
        for (int key : new int[] {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0d, 0x0e, 0x0f, 0x1234, 0x8000}) {
            ide.log.text(String.format("item 0x%x", key), hex.formatHex(item(ide, key, 20)));
        }
        ide.qts.outw(0x510, 0);
        ide.log.hex("inw 0x510", ide.qts.inw(0x510));
        ide.log.hex("inb 0x510", ide.qts.inb(0x510));
        ide.log.hex("inl 0x510", ide.qts.inl(0x510));
        ide.log.hex("inb 0x511 after", ide.qts.inb(0x511));
        ide.qts.outb(0x510, 1); // a byte write selects nothing
        ide.log.hex("inb 0x511 after outb", ide.qts.inb(0x511));
        ide.log.hex("inl 0x514", ide.qts.inl(0x514));
        ide.log.hex("inl 0x518", ide.qts.inl(0x518));
        ide.log.hex("inb 0x514", ide.qts.inb(0x514));

        byte[] count = item(ide, 0x19, 4);
        int files = ByteBuffer.wrap(count).getInt();
        byte[] dir = item(ide, 0x19, 4 + 64 * files);
        int e820Key = -1;
        int e820Size = -1;
        for (int i = 0; i < files; i++) {
            ByteBuffer entry = ByteBuffer.wrap(dir, 4 + 64 * i, 64);
            int size = entry.getInt();
            int key = entry.getShort() & 0xffff;
            String name = new String(dir, 4 + 64 * i + 8, 56, StandardCharsets.US_ASCII).replace("\0", "");
            if (name.equals("etc/e820")) {
                e820Key = key;
                e820Size = size;
            }
        }
        ide.log.hex("etc/e820 size", e820Size);
        ide.log.text("etc/e820", hex.formatHex(item(ide, e820Key, e820Size)));

        ide.qts.memset(BUF, 64, 0xee);
        dma(ide, "select signature, read 4", 0x08 | 0x02, 4, BUF);
        dma(ide, "select RAM size, skip 2", 0x03 << 16 | 0x08 | 0x04, 2, BUF);
        dma(ide, "read on, past the end", 0x02, 10, BUF);
        dma(ide, "select unknown item, read", 0x4321 << 16 | 0x08 | 0x02, 8, BUF);
        dma(ide, "write", 0x08 | 0x10, 4, BUF);
        dma(ide, "no operation", 0x08, 4, BUF);
        dma(ide, "select e820, read", e820Key << 16 | 0x08 | 0x02, 40, BUF);
        ide.qts.outw(0x510, 0x01);
        ide.log.hex("traditional read after DMA select", ide.qts.inb(0x511));
    };

    @Test
    void itemsAndDmaAsQemus() throws Exception {
        Conformance.assertSame(QemuTarget.require(), Targets.oursDefault(), Conformance.Image.blank(1 << 20), "",
                "fw_cfg", FW_CFG);
    }

    @Test
    void ramSizeFollowsDashM() throws Exception {
        Conformance.assertSame(QemuTarget.require(), Targets.oursDefault(), Conformance.Image.blank(1 << 20), "",
                List.of("-m", "1G"), "fw_cfg with -m 1G", ide -> ide.log.text("RAM size",
                        HexFormat.of().formatHex(item(ide, 0x03, 8))));
    }
}
