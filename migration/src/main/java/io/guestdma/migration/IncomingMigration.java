package io.guestdma.migration;

import io.guestdma.memory.GuestMemory;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32C;

/**
 * The receiving side of a migration ({@code -incoming}): waits for one stream, loads its RAM pages
 * into the destination's guest memory and its device sections into the destination's devices.
 *
 * <p>The stream is never trusted. Its header must name this format's version and the same RAM
 * regions (names and sizes, in order) as the destination has; every page must lie inside its
 * region; device sections must come after the last page, in the destination's section order, each
 * once, with a version the device knows, a length within bounds and a matching CRC32C; the end
 * record must follow the last of them. Anything else (including a stream that simply stops) is a
 * {@link MigrationFormatException} naming the offset and the problem. Device sections are loaded
 * only after the end record was checked, so a refused stream never leaves a device half loaded; its
 * RAM may hold some of the stream's pages, which is why the caller must not run the machine after
 * a failure (the machine waits in {@code inmigrate} and then exits, as QEMU does).
 *
 * <p>On a socket, the destination answers a stream it loaded completely with one byte; the source
 * completes only on that answer, so a destination that refuses the stream or dies leaves the
 * source running.
 */
public final class IncomingMigration implements AutoCloseable {
    private static final int BUFFER_BYTES = 1 << 20;

    private final MigrationUri uri;
    private final ServerSocketChannel server;
    private volatile MigrationStatus status = MigrationStatus.NONE;
    private volatile long received;
    private volatile long startNanos;
    private volatile long endNanos;
    private volatile String error;

    private IncomingMigration(MigrationUri uri, ServerSocketChannel server) {
        this.uri = uri;
        this.server = server;
    }

    /**
     * Starts listening (for {@code tcp:} and {@code unix:}); a {@code file:} URI is only remembered.
     *
     * @param uri where to listen or which file to read
     * @return the incoming side, not yet accepting
     * @throws IOException if the address cannot be bound (in use, no permission) or the file is missing
     */
    public static IncomingMigration listen(MigrationUri uri) throws IOException {
        Objects.requireNonNull(uri, "uri");
        return switch (uri) {
            case MigrationUri.Tcp tcp -> bound(uri, ServerSocketChannel.open(), tcp.socketAddress());
            case MigrationUri.Unix unix ->
                    bound(uri, ServerSocketChannel.open(StandardProtocolFamily.UNIX), unix.socketAddress());
            case MigrationUri.File file -> {
                if (!Files.isRegularFile(file.path())) {
                    throw new IOException("incoming migration file " + file.path() + " is not a readable file");
                }
                yield new IncomingMigration(uri, null);
            }
        };
    }

    private static IncomingMigration bound(MigrationUri uri, ServerSocketChannel server, SocketAddress address)
            throws IOException {
        try {
            server.bind(address, 1);
        } catch (IOException | RuntimeException e) {
            server.close();
            throw new IOException("cannot listen on " + uri + ": " + e.getMessage(), e);
        }
        return new IncomingMigration(uri, server);
    }

    /**
     * {@return the bound address (with the port the kernel chose for {@code tcp:HOST:0}), or empty for a file}
     *
     * @throws IOException if the listening socket is closed
     */
    public java.util.Optional<SocketAddress> localAddress() throws IOException {
        return server == null ? java.util.Optional.empty() : java.util.Optional.of(server.getLocalAddress());
    }

    /** {@return the receiving side's progress: status, bytes received, time} */
    public MigrationStats stats() {
        MigrationStatus s = status;
        long end = s.isFinal() ? endNanos : System.nanoTime();
        long total = s == MigrationStatus.NONE ? 0 : TimeUnit.NANOSECONDS.toMillis(end - startNanos);
        return new MigrationStats(s, received, 0, 0, 0, 0, 0, 0, 0, -1, total, 0, error);
    }

