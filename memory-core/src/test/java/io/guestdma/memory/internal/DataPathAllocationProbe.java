package io.guestdma.memory.internal;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Run in its own JVM by {@link DataPathAllocationTest}: calls each data-path system call many times
 * after a warm-up and prints the heap bytes this thread allocated per call, one {@code name=bytes}
 * line each. {@code fileSize} (lseek, linked with errno capture) is measured the same way as the
 * control that shows a capturing downcall's allocation is visible in this JVM. With a second
 * argument {@code first-calls} it prints instead the heap bytes of each call's first 300 calls in
 * all (run with {@code -Xint}), with {@code getpagesize} (a handle Posix does not customize) as
 * the control that shows the JDK customizing a handle there.
 */
final class DataPathAllocationProbe {
    private static final int WARMUP = 30_000;
    private static final int MEASURED = 20_000;
    /** Past the JDK's customization threshold (127) with room to spare. */
    private static final int FIRST_CALLS = 300;

    private DataPathAllocationProbe() {
    }

    @FunctionalInterface
    private interface Call {
        void run() throws PosixException;
    }

    public static void main(String[] args) throws IOException {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        Path file = Path.of(args[0]);
        int fd = Posix.open(file, Posix.O_RDWR | Posix.O_CREAT, 0600);
        // The stream calls (readv/writev/read, what NBD sockets use) against /dev/null: writes vanish,
        // reads see end of file, and nothing grows.
        int stream = Posix.open(Path.of("/dev/null"), Posix.O_RDWR, 0);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(512, 512);
            MemorySegment b = arena.allocate(512, 512);
            MemorySegment iov = arena.allocate(2 * 16, 8);
            iov.set(ValueLayout.ADDRESS, 0, a);
            iov.set(ValueLayout.JAVA_LONG, 8, a.byteSize());
            iov.set(ValueLayout.ADDRESS, 16, b);
            iov.set(ValueLayout.JAVA_LONG, 24, b.byteSize());
            Map<String, Call> calls = new LinkedHashMap<>();
            calls.put("pwritev", () -> Posix.pwritev(fd, iov, 2, 0));
            calls.put("preadv", () -> Posix.preadv(fd, iov, 2, 0));
            calls.put("pwrite", () -> Posix.pwrite(fd, a, 4096));
            calls.put("pread", () -> Posix.pread(fd, a, 4096));
            calls.put("writev", () -> Posix.writev(stream, iov, 2));
            calls.put("readv", () -> Posix.readv(stream, iov, 2));
            calls.put("read", () -> Posix.read(stream, a));
            calls.put("control_capturing_lseek", () -> Posix.fileSize(fd));
            long tid = Thread.currentThread().threadId();
            if (args.length > 1 && args[1].equals("first-calls")) {
                // Run with -Xint: every call counts towards the JDK's customization of its handle,
                // and the total over the first FIRST_CALLS calls shows whether that happens now.
                calls.put("control_uncustomized_getpagesize", () -> Posix.pageSize());
                for (Map.Entry<String, Call> e : calls.entrySet()) {
                    if (e.getKey().equals("control_capturing_lseek")) {
                        continue;
                    }
                    Call call = e.getValue();
                    long before = threads.getThreadAllocatedBytes(tid);
                    for (int i = 0; i < FIRST_CALLS; i++) {
                        call.run();
                    }
                    long after = threads.getThreadAllocatedBytes(tid);
                    System.out.println(e.getKey() + "=" + (after - before));
                }
                return;
            }
            for (Map.Entry<String, Call> e : calls.entrySet()) {
                Call call = e.getValue();
                for (int i = 0; i < WARMUP; i++) {
                    call.run();
                }
                long before = threads.getThreadAllocatedBytes(tid);
                for (int i = 0; i < MEASURED; i++) {
                    call.run();
                }
                long after = threads.getThreadAllocatedBytes(tid);
                System.out.println(e.getKey() + "=" + (double) (after - before) / MEASURED);
            }
        } finally {
            Posix.close(stream);
            Posix.close(fd);
        }
    }
}
