package io.guestdma.conformance;

import static io.guestdma.conformance.IdeDriver.*;

import io.guestdma.conformance.Conformance.Image;
import io.guestdma.conformance.Conformance.Scenario;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The machine around the IDE, replayed on QEMU 7.2 and on ours: PCI configuration space
 * (contents, write masks, BAR sizing), configuration mechanism #1's odd corners, I/O port
 * decoding (BAR4 gated by the command register, legacy ports always on, unassigned ports, wide
 * and unaligned accesses), guest memory at the edges of RAM, and the qtest replies themselves.
 */
class MachineConformanceTest {
    private static final long MiB = 1 << 20;
    private static final long RAM_END = 64 * MiB;
    private static Target qemu;

    @BeforeAll
    static void requireQemu() {
        qemu = QemuTarget.require();
    }

    private static void check(String name, Scenario scenario) throws Exception {
        Conformance.assertSame(qemu, Targets.oursDefault(), Image.blank(16 * MiB), "", name, scenario);
    }

    @Test
    void pciConfigurationSpace() throws Exception {
        check("PCI configuration space", ide -> {
            for (int register = 0; register < 256; register += 4) {
                ide.log.hex(String.format("00:01.1 [0x%02x]", register), ide.configRead(IDE_DEVFN, register, 4));
            }
            for (int register = 0; register < 0x40; register += 4) {
                ide.log.hex(String.format("00:00.0 [0x%02x]", register), ide.configRead(0, register, 4));
            }
            for (int register = 0; register < 0x10; register += 4) {
                ide.log.hex(String.format("00:01.0 [0x%02x]", register), ide.configRead(1 << 3, register, 4));
            }
            ide.log.hex("00:02.0 (empty slot)", ide.configRead(2 << 3, 0, 4));
            ide.log.hex("00:01.2 (no such function)", ide.configRead(1 << 3 | 2, 0, 4));
            ide.qts.outl(0xcf8, 0x80010000);
            ide.log.hex("bus 1 device 0", ide.qts.inl(0xcfc));

            // Write masks of the IDE function's header and some device-specific registers.
            for (int register = 0; register < 0x40; register += 4) {
                int old = ide.configRead(IDE_DEVFN, register, 4);
                ide.configWrite(IDE_DEVFN, register, 4, 0xffffffff);
                ide.log.hex(String.format("00:01.1 [0x%02x] after ones", register), ide.configRead(IDE_DEVFN, register, 4));
                ide.configWrite(IDE_DEVFN, register, 4, 0);
                ide.log.hex(String.format("00:01.1 [0x%02x] after zeros", register), ide.configRead(IDE_DEVFN, register, 4));
                ide.configWrite(IDE_DEVFN, register, 4, old);
            }
            for (int register : new int[] {0x40, 0x44, 0x48, 0xfc}) {
                ide.configWrite(IDE_DEVFN, register, 4, 0x12345678 + register);
                ide.log.hex(String.format("00:01.1 [0x%02x] written", register), ide.configRead(IDE_DEVFN, register, 4));
            }
            for (int register = 0; register < 0x40; register += 4) {
                if (register == 0x10 || register == 0x14 || register == 0x18 || register == 0x1c
                        || register == 0x24 || register == 0x30) {
                    continue; // BARs QEMU's i440FX bridge has none of anyway
                }
                int old = ide.configRead(0, register, 4);
                ide.configWrite(0, register, 4, 0xffffffff);
                ide.log.hex(String.format("00:00.0 [0x%02x] after ones", register), ide.configRead(0, register, 4));
                ide.configWrite(0, register, 4, old);
            }

            // Byte and word accesses, and the latch's low bits.
            ide.qts.outl(0xcf8, 0x80000000 | IDE_DEVFN << 8);
            for (int port = 0xcfc; port < 0xd00; port++) {
                ide.log.hex(String.format("inb 0x%x", port), ide.qts.inb(port));
                ide.log.hex(String.format("inw 0x%x", port), ide.qts.inw(port));
                ide.log.hex(String.format("inl 0x%x", port), ide.qts.inl(port));
            }
            ide.qts.outl(0xcf8, 0x80000002 | IDE_DEVFN << 8);
            ide.log.hex("latch low bits 2: inl 0xcfc", ide.qts.inl(0xcfc));
            ide.qts.outl(0xcf8, 0x800000fe | IDE_DEVFN << 8);
            ide.log.hex("latch 0xfe: inl 0xcfc", ide.qts.inl(0xcfc));
            ide.qts.outl(0xcf8, 0x80000040 | IDE_DEVFN << 8);
            ide.qts.outb(0xcfd, 0xab);
            ide.qts.outw(0xcfe, 0xcdef);
            ide.log.hex("after byte and word writes", ide.qts.inl(0xcfc));
            ide.qts.outl(0xcf8, 0x00000000 | IDE_DEVFN << 8);
            ide.log.hex("enable bit clear: inl 0xcfc", ide.qts.inl(0xcfc));
            ide.qts.outl(0xcfc, 0);

            // The latch itself, and the reset control register on its second byte.
            ide.qts.outl(0xcf8, 0x80000a05);
            ide.qts.outb(0xcf8, 0x12);
            ide.qts.outw(0xcfa, 0x3456);
            for (int port = 0xcf8; port < 0xcfc; port++) {
                ide.log.hex(String.format("latch inb 0x%x", port), ide.qts.inb(port));
                ide.log.hex(String.format("latch inw 0x%x", port), ide.qts.inw(port));
                ide.log.hex(String.format("latch inl 0x%x", port), ide.qts.inl(port));
            }
            ide.qts.outb(0xcf9, 0x0a);
            ide.log.hex("reset control", ide.qts.inb(0xcf9));
            ide.log.hex("reset control inw", ide.qts.inw(0xcf9));
            ide.log.hex("latch after reset control write", ide.qts.inl(0xcf8));
        });
    }

