package io.guestdma.bench;

import io.guestdma.memory.GuestMemory;
import io.guestdma.migration.MigrationListener;
import io.guestdma.migration.MigrationParameters;
import io.guestdma.migration.MigrationSource;
import io.guestdma.migration.MigrationStats;
import io.guestdma.migration.MigrationStatus;
import io.guestdma.migration.MigrationUri;
import io.guestdma.migration.Switchover;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.List;
import java.util.SplittableRandom;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * RAM pre-copy over a TCP loopback socket against a raw bulk transfer of the same bytes to the same
 * receiver: {@link #migrateRam} migrates an idle 128 MiB guest whose pages are all non-zero (pass
 * 1 sends every page from guest RAM by writev, the dirty log finds nothing more, the switchover
 * waits for the receiver's acknowledgement), {@link #rawBulk} writes the guest's 128 MiB with one
 * NIO socket write loop from the same memory and waits for the same acknowledgement. One operation
 * of either moves the whole RAM; {@code migration_ram_throughput_over_socket} is their ratio (goal
 * >= 0.8), and {@code migration_alloc_bytes_per_page} is the migration's heap allocation per page
 * (goal <= 1).
 *
 * <p>The receiver is a thread that reads each connection to its end into one reused direct buffer
 * and then answers with one byte, which is all the source's acknowledgement needs: the comparison
 * measures the sending side, not a destination's page loading.
 *
 * <p>(JMH subclasses state classes, so this one cannot be final.)
 */
@State(Scope.Benchmark)
public class MigrationBenchmark extends SuiteSettings {
    /** Guest RAM migrated per operation. */
    static final long RAM_BYTES = 128L << 20;
    /** Pages per operation, for the allocation per page. */
    static final long PAGES = RAM_BYTES / 4096;

    private static final Switchover IDLE = new Switchover() {
        @Override
        public void stopAndDrain() {
        }

        @Override
        public void resume() {
        }
    };

    private GuestMemory memory;
    private ServerSocketChannel server;
    private Thread receiver;
    /** Set at teardown, before the connection that wakes the receiver from its accept. */
    private volatile boolean stopping;
    private MigrationUri uri;
    private ByteBuffer ram;

    /**
     * Builds the guest (every page non-zero) and starts the receiver.
     *
     * @throws IOException if the socket cannot be bound
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        // Close a guest memory and a server once here (SuiteSettings): the first of each in a JVM
        // loads classes and links lambdas, about 0.4 MB, which JMH would count against the last
        // measured iteration's five or so migrations (1.23 B/page in one fork of five, against
        // 0.45 B/page in the other iterations).
        GuestMemory.ofRam(1L << 20).close();
        ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0)).close();
        memory = GuestMemory.builder().ram("ram", 0, RAM_BYTES).build();
        byte[] chunk = new byte[1 << 20];
        SplittableRandom random = new SplittableRandom(19);
        for (long at = 0; at < RAM_BYTES; at += chunk.length) {
            random.nextBytes(chunk);
            chunk[0] |= 1;
            memory.write(at, chunk, 0, chunk.length);
        }
        ram = memory.backing().segment().asSlice(0, RAM_BYTES).asByteBuffer();
        server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0));
        uri = new MigrationUri.Tcp("127.0.0.1", ((InetSocketAddress) server.getLocalAddress()).getPort());
        receiver = Thread.ofPlatform().daemon().name("migration-receiver").start(this::receive);
    }

    private void receive() {
        ByteBuffer sink = ByteBuffer.allocateDirect(1 << 20);
        ByteBuffer ack = ByteBuffer.allocateDirect(1);
        while (true) {
            SocketChannel peer;
            try {
                peer = server.accept();
            } catch (IOException e) {
                return; // the server is closed: nothing more to serve
            }
            try (peer) {
                if (stopping) {
                    return;
                }
                while (true) {
                    sink.clear();
                    if (peer.read(sink) < 0) {
                        break;
                    }
                }
                ack.clear();
                ack.put(0, (byte) 0x06);
                peer.write(ack);
            } catch (IOException e) {
                // One connection broke (its sender reports that); the next operation's must still
                // be served, or it would wait for an acknowledgement forever.
            }
        }
    }

    /**
     * Stops the receiver and frees the guest.
     *
     * @throws Exception if the receiver does not stop
     */
    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        // Wake the receiver with one more connection rather than by closing the server under its
        // accept: the asynchronous close and its exception cost ~100 KB of heap the first time.
        stopping = true;
        SocketChannel.open(server.getLocalAddress()).close();
        receiver.join();
        server.close();
        memory.close();
    }

    /**
     * One migration of the whole idle guest.
     *
     * @return the migration's figures
     * @throws IllegalStateException if the migration did not complete
     */
    @Benchmark
    public MigrationStats migrateRam() {
        MigrationStats stats = new MigrationSource(memory, List.of(), IDLE, new MigrationParameters(0, 300, 64),
                MigrationListener.NONE).run(uri);
        if (stats.status() != MigrationStatus.COMPLETED) {
            throw new IllegalStateException("migration " + stats.status() + ": " + stats.error());
        }
        return stats;
    }

    /**
     * The same bytes as one bulk transfer to the same receiver.
     *
     * @return the acknowledgement byte
     * @throws IOException if the transfer fails
     */
    @Benchmark
    public int rawBulk() throws IOException {
        MigrationUri.Tcp tcp = (MigrationUri.Tcp) uri;
        try (SocketChannel channel = SocketChannel.open(new InetSocketAddress(tcp.host(), tcp.port()))) {
            ByteBuffer bytes = ram.duplicate();
            while (bytes.hasRemaining()) {
                channel.write(bytes);
            }
            channel.shutdownOutput();
            ByteBuffer ack = ByteBuffer.allocate(1);
            if (channel.read(ack) != 1) {
                throw new IOException("no acknowledgement");
            }
            return ack.get(0);
        }
    }
}