    /**
     * Waits for the source, then loads its stream. On success the socket gets the acknowledgement
     * and the machine may run; on failure nothing of the stream may be trusted.
     *
     * @param memory   the destination's guest memory, not running
     * @param devices  the destination's device sections, in the machine's order
     * @param listener hears the status changes
     * @throws MigrationFormatException if the stream is not acceptable
     * @throws IOException if accepting or reading fails (the source died, the file is unreadable,
     *     {@link #close()} was called meanwhile)
     */
    public void receive(GuestMemory memory, List<DeviceState> devices, MigrationListener listener)
            throws IOException, MigrationFormatException {
        try {
            if (server == null) {
                Path path = ((MigrationUri.File) uri).path();
                try (FileChannel in = FileChannel.open(path, StandardOpenOption.READ)) {
                    startNanos = System.nanoTime();
                    setStatus(MigrationStatus.ACTIVE, listener);
                    load(in, memory, devices);
                }
            } else {
                try (SocketChannel peer = server.accept()) {
                    startNanos = System.nanoTime();
                    setStatus(MigrationStatus.ACTIVE, listener);
                    load(peer, memory, devices);
                    peer.write(ByteBuffer.wrap(new byte[] {StreamFormat.ACK}));
                }
            }
            setStatus(MigrationStatus.COMPLETED, listener);
        } catch (IOException | MigrationFormatException | RuntimeException e) {
            error = e.getMessage();
            setStatus(MigrationStatus.FAILED, listener);
            throw e;
        } finally {
            close();
        }
    }

    private void setStatus(MigrationStatus next, MigrationListener listener) {
        status = next;
        if (next.isFinal()) {
            endNanos = System.nanoTime();
        }
        listener.statusChanged(next);
    }

    /**
     * Stops listening; a {@link #receive} waiting for the source fails. Idempotent.
     *
     * @throws IOException if closing the socket fails
     */
    @Override
    public void close() throws IOException {
        if (server != null && server.isOpen()) {
            server.close();
            if (uri instanceof MigrationUri.Unix unix) {
                Files.deleteIfExists(unix.path());
            }
        }
    }

    /**
     * Loads a whole stream into a machine that is not running. The core of {@link #receive},
     * usable on any channel (a file, a pipe, bytes in memory).
     *
     * @param in      the stream, read up to and including its end record
     * @param memory  the destination's guest memory
     * @param devices the destination's device sections, in the machine's order
     * @return the number of stream bytes read
     * @throws MigrationFormatException if the stream is not acceptable (see the class description)
     * @throws IOException if reading fails
     */
    public static long load(ReadableByteChannel in, GuestMemory memory, List<DeviceState> devices)
            throws IOException, MigrationFormatException {
        return new Loader(in, memory, devices).run();
    }

    private record Section(DeviceState device, int version, byte[] payload) {
    }

    /** One pass over one stream; every check the class description lists is made here. */
    private static final class Loader {
        private final ReadableByteChannel in;
        private final GuestMemory memory;
        private final List<DeviceState> devices;
        private final Map<String, Integer> order = new HashMap<>();
        private final ByteBuffer buffer = ByteBuffer.allocateDirect(BUFFER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        private final MemorySegment bufferBytes = MemorySegment.ofBuffer(buffer);
        private long offset;

        Loader(ReadableByteChannel in, GuestMemory memory, List<DeviceState> devices) {
            this.in = Objects.requireNonNull(in, "in");
            this.memory = Objects.requireNonNull(memory, "memory");
            this.devices = List.copyOf(devices);
            for (int i = 0; i < this.devices.size(); i++) {
                if (order.put(this.devices.get(i).sectionId(), i) != null) {
                    throw new IllegalArgumentException("two devices use section id " + this.devices.get(i).sectionId());
                }
            }
            buffer.limit(0);
        }

        private MigrationFormatException bad(String problem) {
            return new MigrationFormatException("migration stream, offset " + offset + ": " + problem);
        }

        /** Makes {@code bytes} bytes readable from the buffer. */
        private void need(int bytes, String what) throws IOException, MigrationFormatException {
            if (buffer.remaining() >= bytes) {
                return;
            }
            buffer.compact();
            try {
                while (buffer.position() < bytes) {
                    int n = in.read(buffer);
                    if (n < 0) {
                        throw bad("stream truncated: it ends inside " + what);
                    }
                }
            } catch (EOFException e) {
                throw bad("stream truncated: it ends inside " + what);
            } finally {
                buffer.flip();
            }
        }

        private int u8(String what) throws IOException, MigrationFormatException {
            need(1, what);
            offset += 1;
            return Byte.toUnsignedInt(buffer.get());
        }

        private int u32(String what) throws IOException, MigrationFormatException {
            need(4, what);
            offset += 4;
            return buffer.getInt();
        }

        private long u64(String what) throws IOException, MigrationFormatException {
            need(8, what);
            offset += 8;
            return buffer.getLong();
        }

        private byte[] bytes(int length, String what) throws IOException, MigrationFormatException {
            byte[] out = new byte[length];
            int done = 0;
            while (done < length) {
                int chunk = Math.min(length - done, BUFFER_BYTES);
                need(chunk, what);
                buffer.get(out, done, chunk);
                offset += chunk;
                done += chunk;
            }
            return out;
        }

        private String utf8(byte[] raw, String what) throws MigrationFormatException {
            try {
                return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(raw)).toString();
            } catch (CharacterCodingException e) {
                throw bad(what + " is not UTF-8");
            }
        }