    @Test
    void portDecoding() throws Exception {
        check("port decoding", ide -> {
            ide.qts.irqInterceptIn("ioapic");
            // Before any PCI setup: legacy ports answer, BAR4 is nowhere.
            ide.log.hex("status with command register 0", ide.qts.inb(0x1f7));
            ide.log.hex("BAR4 at power-on", ide.configRead(IDE_DEVFN, 0x20, 4));
            ide.log.hex("command at power-on", ide.configRead(IDE_DEVFN, 0x04, 2));
            ide.configWrite(IDE_DEVFN, 0x20, 4, BMDMA_BASE);
            ide.log.hex("bm status, I/O disabled", ide.qts.inb(BMDMA_BASE + 2));
            ide.configWrite(IDE_DEVFN, 0x04, 2, 0x1);
            ide.log.hex("bm status, I/O enabled", ide.qts.inb(BMDMA_BASE + 2));
            ide.configWrite(IDE_DEVFN, 0x20, 4, 0);
            ide.log.hex("old window, BAR at 0", ide.qts.inb(BMDMA_BASE + 2));
            ide.configWrite(IDE_DEVFN, 0x20, 4, 0xfffffff0);
            ide.log.hex("BAR at 0xfffffff0", ide.configRead(IDE_DEVFN, 0x20, 4));
            ide.log.hex("port 0xfff2", ide.qts.inb(0xfff2));
            ide.configWrite(IDE_DEVFN, 0x20, 4, 0xfff0);
            ide.log.hex("port 0xfff2 with BAR at 0xfff0", ide.qts.inb(0xfff2));
            ide.configWrite(IDE_DEVFN, 0x20, 4, 0x1c000);
            ide.log.hex("port 0xc002 with BAR at 0x1c000", ide.qts.inb(BMDMA_BASE + 2));

            // BAR4 over the legacy command block hides it; moving it away uncovers it.
            ide.configWrite(IDE_DEVFN, 0x20, 4, 0x1f0);
            for (int port = 0x1f0; port < 0x200; port++) {
                ide.log.hex(String.format("inb 0x%x with BAR at 0x1f0", port), ide.qts.inb(port));
            }
            ide.configWrite(IDE_DEVFN, 0x20, 4, BMDMA_BASE);
            ide.log.hex("status again", ide.qts.inb(0x1f7));

            // The bus-master window: widths, alignments, write-1-to-clear and stored bits.
            ide.qts.outl(BMDMA_BASE + 4, 0x12345677);
            ide.qts.outw(BMDMA_BASE + 12, 0xbeef);
            ide.qts.outb(BMDMA_BASE + 15, 0x5a);
            ide.qts.outb(BMDMA_BASE + 2, 0x66);
            ide.qts.outb(BMDMA_BASE + 10, 0x60);
            ide.qts.outw(BMDMA_BASE + 8, 0x0909);
            for (int offset = 0; offset < 16; offset++) {
                ide.log.hex("bm inb +" + offset, ide.qts.inb(BMDMA_BASE + offset));
                ide.log.hex("bm inw +" + offset, ide.qts.inw(BMDMA_BASE + offset));
                ide.log.hex("bm inl +" + offset, ide.qts.inl(BMDMA_BASE + offset));
            }
            ide.configWrite(IDE_DEVFN, 0x04, 2, 0);
            ide.log.hex("bm window after I/O disable", ide.qts.inl(BMDMA_BASE + 4));

            // Unassigned ports and the top of the port space. (QEMU's pc has ISA devices we do not
            // model, e.g. the DMA controller at 0-0xf and the floppy controller at 0x3f0-0x3f5 and
            // 0x3f7: those ports are left out.)
            for (int port : new int[] {0x80, 0x1ee, 0x1f8, 0x3f8, 0xfffc, 0xfffd, 0xfffe, 0xffff}) {
                ide.log.hex(String.format("inb 0x%x", port), ide.qts.inb(port));
                ide.log.hex(String.format("inw 0x%x", port), ide.qts.inw(port));
                ide.log.hex(String.format("inl 0x%x", port), ide.qts.inl(port));
            }
        });
    }

