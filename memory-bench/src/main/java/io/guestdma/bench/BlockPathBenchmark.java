package io.guestdma.bench;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.BlockOptions;
import io.guestdma.block.FileChannelBackend;
import io.guestdma.block.NativeBackend;
import io.guestdma.memory.DmaDirection;
import io.guestdma.memory.DmaStream;
import io.guestdma.memory.GuestMemory;
import io.guestdma.memory.SgList;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The block path without the device: scattered guest RAM to a raw image and back.
 * <ul>
 *   <li>COPY: copy-path reads of guest RAM into a heap {@code byte[]}, then
 *       {@code FileChannel.write} of that heap buffer (the JDK copies it again into a direct
 *       buffer) — and the reverse for reads.</li>
 *   <li>MAP_FILECHANNEL: the pieces mapped with a {@link DmaStream} into an I/O vector and handed
 *       to {@link FileChannelBackend#writev} (a gathering write), then unmapped.</li>
 *   <li>MAP_NATIVE: the same I/O vector handed to {@link NativeBackend#writev} ({@code pwritev}).</li>
 * </ul>
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class BlockPathBenchmark extends SuiteSettings {

    /** Transfer size: 4k in 1 piece, 64k in 16, 1m in 64. */
    @Param({"4k", "64k", "1m"})
    public String size;

    /** The data path under test. */
    @Param({"COPY", "MAP_FILECHANNEL", "MAP_NATIVE"})
    public String path;

    private TransferShape shape;
    private DataPath dataPath;
    private GuestMemory memory;
    private ImageFile image;
    private GuestBuffers buffers;
    private final SgList sg = new SgList();
    private DmaStream stream;
    /** The map paths' backend: FileChannel or native, whichever {@link #path} names. */
    private BlockBackend backend;
    private FileChannel channel;
    private byte[] heap;
    private ByteBuffer heapBuffer;
    private int slots;
    private int nextSlot;

    /** @return the image offset for this operation, rotating over the slots as the IDE workload does */
    private long nextOffset() {
        long offset = (long) nextSlot * shape.bytes();
        nextSlot = nextSlot + 1 == slots ? 0 : nextSlot + 1;
        return offset;
    }

    /**
     * Builds guest RAM, the image and the backend for this path (after building and closing a
     * throwaway set).
     *
     * @throws IOException if the image cannot be created or opened
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        // The first close in a JVM allocates; rehearse it outside measurement (see SuiteSettings).
        build();
        tearDown();
        build();
    }

    private void build() throws IOException {
        sg.reset();
        channel = null;
        backend = null;
        shape = TransferShape.of(size);
        dataPath = DataPath.valueOf(path);
        memory = GuestMemory.ofRam(IdeWorkload.RAM_BYTES);
        // The same image and the same rotation over image slots as IdeDmaBenchmark, so that the
        // difference between the two is the device's cost alone.
        image = ImageFile.create(IdeWorkload.IMAGE_BYTES);
        slots = IdeWorkload.imageSlots(shape, IdeWorkload.IMAGE_BYTES);
        buffers = IdeWorkload.guestBuffers(shape);
        for (int i = 0; i < buffers.count(); i++) {
            sg.add(buffers.address(i), buffers.pieceBytes());
        }
        stream = new DmaStream(memory);
        switch (dataPath) {
            case COPY -> {
                channel = FileChannel.open(image.path(), StandardOpenOption.READ, StandardOpenOption.WRITE);
                heap = new byte[shape.bytes()];
                heapBuffer = ByteBuffer.wrap(heap);
            }
            case MAP_FILECHANNEL -> backend = FileChannelBackend.open(image.path(), BlockOptions.defaults());
            case MAP_NATIVE -> backend = NativeBackend.open(image.path(), BlockOptions.defaults());
        }
    }

    /**
     * Closes everything and deletes the image.
     *
     * @throws IOException if closing fails
     */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        try {
            if (channel != null) {
                channel.close();
            }
            if (backend != null) {
                backend.close();
            }
        } finally {
            memory.close();
            image.close();
        }
    }

    /**
     * Guest RAM to the image.
     *
     * @return bytes written
     * @throws IOException if the write fails
     */
    @Benchmark
    public long write() throws IOException {
        if (dataPath == DataPath.COPY) {
            int piece = buffers.pieceBytes();
            for (int i = 0; i < buffers.count(); i++) {
                memory.read(buffers.address(i), heap, i * piece, piece);
            }
            long offset = nextOffset();
            heapBuffer.clear();
            while (heapBuffer.hasRemaining()) {
                channel.write(heapBuffer, offset + heapBuffer.position());
            }
            return heap.length;
        }
        return mapped(DmaDirection.TO_DEVICE);
    }

    /**
     * The image to guest RAM.
     *
     * @return bytes read
     * @throws IOException if the read fails
     */
    @Benchmark
    public long read() throws IOException {
        if (dataPath == DataPath.COPY) {
            long offset = nextOffset();
            heapBuffer.clear();
            while (heapBuffer.hasRemaining()) {
                if (channel.read(heapBuffer, offset + heapBuffer.position()) < 0) {
                    throw new IOException("image shorter than expected");
                }
            }
            int piece = buffers.pieceBytes();
            for (int i = 0; i < buffers.count(); i++) {
                memory.write(buffers.address(i), heap, i * piece, piece);
            }
            return heap.length;
        }
        return mapped(DmaDirection.FROM_DEVICE);
    }

    /** SG list → map → I/O vector → backend → unmap, the straight line the IDE engine follows. */
    private long mapped(DmaDirection direction) throws IOException {
        stream.start(sg, direction, 512);
        long start = nextOffset();
        long offset = 0;
        while (!stream.done()) {
            long n = stream.mapNext(Long.MAX_VALUE);
            if (n == 0) {
                throw new IllegalStateException("RAM never needs bounce space; nothing mapped at " + offset);
            }
            if (direction == DmaDirection.TO_DEVICE) {
                backend.writev(start + offset, stream.iov());
            } else {
                backend.readv(start + offset, stream.iov());
            }
            stream.unmapChunk(n);
            offset += n;
        }
        return offset;
    }
}