        long run() throws IOException, MigrationFormatException {
            List<RamBlock> blocks = RamBlock.of(memory);
            List<MemorySegment> ram = new ArrayList<>();
            for (RamBlock b : blocks) {
                ram.add(b.bytes(memory));
            }
            readHeader(blocks);
            List<Section> sections = new ArrayList<>();
            long lastPass = 0;
            while (true) {
                long recordOffset = offset;
                need(StreamFormat.RECORD, "a record");
                long word = buffer.getLong();
                offset += StreamFormat.RECORD;
                int type = (int) (word & 0xff);
                int flags = (int) (word >>> 8 & 0xff);
                int block = (int) (word >>> 16 & 0xffff);
                long value = word >>> 32;
                switch (type) {
                    case StreamFormat.PAGE -> {
                        if (!sections.isEmpty()) {
                            throw bad("RAM page after a device section (records out of order)");
                        }
                        if ((flags & ~StreamFormat.FLAG_ZERO) != 0) {
                            throw bad("page record with unknown flags 0x" + Integer.toHexString(flags));
                        }
                        if (block >= blocks.size()) {
                            throw bad("page of RAM block " + block + ", the destination has " + blocks.size());
                        }
                        if (value >= blocks.get(block).pages()) {
                            throw bad("page " + value + " is outside RAM region " + blocks.get(block).name()
                                    + " (" + blocks.get(block).pages() + " pages)");
                        }
                        loadPage(ram.get(block), value * StreamFormat.PAGE_SIZE, (flags & StreamFormat.FLAG_ZERO) != 0);
                    }
                    case StreamFormat.PASS -> {
                        if (flags != 0 || block != 0 || value <= lastPass) {
                            throw bad("bad pass record (pass " + value + " after " + lastPass + ")");
                        }
                        if (!sections.isEmpty()) {
                            throw bad("pass record after a device section (records out of order)");
                        }
                        lastPass = value;
                    }
                    case StreamFormat.DEVICE -> {
                        if (block != 0) {
                            throw bad("bad device section record");
                        }
                        sections.add(readSection(flags, value, sections.size()));
                    }
                    case StreamFormat.END -> {
                        if (flags != 0 || block != 0 || value != 0) {
                            throw bad("bad end record");
                        }
                        if (lastPass == 0) {
                            throw bad("the stream ends before any pass over RAM");
                        }
                        if (sections.size() != devices.size()) {
                            throw bad("the stream ends without the section of device "
                                    + devices.get(sections.size()).sectionId());
                        }
                        loadDevices(sections);
                        return offset;
                    }
                    default -> {
                        offset = recordOffset;
                        throw bad("unknown record type 0x" + Integer.toHexString(type));
                    }
                }
            }
        }

