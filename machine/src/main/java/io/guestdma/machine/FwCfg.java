package io.guestdma.machine;

import io.guestdma.memory.AccessResult;
import io.guestdma.memory.DeviceAddressSpace;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * QEMU's firmware configuration device (fw_cfg) on the PC's I/O ports, with the items a guest
 * firmware and libqos read and the values QEMU 7.2's {@code pc} machine gives them: the
 * signature "QEMU", the interface ID (traditional and DMA), a zero UUID, the RAM size, one CPU,
 * no boot menu, and a file directory with {@code etc/e820} (the memory map).
 *
 * <p>Traditional interface: a 16-bit write to port 0x510 selects an item and rewinds it; each
 * byte read from port 0x510 or 0x511 returns its next byte (0 past its end or for an unknown
 * item). Any other access is ignored (reads return 0), as in QEMU. DMA interface: port 0x514
 * takes the guest address of a {@code FWCfgDmaAccess} (control, length, address; big-endian),
 * high half at 0x514 and low half at 0x518 (which starts the transfer), or all 64 bits at
 * 0x514; reads return the signature "QEMU CFG". A transfer may select an item, then read
 * (copying the item's bytes, zeros past its end), skip, or write (refused: no item here is
 * writable); the control word is then written back, 0 or the error bit.
 *
 * <p>Thread-safe: port accesses take the device's lock.
 */
final class FwCfg {
    /** The selector and data ports. */
    static final int IO_PORT = 0x510;
    /** The DMA address ports. */
    static final int DMA_PORT = 0x514;

    private static final int SIGNATURE = 0x00;
    private static final int ID = 0x01;
    private static final int UUID = 0x02;
    private static final int RAM_SIZE = 0x03;
    private static final int NOGRAPHIC = 0x04;
    private static final int NB_CPUS = 0x05;
    private static final int MACHINE_ID = 0x06;
    private static final int NUMA = 0x0d;
    private static final int BOOT_MENU = 0x0e;
    private static final int MAX_CPUS = 0x0f;
    private static final int FILE_DIR = 0x19;
    /** Files are numbered from here, in name order, as QEMU does. */
    private static final int FILE_FIRST = 0x20;
    private static final int DMA_ERROR = 0x01;
    private static final int DMA_READ = 0x02;
    private static final int DMA_SKIP = 0x04;
    private static final int DMA_SELECT = 0x08;
    private static final int DMA_WRITE = 0x10;
    private static final long DMA_SIGNATURE = 0x51454d5520434647L; // "QEMU CFG"

    private final Map<Integer, byte[]> items = new TreeMap<>();
    private final DeviceAddressSpace dma;
    private byte[] current = new byte[0];
    private int offset;
    /** The item last selected, so that a migration can select it again. */
    private int selectedKey;
    private long dmaAddress;

    /**
     * Creates the device for a machine with {@code ramBytes} of RAM at address 0.
     *
     * @param ramBytes the RAM size
     * @param dma the device's view of guest memory, for the DMA interface
     */
    FwCfg(long ramBytes, DeviceAddressSpace dma) {
        this.dma = Objects.requireNonNull(dma, "dma");
        items.put(SIGNATURE, "QEMU".getBytes(StandardCharsets.US_ASCII));
        items.put(ID, le(4, 3)); // traditional interface and DMA
        items.put(UUID, new byte[16]);
        items.put(RAM_SIZE, le(8, ramBytes));
        items.put(NOGRAPHIC, le(2, 0));
        items.put(NB_CPUS, le(2, 1));
        items.put(MACHINE_ID, le(4, 0));
        items.put(NUMA, le(8, 0));
        items.put(BOOT_MENU, le(2, 0));
        items.put(MAX_CPUS, le(2, 1));
        Map<String, byte[]> files = new TreeMap<>();
        files.put("etc/e820", e820(ramBytes));
        ByteBuffer dir = ByteBuffer.allocate(4 + 64 * files.size()).order(ByteOrder.BIG_ENDIAN);
        dir.putInt(files.size());
        int key = FILE_FIRST;
        for (Map.Entry<String, byte[]> f : files.entrySet()) {
            byte[] name = new byte[56];
            byte[] text = f.getKey().getBytes(StandardCharsets.US_ASCII);
            System.arraycopy(text, 0, name, 0, text.length);
            dir.putInt(f.getValue().length).putShort((short) key).putShort((short) 0).put(name);
            items.put(key++, f.getValue());
        }
        items.put(FILE_DIR, dir.array());
    }

