package io.guestdma.machine;

import io.guestdma.ide.IrqLine;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioRegion;
import io.guestdma.memory.RegionTransaction;
import io.guestdma.virtio.VirtioDevice;
import io.guestdma.virtio.VirtioPci;

/**
 * A {@link VirtioPci} transport plugged into the machine's PCI bus 0: its configuration space (QEMU
 * 7.2's header, BARs and capabilities), its memory BARs mapped into guest memory where the guest
 * puts them while memory decoding is on, its INTA# through the PIIX3's PIRQ routing (gated by the
 * command register's INTx-disable bit), and the bus-master bit mirrored into the transport.
 *
 * <p>The legacy I/O BAR0 of QEMU's transitional device is mapped into the port space while I/O
 * decoding is on, so a legacy driver (virtio 0.9.5) drives the same device.
 */
final class VirtioPciFunction {
    private final VirtioPci transport;
    private final PciFunction function;
    private final GuestMemory memory;
    private final IrqLine line;
    private final String name;
    private boolean intxLevel;
    private boolean lineLevel;
    private long modernBase = -1;
    private long msixBase = -1;
    private final PortBus ports;
    private PortBus.Mapping legacyWindow;
    private long legacyBase = -1;

    /**
     * Creates the transport for {@code device} and plugs it in at {@code slot.fn}.
     *
     * @param busMaster the function's bus master (disabled here until the guest enables it)
     * @param vectors MSI-X vectors (0 for none)
     */
    VirtioPciFunction(DeviceContext machine, int slot, int fn, VirtioDevice device, DeviceAddressSpace busMaster,
                      int vectors, int classCode, String name) {
        this(machine, slot, fn, device, busMaster, vectors, classCode, name, VirtioPci.LEGACY_BAR_SIZE);
    }

    /**
     * Creates the transport for {@code device} and plugs it in at {@code slot.fn}, with a legacy
     * I/O BAR0 of the size QEMU gives that device type.
     *
     * @param busMaster the function's bus master (disabled here until the guest enables it)
     * @param vectors MSI-X vectors (0 for none)
     * @param legacyBarSize QEMU's BAR0 size: the legacy registers and configuration, rounded up to
     *     a power of two
     */
    VirtioPciFunction(DeviceContext machine, int slot, int fn, VirtioDevice device, DeviceAddressSpace busMaster,
                      int vectors, int classCode, String name, int legacyBarSize) {
        busMaster.setEnabled(false);
        this.transport = new VirtioPci(device, busMaster, this::intx, vectors);
        this.memory = machine.memory();
        this.ports = machine.ports();
        this.name = name;
        this.line = machine.pciIntx(slot, 1);
        PciFunction.Builder b = PciFunction.builder(VirtioPci.VENDOR_ID, transport.pciDeviceId())
                .classCode(classCode)
                .subsystem(VirtioPci.VENDOR_ID, transport.subsystemId())
                .interruptPin(1)
                .ioBar(VirtioPci.LEGACY_BAR, legacyBarSize)
                .memoryBar(VirtioPci.MODERN_BAR, VirtioPci.MODERN_BAR_SIZE, true, true)
                .deviceRegisters(transport.capabilityPointer(), new PciFunction.DeviceRegisters() {
                    @Override
                    public int read(int register, int size) {
                        return transport.configRead(register, size);
                    }

                    @Override
                    public void write(int register, int size, int value) {
                        transport.configWrite(register, size, value);
                    }
                });
        if (transport.msixVectors() > 0) {
            b.memoryBar(VirtioPci.MSIX_BAR, VirtioPci.MSIX_BAR_SIZE, false, false);
        }
        this.function = b.build();
        function.onConfigWrite(this::configWritten);
        // QEMU writes the command register's low byte only, as a guest's configuration cycle would.
        transport.onLegacyBusMasterQuirk(() -> function.writeConfig(PciFunction.COMMAND, 1,
                (function.command() & 0xff) | PciFunction.COMMAND_MASTER));
        machine.pci().attach(slot, fn, function);
        machine.onReset(this::reset);
        machine.onPause(transport::pause);
        machine.onResume(transport::unpause);
        // the transport drives INTx to its saved level when it loads; the machine's section,
        // loaded first, has restored the command register that gates it
        machine.addState(transport.migrationState(name));
    }

    /** {@return the transport} */
    VirtioPci transport() {
        return transport;
    }

    /** The transport's INTA#, before the command register's INTx-disable bit. */
    private synchronized void intx(boolean level) {
        intxLevel = level;
        driveLine();
    }

    private void driveLine() {
        boolean level = intxLevel && (function.command() & PciFunction.COMMAND_INTX_DISABLE) == 0;
        if (level != lineLevel) {
            lineLevel = level;
            line.set(level);
        }
    }

    private synchronized void configWritten(int register, int size) {
        if (register <= PciFunction.COMMAND + 1 && PciFunction.COMMAND < register + size) {
            if (register <= PciFunction.COMMAND) {
                transport.commandWritten(function.command()); // QEMU: a write covering the command byte
            }
            driveLine();
        }
        decode();
    }

    private synchronized void reset() {
        function.reset();
        transport.resetFunction();
        decode();
        driveLine();
    }

    /**
     * Maps the memory BARs where the guest put them (or unmaps them), each on its own: a BAR the
     * guest left over RAM (say the MSI-X BAR still at 0 when only the modern BAR was placed) must
     * not take the other BAR's registers away.
     */
    private void decode() {
        long modern = function.memoryBarBase(VirtioPci.MODERN_BAR);
        long msix = transport.msixVectors() > 0 ? function.memoryBarBase(VirtioPci.MSIX_BAR) : -1;
        modernBase = remap(name + "-modern", modernBase, modern, VirtioPci.MODERN_BAR_SIZE, transport.modernBar());
        msixBase = remap(name + "-msix", msixBase, msix, VirtioPci.MSIX_BAR_SIZE, transport.msixBar());
        long legacy = function.ioBarBase(VirtioPci.LEGACY_BAR);
        if (legacy != legacyBase) {
            if (legacyWindow != null) {
                legacyWindow.unmap();
                legacyWindow = null;
            }
            if (legacy >= 0 && legacy < PortBus.PORTS) {
                legacyWindow = ports.map((int) legacy, function.ioBarSize(VirtioPci.LEGACY_BAR), new PortHandler() {
                    @Override
                    public int read(int offset, int size) {
                        return transport.legacyRead(offset, size);
                    }

                    @Override
                    public void write(int offset, int size, int value) {
                        transport.legacyWrite(offset, size, value);
                    }
                });
            }
            legacyBase = legacy;
        }
    }

    /** Moves one BAR's window from {@code old} to {@code base} (-1: unmapped); returns where it is now. */
    private long remap(String region, long old, long base, int size, io.guestdma.memory.MmioHandler handler) {
        if (base == old) {
            return old;
        }
        RegionTransaction t = memory.transaction();
        if (old >= 0) {
            t.remove(region);
        }
        if (base >= 0) {
            t.add(new MmioRegion(region, base, size, handler));
        }
        try {
            t.commit();
            return base;
        } catch (IllegalArgumentException e) {
            // A BAR over RAM or another BAR: QEMU's RAM and lower-addressed regions win; here the
            // window stays unmapped until the guest moves it somewhere free.
            if (old >= 0) {
                RegionTransaction undo = memory.transaction();
                undo.remove(region);
                undo.commit();
            }
            return -1;
        }
    }
}
