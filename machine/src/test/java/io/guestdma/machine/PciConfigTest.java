package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** PciFunction's configuration space rules and PciHost's mechanism #1, without QEMU. */
class PciConfigTest {

    private static PciFunction ide() {
        return PciFunction.builder(0x8086, 0x7010).classCode(0x010180).status(0x0280).ioBar(4, 16).build();
    }

    @Test
    void powerOnIdentityAndDefaults() {
        PciFunction f = ide();
        assertThat(f.readConfig(0x00, 4)).isEqualTo(0x70108086);
        assertThat(f.readConfig(0x04, 4)).isEqualTo(0x02800000);
        assertThat(f.readConfig(0x08, 4)).isEqualTo(0x01018000);
        assertThat(f.readConfig(0x20, 4)).isEqualTo(0x00000001);
        assertThat(f.readConfig(0x2c, 4)).isEqualTo(0x11001af4);
        assertThat(f.readConfig(0x09, 1)).isEqualTo(0x80);
        assertThat(f.readConfig(0xfe, 4)).as("bytes past 0xff read as zero").isEqualTo(0);
    }

    @Test
    void writeMasksMatchQemu() {
        PciFunction f = ide();
        for (int register = 0; register < 0x40; register += 4) {
            f.writeConfig(register, 4, 0xffffffff);
        }
        assertThat(f.readConfig(0x00, 4)).isEqualTo(0x70108086);
        assertThat(f.readConfig(0x04, 4)).as("command: IO, MEM, MASTER, SERR, INTx disable").isEqualTo(0x02800507);
        assertThat(f.readConfig(0x0c, 4)).as("cache line size").isEqualTo(0xff);
        assertThat(f.readConfig(0x10, 4)).as("undeclared BAR").isZero();
        assertThat(f.readConfig(0x20, 4)).as("BAR4 size probe").isEqualTo(0xfffffff1);
        assertThat(f.readConfig(0x3c, 4)).as("interrupt line").isEqualTo(0xff);
        f.writeConfig(0x41, 2, 0xbeef);
        assertThat(f.readConfig(0x40, 4)).as("device-specific registers are writable").isEqualTo(0x00beef00);
    }

    @Test
    void ioBarDecodesOnlyWithIoEnabledAndAPlausibleBase() {
        PciFunction f = ide();
        f.writeConfig(0x20, 4, 0xc003);
        assertThat(f.readConfig(0x20, 4)).isEqualTo(0xc001);
        assertThat(f.ioBarBase(4)).as("I/O space disabled").isEqualTo(-1);
        f.writeConfig(0x04, 2, PciFunction.COMMAND_IO);
        assertThat(f.ioBarBase(4)).isEqualTo(0xc000);
        f.writeConfig(0x20, 4, 0);
        assertThat(f.ioBarBase(4)).as("base 0").isEqualTo(-1);
        f.writeConfig(0x20, 4, 0xfffffff0);
        assertThat(f.ioBarBase(4)).as("window reaching 0xffffffff").isEqualTo(-1);
        f.writeConfig(0x20, 4, 0x10000);
        assertThat(f.ioBarBase(4)).as("above the port space: returned as is").isEqualTo(0x10000);
        assertThat(f.ioBarSize(4)).isEqualTo(16);
        assertThatThrownBy(() -> f.ioBarBase(0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("BAR 0");
    }

    @Test
    void resetRestoresPowerOnValuesAndListenerSeesWrites() {
        PciFunction f = ide();
        AtomicInteger writes = new AtomicInteger();
        f.onConfigWrite(writes::incrementAndGet);
        f.writeConfig(0x04, 2, 0x7);
        f.writeConfig(0x20, 4, 0xc000);
        assertThat(writes).hasValue(2);
        f.reset();
        assertThat(f.command()).isZero();
        assertThat(f.readConfig(0x20, 4)).isEqualTo(1);
    }

    @Test
    void builderAndAccessesRejectNonsense() {
        assertThatThrownBy(() -> PciFunction.builder(1, 2).ioBar(6, 16)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> PciFunction.builder(1, 2).ioBar(0, 24)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("power of two");
        assertThatThrownBy(() -> PciFunction.builder(1, 2).initialByte(0x3c, 1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("device-specific");
        PciFunction f = ide();
        assertThatThrownBy(() -> f.readConfig(0x100, 1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> f.writeConfig(0, 5, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void mechanismOneSelectsFunctionAndRegister() {
        PciHost host = new PciHost();
        PciFunction f = ide();
        host.attach(1, 1, f);
        PortHandler address = host.addressPort();
        PortHandler data = host.dataPort();

        address.write(0, 4, 0x80000900);
        assertThat(data.read(0, 4)).isEqualTo(0x70108086);
        assertThat(data.read(2, 2)).isEqualTo(0x7010);
        address.write(0, 4, 0x80000902);
        assertThat(data.read(0, 2)).as("the latch's low bits select bytes too").isEqualTo(0x7010);
        address.write(0, 2, 0x1234);
        assertThat(host.configAddress()).as("only dword writes load the latch").isEqualTo(0x80000902);
        assertThat(address.read(2, 2) & 0xffff).as("QEMU returns the latch unshifted").isEqualTo(0x0902);

        address.write(0, 4, 0x80000940);
        data.write(1, 1, 0xab);
        assertThat(f.readConfig(0x40, 4)).isEqualTo(0xab00);

        address.write(0, 4, 0x00000900);
        assertThat(data.read(0, 4)).as("enable bit clear").isEqualTo(-1);
        data.write(0, 4, 0);
        address.write(0, 4, 0x80001000);
        assertThat(data.read(0, 4)).as("empty slot").isEqualTo(-1);
        address.write(0, 4, 0x80010900);
        assertThat(data.read(0, 4)).as("bus 1 does not exist").isEqualTo(-1);

        assertThatThrownBy(() -> host.attach(1, 1, ide())).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("taken");
        assertThatThrownBy(() -> host.attach(32, 0, ide())).isInstanceOf(IllegalArgumentException.class);
    }
}