    /**
     * The memory map QEMU's pc machine gives its firmware: the reserved HyperTransport window it
     * always lists, then the RAM (all of it at address 0 here, which has no PCI hole).
     */
    private static byte[] e820(long ramBytes) {
        ByteBuffer b = ByteBuffer.allocate(40).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0xfd00000000L).putLong(0x300000000L).putInt(2);
        b.putLong(0).putLong(ramBytes).putInt(1);
        return b.array();
    }

    private static byte[] le(int size, long value) {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) {
            b[i] = (byte) (value >>> (8 * i));
        }
        return b;
    }

    private void select(int key) {
        selectedKey = key & 0xffff;
        current = items.getOrDefault(key & 0xffff, new byte[0]);
        offset = 0;
    }

    private int nextByte() {
        return offset < current.length ? current[offset++] & 0xff : 0;
    }

    /** Writes the selected item, the read position in it and a half-written DMA address. */
    synchronized void save(io.guestdma.migration.StateWriter out) {
        out.u16(selectedKey).u32(offset).u64(dmaAddress);
    }

    /**
     * Reads what {@link #save} wrote; the items themselves come from the destination's own
     * configuration.
     *
     * @throws io.guestdma.migration.MigrationFormatException if the position is past the item
     */
    synchronized void load(io.guestdma.migration.StateReader in)
            throws io.guestdma.migration.MigrationFormatException {
        int key = in.u16("fw_cfg.selector");
        long at = in.u32("fw_cfg.offset");
        long address = in.u64("fw_cfg.dmaAddress");
        byte[] item = items.getOrDefault(key, new byte[0]);
        if (at > item.length) {
            throw in.failure("fw_cfg.offset", at + " is past the " + item.length + "-byte item 0x"
                    + Integer.toHexString(key));
        }
        select(key);
        offset = (int) at;
        dmaAddress = address;
    }

    /** Ports 0x510-0x511. */
    final PortHandler io = new PortHandler() {
        @Override
        public int read(int at, int size) {
            synchronized (FwCfg.this) {
                return size == 1 ? nextByte() : 0;
            }
        }

        @Override
        public void write(int at, int size, int value) {
            synchronized (FwCfg.this) {
                if (size == 2 && at == 0) {
                    select(value & 0xffff);
                }
            }
        }
    };

    /** Ports 0x514-0x51b: big-endian registers, so port values are byte-swapped. */
    final PortHandler dmaPort = new PortHandler() {
        @Override
        public int read(int at, int size) {
            long bits = DMA_SIGNATURE >>> (8 * (8 - at - size));
            return switch (size) {
                case 1 -> (int) bits & 0xff;
                case 2 -> Short.reverseBytes((short) bits) & 0xffff;
                default -> Integer.reverseBytes((int) bits);
            };
        }

        @Override
        public void write(int at, int size, int value) {
            if (size != 4) {
                return;
            }
            long be = Integer.reverseBytes(value) & 0xffffffffL;
            synchronized (FwCfg.this) {
                if (at == 0) {
                    dmaAddress = be << 32;
                } else if (at == 4) {
                    dmaAddress |= be;
                    transfer();
                }
            }
        }
    };

    /** QEMU's fw_cfg_dma_transfer, for one FWCfgDmaAccess at {@link #dmaAddress}. */
    private void transfer() {
        long at = dmaAddress;
        dmaAddress = 0;
        byte[] access = new byte[16];
        if (dma.read(at, MemorySegment.ofArray(access)).failed()) {
            writeControl(at, DMA_ERROR);
            return;
        }
        ByteBuffer b = ByteBuffer.wrap(access).order(ByteOrder.BIG_ENDIAN);
        int control = b.getInt();
        long length = b.getInt() & 0xffffffffL;
        long address = b.getLong();
        if ((control & DMA_SELECT) != 0) {
            select(control >>> 16);
        }
        boolean read = (control & DMA_READ) != 0;
        boolean write = !read && (control & DMA_WRITE) != 0;
        boolean skip = !read && !write && (control & DMA_SKIP) != 0;
        if (!read && !write && !skip) {
            length = 0;
        }
        int result = 0;
        while (length > 0) {
            long n;
            if (offset >= current.length) {
                n = length;
                if (read && dma.fill(address, n, (byte) 0).failed()) {
                    result = DMA_ERROR;
                }
                if (write) {
                    result = DMA_ERROR;
                }
            } else {
                n = Math.min(length, current.length - offset);
                if (read) {
                    AccessResult r = dma.write(address, MemorySegment.ofArray(current).asSlice(offset, n));
                    if (r.failed()) {
                        result = DMA_ERROR;
                    }
                }
                if (write) {
                    result = DMA_ERROR; // no writable items
                }
                offset += (int) n;
            }
            address += n;
            length -= n;
        }
        writeControl(at, result);
    }

    private void writeControl(long at, int control) {
        byte[] be = ByteBuffer.allocate(4).order(ByteOrder.BIG_ENDIAN).putInt(control).array();
        dma.write(at, MemorySegment.ofArray(be));
    }
}
