package io.guestdma.machine;

import io.guestdma.block.ErrorPolicy;
import io.guestdma.memory.DeviceAddressSpace;
import io.guestdma.virtio.VirtioBlk;
import io.guestdma.virtio.VirtioBlkConfig;
import io.guestdma.virtio.VirtioPci;
import java.util.Set;

/**
 * QEMU's {@code virtio-blk-pci}: a virtio block device on PCI bus 0, presented as QEMU 7.2's pc
 * machine presents it (see {@link VirtioPci}). Properties: {@code drive} (required), {@code addr}
 * ({@code SLOT[.FN]} in hex; absent: the first free slot), {@code serial},
 * {@code num-queues} (default 1), {@code queue-size} (default 256), {@code vectors} (MSI-X vectors,
 * default queues + 1; 0 for none). The drive's {@code rerror}/{@code werror} apply ({@code report},
 * {@code ignore}, {@code enospc}, {@code stop}): every failed request is a BLOCK_IO_ERROR event, and
 * a stop policy stops the machine with the request held until {@code cont} retries it.
 */
final class VirtioBlkPciType implements DeviceType {
    /** The one instance. */
    static final VirtioBlkPciType INSTANCE = new VirtioBlkPciType();

    private static final Set<String> PROPERTIES = Set.of("drive", "addr", "serial", "num-queues", "queue-size",
            "vectors");

    private VirtioBlkPciType() {
    }

    @Override
    public String name() {
        return "virtio-blk-pci";
    }

    @Override
    public Set<String> properties() {
        return PROPERTIES;
    }

    @Override
    public void realize(DeviceProperties p, DeviceContext machine) {
        String driveName = p.string("drive");
        if (driveName == null) {
            throw new IllegalArgumentException("drive property not set");
        }
        int devfn = address(p.string("addr"), machine);
        int slot = devfn >> 3;
        int fn = devfn & 7;
        long queues = p.integer("num-queues", 1);
        long queueSize = p.integer("queue-size", 256);
        long vectors = p.integer("vectors", queues + 1);
        if (queues < 1) {
            throw new IllegalArgumentException("num-queues property must be larger than 0");
        }
        if (queues > 64) {
            throw new IllegalArgumentException("num-queues property must be <= 64");
        }
        if (queueSize <= 2) {
            throw new IllegalArgumentException("invalid queue-size property (" + queueSize + "), must be > 2");
        }
        if (queueSize > 1024 || Long.bitCount(queueSize) != 1) {
            throw new IllegalArgumentException("invalid queue-size property (" + queueSize
                    + "), must be a power of 2 (max 1024)");
        }
        if (vectors < 0 || vectors > 64) {
            throw new IllegalArgumentException("vectors must be 0..64, was " + vectors);
        }
        String slotName = String.format("%02x.%x", slot, fn);
        BlockNode node = machine.claimDrive("virtio-blk-device", driveName);
        String id = p.string("id");
        if (!machine.claimSlot("pci.0", slotName, name() + ",id=" + (id == null ? "(null)" : id))) {
            throw new IllegalArgumentException("PCI: slot " + slot + " function " + fn + " not available for "
                    + name() + ", in use by " + machine.slotOwner("pci.0", slotName));
        }
        if (node.backend() == null) {
            throw new IllegalArgumentException("Device needs media, but drive is empty");
        }
        VirtioBlkConfig config = VirtioBlkConfig.defaults()
                .withQueues((int) queues)
                .withSerial(p.string("serial") == null ? "" : p.string("serial"))
                .withPolicies(node.readPolicy(), node.writePolicy());
        // Requests complete inside the notify that starts them, as the IDE's do here: a qtest client
        // then never sees a used index whose interrupt or flags are still on their way.
        config = config.withQueueSize((int) queueSize).withIoThreads(false);
        String name = "virtio-blk@" + slotName;
        DeviceAddressSpace busMaster = machine.memory().deviceSpace(name);
        VirtioBlk blk = new VirtioBlk(busMaster, node.backend(), config);
        machine.closeWithMachine(blk);
        blk.onError((write, action, cause) -> machine.driveFailed(node, write, action, cause));
        machine.onResume(blk::resume);
        new VirtioPciFunction(machine, slot, fn, blk, busMaster, (int) vectors, VirtioPci.CLASS_STORAGE_SCSI, name);
    }

    /** QEMU's {@code addr=SLOT[.FN]} (hex), or the first free slot from 2 on. */
    private static int address(String text, DeviceContext machine) {
        return address("virtio-blk-pci", text, machine);
    }

    /** QEMU's {@code addr=SLOT[.FN]} (hex) of a {@code driver} device, or the first free slot. */
    static int address(String driver, String text, DeviceContext machine) {
        if (text == null) {
            for (int slot = 0; slot < 32; slot++) {
                if (!machine.slotTaken("pci.0", String.format("%02x.0", slot))) {
                    return slot << 3;
                }
            }
            throw new IllegalArgumentException("PCI: no slot/function available for " + driver + ", all in use");
        }
        String[] parts = text.toLowerCase(java.util.Locale.ROOT).replaceFirst("^0x", "").split("\\.", -1);
        try {
            int slot = Integer.parseInt(parts[0], 16);
            int fn = parts.length > 1 ? Integer.parseInt(parts[1], 16) : 0;
            if (parts.length > 2 || slot < 0 || slot > 31 || fn < 0 || fn > 7) {
                throw new NumberFormatException();
            }
            return slot << 3 | fn;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("Property '" + driver + ".addr' doesn't take value '" + text + "'");
        }
    }
}