    /** Wide and unaligned accesses to the legacy IDE ports, which QEMU passes to its port lists whole. */
    @Test
    void wideLegacyPortAccesses() throws Exception {
        check("wide legacy IDE port accesses", ide -> {
            ide.qts.irqInterceptIn("ioapic");
            ide.ideOut(REG_DEVICE, 0xe0);
            ide.ideOut(REG_COMMAND, 0xfe); // abort: raises the interrupt
            ide.log.flag("irq after abort", ide.qts.irq(IDE_PRIMARY_IRQ));
            for (int port = 0x1f1; port <= 0x1f7; port++) {
                ide.log.hex(String.format("inw 0x%x", port), ide.qts.inw(port));
                ide.log.flag(String.format("irq after inw 0x%x", port), ide.qts.irq(IDE_PRIMARY_IRQ));
            }
            ide.ideOut(REG_COMMAND, 0xfe);
            for (int port = 0x1f1; port <= 0x1f7; port++) {
                ide.log.hex(String.format("inl 0x%x", port), ide.qts.inl(port));
                ide.log.flag(String.format("irq after inl 0x%x", port), ide.qts.irq(IDE_PRIMARY_IRQ));
            }
            for (int port : new int[] {0x3f6, 0x376}) {
                ide.log.hex(String.format("inw 0x%x", port), ide.qts.inw(port));
                ide.log.hex(String.format("inl 0x%x", port), ide.qts.inl(port));
            }
            ide.qts.outw(0x1f2, 0x0403);
            ide.log.hex("after outw 0x1f2: nsectors", ide.ideIn(REG_NSECTORS));
            ide.log.hex("after outw 0x1f2: lba low", ide.ideIn(REG_LBA_LOW));
            ide.qts.outl(0x1f3, 0x77665544);
            ide.log.hex("after outl 0x1f3: lba low", ide.ideIn(REG_LBA_LOW));
            ide.log.hex("after outl 0x1f3: lba mid", ide.ideIn(REG_LBA_MIDDLE));
            ide.qts.outw(0x1f6, 0x00a0); // device, then command 0x00 (NOP: aborted)
            ide.log.flag("irq after outw 0x1f6", ide.qts.irq(IDE_PRIMARY_IRQ));
            ide.log.hex("device after outw 0x1f6", ide.ideIn(REG_DEVICE));
            ide.log.hex("error after outw 0x1f6", ide.ideIn(REG_ERROR));
            ide.log.hex("status after outw 0x1f6", ide.ideIn(REG_STATUS));

            // A byte read of the data register takes a whole word from the PIO buffer (QEMU
            // does this for the pre-GRUB Solaris boot loader) and returns its low byte.
            ide.log.hex("inb 0x1f0 without data", ide.qts.inb(0x1f0));
            ide.ideOut(REG_DEVICE, 0);
            ide.ideOut(REG_COMMAND, CMD_IDENTIFY);
            for (int i = 0; i < 4; i++) {
                ide.log.hex("identify inb 0x1f0 #" + i, ide.qts.inb(0x1f0));
            }
            ide.log.hex("identify inw 0x1f0 after 4 byte reads", ide.qts.inw(0x1f0));
            ide.log.hex("identify inw 0x1ef", ide.qts.inw(0x1ef));
        });
    }

