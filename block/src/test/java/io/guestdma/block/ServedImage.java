package io.guestdma.block;

import io.guestdma.block.testing.NbdServer;
import io.guestdma.memory.IoVector;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * A local image served by qemu-nbd on a Unix socket next to it and opened through
 * {@link NbdBackend}: lets tests written against image files run over NBD. The export is named
 * after the image's path, so error messages name the image as for a local backend. Closing
 * closes the client, then stops the server.
 */
final class ServedImage implements BlockBackend {
    private final NbdServer server;
    private final NbdBackend nbd;

    private ServedImage(NbdServer server, NbdBackend nbd) {
        this.server = server;
        this.nbd = nbd;
    }

    static ServedImage open(Path image, BlockOptions options) throws IOException {
        NbdServer server = options.readOnly()
                ? NbdServer.qemuNbd(image, image.toAbsolutePath().getParent(), image.toString(), "-r")
                : NbdServer.qemuNbd(image, image.toAbsolutePath().getParent(), image.toString());
        try {
            return new ServedImage(server, NbdBackend.open(server.address(), options.withLock(false)));
        } catch (IOException | RuntimeException e) {
            server.close();
            throw e;
        }
    }

    NbdBackend nbd() {
        return nbd;
    }

    @Override
    public long size() {
        return nbd.size();
    }

    @Override
    public boolean isReadOnly() {
        return nbd.isReadOnly();
    }

    @Override
    public void readv(long offset, IoVector iov) throws IOException {
        nbd.readv(offset, iov);
    }

    @Override
    public void writev(long offset, IoVector iov) throws IOException {
        nbd.writev(offset, iov);
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        nbd.read(offset, dst);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        nbd.write(offset, src);
    }

    @Override
    public void flush() throws IOException {
        nbd.flush();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        nbd.discard(offset, length);
    }

    @Override
    public void close() {
        try {
            nbd.close();
        } finally {
            server.close();
        }
    }
}
