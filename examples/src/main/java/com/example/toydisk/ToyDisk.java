package com.example.toydisk;

import io.guestdma.block.BlockBackend;
import io.guestdma.memory.AccessResult;
import io.guestdma.memory.DmaAccessException;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaStream;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.MmioHandler;
import io.guestdma.memory.MmioRegion;
import io.guestdma.memory.ReentrancyGuard;
import io.guestdma.memory.SgList;
import java.io.IOException;
import java.util.Objects;

/**
 * A made-up disk controller with scatter-gather DMA, small enough to read in one sitting.
 *
 * <p>Registers (32-bit accesses only): {@code 0x0} request address, low half; {@code 0x4} high
 * half; {@code 0x8} doorbell (write anything: the request runs to completion before the write
 * returns); {@code 0xc} status of the last request, one of the {@code STATUS_} values.
 *
 * <p>A request in guest RAM, little-endian: byte 0 the operation ({@link #OP_READ} or
 * {@link #OP_WRITE}), bytes 2-3 the number of buffers (1 to {@link #MAX_BUFFERS}), bytes 8-15 the
 * first sector; from byte 16, per buffer, an 8-byte guest address and a 4-byte length, padded to
 * 16 bytes. The buffers' lengths must add up to whole sectors that fit on the disk.
 *
 * <p>The guest's buffers reach the disk image without a copy: a {@link DmaStream} maps them, and
 * the backend hands the mapped slices of guest RAM to {@code pwritev}/{@code preadv}. A buffer
 * that is not RAM goes through the bounce pool; one that is a failing device, or this controller's
 * own registers (refused by its {@link ReentrancyGuard}), ends the request with
 * {@link #STATUS_DMA_ERROR}.
 */
public final class ToyDisk implements MmioHandler {
    /** Size of the register window in bytes. */
    public static final long REGISTER_BYTES = 0x10;
    /** Register: low 32 bits of the request's guest address. */
    public static final int REG_REQUEST_LOW = 0x0;
    /** Register: high 32 bits of the request's guest address. */
    public static final int REG_REQUEST_HIGH = 0x4;
    /** Register: a write runs the request. */
    public static final int REG_DOORBELL = 0x8;
    /** Register: the status of the last request. */
    public static final int REG_STATUS = 0xc;

    /** Operation: disk to guest memory. */
    public static final int OP_READ = 0;
    /** Operation: guest memory to disk. */
    public static final int OP_WRITE = 1;

    /** Status: the request completed. */
    public static final int STATUS_OK = 0;
    /** Status: the disk image reported an error; part of the transfer may have happened. */
    public static final int STATUS_IO_ERROR = 1;
    /** Status: the request was malformed or out of the disk's range; nothing was transferred. */
    public static final int STATUS_BAD_REQUEST = 2;
    /** Status: a buffer is not RAM and the bounce pool was exhausted; ring again later. */
    public static final int STATUS_BUSY = 3;
    /** Status: a buffer is a device that failed or refused the access; part may have moved. */
    public static final int STATUS_DMA_ERROR = 4;
    /** Status before the first request. */
    public static final int STATUS_IDLE = 0xff;

    /** Bytes in a sector. */
    public static final int SECTOR = 512;
    /** Most buffers one request may name. */
    public static final int MAX_BUFFERS = 64;

    /** Bytes handed to the backend per call: bounds how long one vectored call holds a mapping. */
    private static final long CHUNK = 256 * 1024;

    private final GuestMemory memory;
    private final BlockBackend disk;
    private final DmaStream stream;
    private final SgList buffers = new SgList(MAX_BUFFERS);
    private final ReentrancyGuard guard = new ReentrancyGuard("toy-disk");
    private long requestAddress;
    private int status = STATUS_IDLE;

    /**
     * Creates the controller; map it into the address space with
     * {@code memory.addRegion(disk.registers(name, base))}.
     *
     * @param memory the guest's address space, where requests and buffers live
     * @param disk   the disk image
     * @throws NullPointerException if an argument is null
     */
    public ToyDisk(GuestMemory memory, BlockBackend disk) {
        this.memory = Objects.requireNonNull(memory, "memory");
        this.disk = Objects.requireNonNull(disk, "disk");
        this.stream = new DmaStream(memory);
    }

    /**
     * {@return the controller's register window at {@code base}, guarded against DMA that targets it}
     *
     * @param name the region's name, unique in the address space
     * @param base its first guest physical address
     * @throws IllegalArgumentException if the window would wrap past the top of memory
     */
    public MmioRegion registers(String name, long base) {
        return new MmioRegion(name, base, REGISTER_BYTES, this, guard);
    }

    @Override
    public synchronized long read(long offset, int size) {
        return offset == REG_STATUS ? status : 0;
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        // GuestMemory enters the region's guard around this call, so when a request's buffer
        // points at these registers, the request's own DMA is refused instead of ringing the
        // doorbell again from inside the request.
        switch ((int) offset) {
            case REG_REQUEST_LOW -> requestAddress = (requestAddress & ~0xffff_ffffL) | (value & 0xffff_ffffL);
            case REG_REQUEST_HIGH -> requestAddress = (requestAddress & 0xffff_ffffL) | (value << 32);
            case REG_DOORBELL -> status = run(requestAddress);
            default -> { } // the status register is read-only: writes are ignored, as on hardware
        }
    }

    @Override
    public int minAccessSize() {
        return 4;
    }

    @Override
    public int maxAccessSize() {
        return 4;
    }

    private int run(long request) {
        int op = memory.readByte(request) & 0xff;
        int count = memory.readShort(request + 2) & 0xffff;
        long sector = memory.readLong(request + 8);
        if ((op != OP_READ && op != OP_WRITE) || count < 1 || count > MAX_BUFFERS) {
            return STATUS_BAD_REQUEST;
        }
        buffers.reset();
        long total = 0;
        for (int i = 0; i < count; i++) {
            long address = memory.readLong(request + 16 + 16L * i);
            long length = memory.readInt(request + 24 + 16L * i) & 0xffff_ffffL;
            if (length == 0) {
                return STATUS_BAD_REQUEST;
            }
            try {
                buffers.add(address, length);
            } catch (IllegalArgumentException wrapsPastTopOfMemory) {
                return STATUS_BAD_REQUEST;
            }
            total += length;
        }
        long sectors = disk.size() / SECTOR;
        if (total % SECTOR != 0 || sector < 0 || sector > sectors || total / SECTOR > sectors - sector) {
            return STATUS_BAD_REQUEST;
        }
        stream.start(buffers, op == OP_WRITE ? DmaDirection.TO_DEVICE : DmaDirection.FROM_DEVICE, SECTOR);
        long position = sector * SECTOR;
        while (!stream.done()) {
            long bytes;
            try {
                bytes = stream.mapNext(CHUNK);
            } catch (DmaAccessException e) {
                return STATUS_DMA_ERROR; // nothing is left mapped
            }
            if (bytes == 0) {
                return STATUS_BUSY;
            }
            try {
                if (op == OP_WRITE) {
                    disk.writev(position, stream.iov());
                } else {
                    disk.readv(position, stream.iov());
                }
            } catch (IOException e) {
                // Nothing is known to have reached guest memory: unmap with access length 0.
                stream.abandonChunk();
                return STATUS_IO_ERROR;
            }
            if (stream.unmapChunk(bytes) == AccessResult.DEVICE_ERROR) {
                return STATUS_DMA_ERROR; // a bounce write-back to a device failed
            }
            position += bytes;
        }
        return STATUS_OK;
    }
}