    @Test
    void guestMemoryEdges() throws Exception {
        check("guest memory edges", ide -> {
            ide.qts.memset(RAM_END - 16, 32, 0xa5);
            ide.log.text("read across the end of RAM", ide.qts.raw("read 0x3fffff8 16"));
            ide.log.text("b64read across the end of RAM", ide.qts.raw("b64read 0x3fffff8 16"));
            ide.log.text("readq across the end of RAM", ide.qts.raw("readq 0x3fffffc"));
            ide.log.text("readq unassigned", ide.qts.raw("readq 0x8000000"));
            ide.qts.writel(0x8000000, 0x12345678);
            ide.log.text("readl after write to unassigned", ide.qts.raw("readl 0x8000000"));
            ide.log.text("readq low RAM", ide.qts.raw("readq 0x1000"));
        });
    }

    /** The reply lines themselves, byte for byte. */
    @Test
    void protocolReplies() throws Exception {
        String[] commands = {
                "endianness", "irq_intercept_in ioapic", "irq_intercept_in ioapic", "irq_intercept_in i8259",
                "no_such_command 1 2", "inb 0x80", "inw 0x80", "inl 0x80", "inb 0x1f7", "inb 0x1f6",
                "outb 0x1f6 0x1a0", "inb 0x1f6", "outb 0x1f6 0xa0", "outw 0x80 0x12345", "inb 128", "inb 0200",
                "writeb 0x1000 0x1ff", "writew 0x1002 0xabcd", "writel 0x1004 0x89abcdef",
                "writeq 0x1008 0x0123456789abcdef", "readb 0x1000", "readw 0x1002", "readl 0x1004",
                "readq 0x1008", "readq 0x1001", "read 0x1000 16", "read 0x1000 1",
                "write 0x2000 4 0x12", "read 0x2000 4", "write 0x2000 4 0x123456789a", "read 0x2000 8",
                "write 0x2000 2 0x", "write 0x2000 3 0x12345", "read 0x2000 3",
                "b64read 0x1000 5", "b64read 0x1000 0", "b64write 0x3000 4 AQIDBA==", "b64read 0x3000 4",
                "b64write 0x3000 4 AQ", "memset 0x4000 0 5", "memset 0x4000 3 0x1ff", "read 0x4000 4",
                "writel 4096 10", "readl 010000",
        };
        check("protocol replies", ide -> {
            for (String command : commands) {
                ide.log.text(command, ide.qts.raw(command));
            }
        });
    }
}
