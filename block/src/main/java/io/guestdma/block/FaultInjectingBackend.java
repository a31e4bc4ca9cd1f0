package io.guestdma.block;

import io.guestdma.memory.IoVector;
import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.posix.PosixException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A {@link BlockBackend} decorator that fails chosen requests the way a real disk or file system
 * does, for testing what a device model shows its guest: an I/O error, a full disk, a short
 * transfer (part of the bytes moved, then an error), a failed flush.
 *
 * <p>Requests are numbered per {@link Operation} from 1 in the order they reach this backend
 * (vectored and single-buffer calls count alike). A fault {@linkplain #failAt armed} for request
 * number <i>n</i> of an operation fires once, on that request; a fault armed with
 * {@link #failFrom} fires on every request from <i>n</i> on until {@link #heal} is called. Every
 * other request passes through untouched. Errors are {@link PosixException}s carrying the errno a
 * real backend would report ({@code EIO}, {@code ENOSPC}), with the call named
 * {@code "injected <operation> #n"}.
 *
 * <p>A short transfer really moves the first half of the request's bytes (rounded down to whole
 * 512-byte sectors) through the wrapped backend before failing with {@code EIO}: after a short
 * write, the image holds a prefix of the new data, as after a torn write to a real disk.
 *
 * <p>Thread-safe. Closing closes the wrapped backend.
 */
public final class FaultInjectingBackend implements BlockBackend {

    /** The request kinds faults can be armed for. */
    public enum Operation {
        /** {@link BlockBackend#readv} and {@link BlockBackend#read}. */
        READ,
        /** {@link BlockBackend#writev} and {@link BlockBackend#write}. */
        WRITE,
        /** {@link BlockBackend#flush}. */
        FLUSH,
        /** {@link BlockBackend#discard}. */
        DISCARD
    }

    /** What an injected failure looks like. */
    public enum Fault {
        /** The request fails with EIO, having moved nothing. */
        EIO,
        /** The request fails with ENOSPC (a full host disk), having moved nothing. */
        ENOSPC,
        /**
         * Half the bytes (whole sectors) move, then EIO. For flush and discard, which move no
         * bytes, this is the same as {@link #EIO}.
         */
        SHORT_TRANSFER
    }

    /**
     * One fault that fired.
     *
     * @param operation the failed operation
     * @param request   its number among requests of that operation, from 1
     * @param fault     what was injected
     * @param offset    the request's image offset (0 for flush)
     * @param length    the request's length in bytes (0 for flush)
     */
    public record Injected(Operation operation, long request, Fault fault, long offset, long length) {
    }

    /** A fault that fired, with the errno it carries. */
    private record Fired(Injected injected, int errno) {
    }

    private record Armed(long from, Fault fault, boolean repeat, int errno) {
    }

    private final BlockBackend inner;
    private final Map<Operation, AtomicLong> counts = new EnumMap<>(Operation.class);
    private final Map<Operation, List<Armed>> armed = new EnumMap<>(Operation.class);
    private final List<Injected> injected = new ArrayList<>();

    /**
     * Wraps a backend; nothing is armed yet.
     *
     * @param inner the backend that does the real I/O
     * @throws NullPointerException if inner is null
     */
    public FaultInjectingBackend(BlockBackend inner) {
        this.inner = Objects.requireNonNull(inner, "inner");
        for (Operation op : Operation.values()) {
            counts.put(op, new AtomicLong());
            armed.put(op, new ArrayList<>());
        }
    }

    /**
     * Arms a one-shot fault for request number {@code request} of {@code operation}.
     *
     * @param operation which kind of request
     * @param request   its number, from 1, counted since this backend was created
     * @param fault     what to inject
     * @return this backend
     * @throws IllegalArgumentException if request is below 1
     * @throws NullPointerException     if operation or fault is null
     */
    public synchronized FaultInjectingBackend failAt(Operation operation, long request, Fault fault) {
        armed.get(check(operation, request, fault)).add(new Armed(request, fault, false, errnoOf(fault)));
        return this;
    }

    /**
     * Arms a one-shot failure with a chosen errno for request number {@code request} of
     * {@code operation}: the request moves nothing and fails with a {@link PosixException}
     * carrying that errno (QEMU blkdebug's {@code errno=}). It is recorded as {@link Fault#ENOSPC}
     * for ENOSPC and {@link Fault#EIO} for any other errno.
     *
     * @param operation which kind of request
     * @param request   its number, from 1, counted since this backend was created
     * @param errno     the errno, above 0
     * @return this backend
     * @throws IllegalArgumentException if request or errno is below 1
     * @throws NullPointerException     if operation is null
     */
    public synchronized FaultInjectingBackend failAt(Operation operation, long request, int errno) {
        if (errno < 1) {
            throw new IllegalArgumentException("errno must be above 0, was " + errno);
        }
        Fault fault = errno == Errno.ENOSPC ? Fault.ENOSPC : Fault.EIO;
        armed.get(check(operation, request, fault)).add(new Armed(request, fault, false, errno));
        return this;
    }

    private static int errnoOf(Fault fault) {
        return fault == Fault.ENOSPC ? Errno.ENOSPC : Errno.EIO;
    }

    /**
     * Arms a fault for every request of {@code operation} from number {@code request} on, until
     * {@link #heal}: a disk that stays broken (or full) until someone fixes it.
     *
     * @param operation which kind of request
     * @param request   the first failing request's number, from 1
     * @param fault     what to inject
     * @return this backend
     * @throws IllegalArgumentException if request is below 1
     * @throws NullPointerException     if operation or fault is null
     */
    public synchronized FaultInjectingBackend failFrom(Operation operation, long request, Fault fault) {
        armed.get(check(operation, request, fault)).add(new Armed(request, fault, true, errnoOf(fault)));
        return this;
    }

    private static Operation check(Operation operation, long request, Fault fault) {
        Objects.requireNonNull(operation, "operation");
        Objects.requireNonNull(fault, "fault");
        if (request < 1) {
            throw new IllegalArgumentException("request numbers start at 1, was " + request);
        }
        return operation;
    }

    /** Disarms every fault not yet fired, and every repeating one. */
    public synchronized void heal() {
        armed.values().forEach(List::clear);
    }

    /**
     * {@return how many requests of that kind have reached this backend, failed ones included}
     *
     * @param operation which kind of request
     */
    public long requests(Operation operation) {
        return counts.get(operation).get();
    }

    /** {@return the faults that fired, in order} */
    public synchronized List<Injected> injected() {
        return List.copyOf(injected);
    }

    /** Numbers the request and returns the fault to inject, or null to pass it through. */
    private synchronized Fired next(Operation operation, long offset, long length) {
        long n = counts.get(operation).incrementAndGet();
        List<Armed> list = armed.get(operation);
        for (int i = 0; i < list.size(); i++) {
            Armed a = list.get(i);
            if (a.repeat() ? n >= a.from() : n == a.from()) {
                if (!a.repeat()) {
                    list.remove(i);
                }
                Injected fired = new Injected(operation, n, a.fault(), offset, length);
                injected.add(fired);
                return new Fired(fired, a.errno());
            }
        }
        return null;
    }

    private static PosixException error(Fired fired) {
        Injected f = fired.injected();
        return new PosixException("injected " + f.operation().name().toLowerCase(java.util.Locale.ROOT)
                + " #" + f.request(), fired.errno());
    }

    /** Bytes a short transfer moves: half, in whole sectors. */
    private static long shortLength(long length) {
        return (length / 2) & ~511L;
    }

    @Override
    public long size() {
        return inner.size();
    }

    @Override
    public boolean isReadOnly() {
        return inner.isReadOnly();
    }

    /** Carries out a read or write for its first {@code bytes} bytes (all of them, or a prefix). */
    @FunctionalInterface
    private interface Transfer {
        void run(long bytes) throws IOException;
    }

    /** A single-buffer read or write of the wrapped backend. */
    @FunctionalInterface
    private interface BufferTransfer {
        void run(long offset, ByteBuffer buffer) throws IOException;
    }

    /**
     * Numbers the request and passes it through, or fails it as armed: a short transfer first
     * moves half its bytes (whole sectors) through the wrapped backend.
     */
    private void transfer(Operation operation, long offset, long length, Transfer transfer) throws IOException {
        Fired f = next(operation, offset, length);
        if (f == null) {
            transfer.run(length);
            return;
        }
        long part = shortLength(length);
        if (f.injected().fault() == Fault.SHORT_TRANSFER && part > 0) {
            transfer.run(part);
        }
        throw error(f);
    }

    /** {@link #transfer} for a buffer: a prefix moves through a view, then the buffer advances. */
    private void transfer(Operation operation, long offset, ByteBuffer buffer, BufferTransfer io) throws IOException {
        int whole = buffer.remaining();
        transfer(operation, offset, whole, bytes -> {
            if (bytes == whole) {
                io.run(offset, buffer);
                return;
            }
            ByteBuffer head = buffer.duplicate();
            head.limit(head.position() + (int) bytes);
            io.run(offset, head);
            buffer.position(head.position());
        });
    }

    @Override
    public void readv(long offset, IoVector iov) throws IOException {
        transfer(Operation.READ, offset, iov.size(),
                bytes -> inner.readv(offset, bytes == iov.size() ? iov : iov.slice(0, bytes)));
    }

    @Override
    public void writev(long offset, IoVector iov) throws IOException {
        transfer(Operation.WRITE, offset, iov.size(),
                bytes -> inner.writev(offset, bytes == iov.size() ? iov : iov.slice(0, bytes)));
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        transfer(Operation.READ, offset, dst, inner::read);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        transfer(Operation.WRITE, offset, src, inner::write);
    }

    @Override
    public void flush() throws IOException {
        Fired f = next(Operation.FLUSH, 0, 0);
        if (f != null) {
            throw error(f);
        }
        inner.flush();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        Fired f = next(Operation.DISCARD, offset, length);
        if (f != null) {
            throw error(f);
        }
        inner.discard(offset, length);
    }

    /** Closes the wrapped backend. */
    @Override
    public void close() throws IOException {
        inner.close();
    }
}
