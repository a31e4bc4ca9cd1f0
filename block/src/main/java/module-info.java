/**
 * The vectored block layer shared by every disk device model: {@code BlockBackend} and its
 * implementations (FileChannel gathering I/O, native {@code preadv}/{@code pwritev}), image
 * locking, fault injection, and {@code DmaBlockIo}, the map - I/O - unmap loop of QEMU's
 * {@code dma_blk_io}.
 */
module io.guestdma.block {
    requires transitive io.guestdma.memory;
    exports io.guestdma.block;
}
