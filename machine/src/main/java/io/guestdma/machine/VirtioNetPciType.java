package io.guestdma.machine;

import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.net.NetBackend;
import io.guestdma.virtio.VirtioNet;
import java.util.Locale;
import java.util.Set;

/**
 * QEMU's {@code virtio-net-pci}: a virtio network card on PCI bus 0, presented as QEMU 7.2's pc
 * machine presents it on a socket or stream netdev (IDs 1af4:1000, class 0x020000, subsystem
 * 1af4:0001, a 32-byte legacy I/O BAR0, MSI-X BAR1, the modern BAR4; see {@link VirtioNet} for the
 * features). Properties: {@code netdev} (required), {@code mac} (default QEMU's 52:54:00:12:34:56,
 * counting up per NIC), {@code addr}, {@code vectors} (default 4, QEMU's), {@code rx_queue_size}
 * (256 to 1024, a power of two; the transmit queue has QEMU's 256), {@code romfile} (only empty: no
 * option ROM is loaded), and QEMU's control-queue features {@code ctrl_vq}, {@code ctrl_rx},
 * {@code ctrl_vlan}, {@code ctrl_rx_extra}, {@code ctrl_mac_addr}, {@code ctrl_guest_offloads},
 * {@code guest_announce} and {@code mq}, which this device does not offer: they take {@code off}
 * only, so that one command line configures QEMU's device and ours alike.
 */
final class VirtioNetPciType implements DeviceType {
    /** The one instance. */
    static final VirtioNetPciType INSTANCE = new VirtioNetPciType();

    private static final Set<String> OFF_ONLY = Set.of("ctrl_vq", "ctrl_rx", "ctrl_vlan", "ctrl_rx_extra",
            "ctrl_mac_addr", "ctrl_guest_offloads", "guest_announce", "mq");
    private static final Set<String> PROPERTIES = union(Set.of("netdev", "mac", "addr", "vectors", "rx_queue_size",
            "romfile"), OFF_ONLY);
    /** QEMU's class code for an Ethernet controller. */
    private static final int CLASS_ETHERNET = 0x020000;
    /** QEMU's BAR0 size for virtio-net: 24 legacy register bytes (with MSI-X) + 8 config bytes. */
    private static final int LEGACY_BAR_SIZE = 0x20;

    private VirtioNetPciType() {
    }

    private static Set<String> union(Set<String> a, Set<String> b) {
        java.util.Set<String> all = new java.util.HashSet<>(a);
        all.addAll(b);
        return Set.copyOf(all);
    }

    @Override
    public String name() {
        return "virtio-net-pci";
    }

    @Override
    public Set<String> properties() {
        return PROPERTIES;
    }

    @Override
    public void realize(DeviceProperties p, DeviceContext machine) {
        for (String flag : OFF_ONLY) {
            String value = p.string(flag);
            if (value != null && !isOff(flag, value)) {
                throw new IllegalArgumentException("Property '" + name() + "." + flag + "' can only be off here: "
                        + "this virtio-net has no control queue features");
            }
        }
        String romfile = p.string("romfile");
        if (romfile != null && !romfile.isEmpty()) {
            throw new IllegalArgumentException("Property '" + name() + ".romfile' can only be empty here: "
                    + "no option ROM is loaded (use romfile=)");
        }
        long queueSize = p.integer("rx_queue_size", 256);
        if (queueSize < 256 || queueSize > 1024 || Long.bitCount(queueSize) != 1) {
            throw new IllegalArgumentException("Invalid rx_queue_size (= " + queueSize
                    + "), must be a power of 2 between 256 and 1024.");
        }
        long vectors = p.integer("vectors", 4);
        if (vectors < 0 || vectors > 64) {
            throw new IllegalArgumentException("vectors must be 0..64, was " + vectors);
        }
        byte[] mac = p.string("mac") == null ? null : mac(p.string("mac"));
        String netdev = p.string("netdev");
        if (netdev == null) {
            throw new IllegalArgumentException("netdev property not set (a NIC without a backend is not supported)");
        }
        int devfn = VirtioBlkPciType.address(name(), p.string("addr"), machine);
        int slot = devfn >> 3;
        int fn = devfn & 7;
        String slotName = String.format("%02x.%x", slot, fn);
        NetBackend backend = machine.claimNetdev(name(), netdev);
        String id = p.string("id");
        if (!machine.claimSlot("pci.0", slotName, name() + ",id=" + (id == null ? "(null)" : id))) {
            throw new IllegalArgumentException("PCI: slot " + slot + " function " + fn + " not available for "
                    + name() + ", in use by " + machine.slotOwner("pci.0", slotName));
        }
        if (mac == null) {
            mac = machine.nextDefaultMac();
        }
        String name = "virtio-net@" + slotName;
        DeviceAddressSpace busMaster = machine.memory().deviceSpace(name);
        // Transmissions complete inside the notify that starts them, as virtio-blk's requests do
        // here: a qtest client then sees the used ring and the frame at the peer at once.
        VirtioNet net = new VirtioNet(busMaster, backend, mac, (int) queueSize, 256, true);
        machine.closeWithMachine(net);
        new VirtioPciFunction(machine, slot, fn, net, busMaster, (int) vectors, CLASS_ETHERNET, name,
                LEGACY_BAR_SIZE);
    }

    private boolean isOff(String flag, String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "off", "false", "no" -> true;
            case "on", "true", "yes" -> false;
            default -> throw new IllegalArgumentException("Parameter '" + flag + "' expects 'on' or 'off'");
        };
    }

    /** QEMU's {@code mac=XX:XX:XX:XX:XX:XX} (hex pairs, colons or dashes). */
    static byte[] mac(String text) {
        String[] parts = text.split("[:-]", -1);
        byte[] mac = new byte[6];
        if (parts.length != 6) {
            throw new IllegalArgumentException("Property 'virtio-net-pci.mac' doesn't take value '" + text + "'");
        }
        for (int i = 0; i < 6; i++) {
            if (!parts[i].matches("[0-9a-fA-F]{1,2}")) {
                throw new IllegalArgumentException("Property 'virtio-net-pci.mac' doesn't take value '" + text + "'");
            }
            mac[i] = (byte) Integer.parseInt(parts[i], 16);
        }
        return mac;
    }
}
