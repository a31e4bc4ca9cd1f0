package io.guestdma.block;

import io.guestdma.block.testing.NbdServer;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A local image served by qemu-nbd on a Unix socket next to it and opened through
 * {@link NbdBackend}: lets tests written against image files run over NBD. The export is named
 * after the image's path, so error messages name the image as for a local backend. Closing
 * closes the client, then stops the server.
 */
final class ServedImage extends ForwardingBackend {
    private final NbdServer server;
    private final NbdBackend nbd;

    private ServedImage(NbdServer server, NbdBackend nbd) {
        super(nbd);
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
    public void close() {
        try {
            nbd.close();
        } finally {
            server.close();
        }
    }
}