        private void readHeader(List<RamBlock> blocks) throws IOException, MigrationFormatException {
            ByteBuffer copy = ByteBuffer.allocate(8 + 12 + blocks.size() * 264 + 4).order(ByteOrder.LITTLE_ENDIAN);
            byte[] magic = bytes(StreamFormat.MAGIC.length, "the header");
            if (!java.util.Arrays.equals(magic, StreamFormat.MAGIC)) {
                offset = 0;
                throw bad("not a guestdma migration stream (bad magic)");
            }
            copy.put(magic);
            int version = u32("the header");
            if (version != StreamFormat.VERSION) {
                throw bad("unknown stream version " + Integer.toUnsignedString(version) + " (this build reads "
                        + StreamFormat.VERSION + ")");
            }
            int pageSize = u32("the header");
            if (pageSize != StreamFormat.PAGE_SIZE) {
                throw bad("page size " + Integer.toUnsignedString(pageSize) + ", expected " + StreamFormat.PAGE_SIZE);
            }
            int count = u32("the header");
            if (count != blocks.size()) {
                throw bad("the source has " + Integer.toUnsignedString(count) + " RAM regions, the destination "
                        + blocks.size());
            }
            copy.putInt(version).putInt(pageSize).putInt(count);
            for (RamBlock b : blocks) {
                int length = u8("the RAM block table");
                String name = utf8(bytes(length, "the RAM block table"), "a RAM region name");
                long size = u64("the RAM block table");
                if (!name.equals(b.name()) || size != b.size()) {
                    throw bad("RAM region '" + name + "' of " + size + " bytes where the destination has '"
                            + b.name() + "' of " + b.size() + " bytes");
                }
                copy.put((byte) length).put(name.getBytes(StandardCharsets.UTF_8)).putLong(size);
            }
            int expected = StreamFormat.crc(copy.array(), 0, copy.position());
            if (u32("the header checksum") != expected) {
                throw bad("header checksum mismatch");
            }
        }

        private void loadPage(MemorySegment ram, long at, boolean zero) throws IOException, MigrationFormatException {
            if (zero) {
                // Reading an untouched page maps the shared zero page; writing would commit memory.
                if (MemorySegment.mismatch(ram, at, at + StreamFormat.PAGE_SIZE, ZeroPage.SEGMENT, 0,
                        StreamFormat.PAGE_SIZE) >= 0) {
                    ram.asSlice(at, StreamFormat.PAGE_SIZE).fill((byte) 0);
                }
                return;
            }
            need(StreamFormat.PAGE_SIZE, "a RAM page");
            MemorySegment.copy(bufferBytes, buffer.position(), ram, at, StreamFormat.PAGE_SIZE);
            buffer.position(buffer.position() + StreamFormat.PAGE_SIZE);
            offset += StreamFormat.PAGE_SIZE;
        }

        private Section readSection(int idLength, long length, int index) throws IOException, MigrationFormatException {
            if (idLength == 0) {
                throw bad("device section with an empty id");
            }
            if (length > StreamFormat.MAX_SECTION) {
                throw bad("device section of " + length + " bytes, more than the " + StreamFormat.MAX_SECTION
                        + " accepted");
            }
            byte[] rawId = bytes(idLength, "a device section id");
            String id = utf8(rawId, "a device section id");
            Integer position = order.get(id);
            if (position == null) {
                throw bad("unknown device section '" + id + "': the destination has " + order.keySet());
            }
            if (position != index) {
                throw bad("device section '" + id + "' out of order: expected '"
                        + (index < devices.size() ? devices.get(index).sectionId() : "the end") + "'");
            }
            int version = u32("a device section version");
            int crc = u32("a device section checksum");
            byte[] payload = bytes((int) length, "device section '" + id + "'");
            CRC32C check = new CRC32C();
            check.update(rawId);
            check.update(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, version));
            check.update(payload);
            if ((int) check.getValue() != crc) {
                throw bad("device section '" + id + "' is corrupt (CRC32C mismatch)");
            }
            DeviceState device = devices.get(index);
            if (version < 1 || version > device.version()) {
                throw bad("device section '" + id + "' has version " + Integer.toUnsignedString(version)
                        + "; the destination knows 1.." + device.version());
            }
            return new Section(device, version, payload);
        }

        private void loadDevices(List<Section> sections) throws MigrationFormatException {
            for (Section s : sections) {
                StateReader reader = new StateReader(s.device().sectionId(), s.payload());
                try {
                    s.device().load(reader, s.version());
                } catch (RuntimeException e) {
                    throw new MigrationFormatException("device section '" + s.device().sectionId()
                            + "' was refused by the device: " + e, e);
                }
                reader.expectEnd();
            }
        }
    }
}
