package io.guestdma.memory.internal;

import io.guestdma.memory.IoVector;

import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * An {@link IoVector} as {@code ByteBuffer}s for {@code FileChannel}'s gathering writes and
 * scattering reads, allocating nothing per call: the block layer's FileChannel backend's view.
 *
 * <p>{@link IoVector#byteBuffers()} gives buffers scoped to their segments' memory sessions, and
 * for each of those the JDK's vectored calls allocate 40 bytes per call to release the session
 * afterwards. The buffers here carry no session, so NIO allocates nothing for them; they are
 * cached per slot like the public ones and rebuilt only when a slot's address, length or access
 * mode changes. Heap segments (no stable address), or a JDK that does not let us build such
 * buffers, get the scoped buffers instead.
 *
 * <p>Without a session the buffers bypass FFM's checks, exactly like the raw iovecs of
 * {@link IoVector#nativeIovecs()}. So: they must never leave the backend (never handed to user
 * code); call {@link #requireUsable} right before every {@code FileChannel} call that uses them,
 * also each retry after a short transfer; and keep the memory alive until that call returns (a
 * shared arena closed by another thread during the call is not detected, as with
 * {@code pwritev}). Read-only segments are refused up front for reads, when {@link #toRead} builds
 * the view.
 *
 * <p>Internal: exported only to the block layer. Not thread-safe, as {@link IoVector} is not.
 */
public final class FileChannelBuffers {
    /** What {@link IoVector} lends this class; registered once, by {@link IoVector}'s initializer. */
    public interface Access {
        /**
         * {@return the buffer array, of which {@link #count} entries are in use}
         *
         * @param iov        the vector
         * @param intoVector whether the call writes into the vector's memory
         * @throws IllegalArgumentException if {@code intoVector} and a segment is read-only
         */
        ByteBuffer[] buffers(IoVector iov, boolean intoVector);

        /**
         * {@return how many buffers the last {@link #buffers} call filled}
         *
         * @param iov the vector
         */
        int count(IoVector iov);

        /**
         * Checks the vector's memory is alive and usable by the current thread.
         *
         * @param iov the vector
         * @throws IllegalStateException if a segment's memory is no longer alive
         * @throws WrongThreadException  if a segment is confined to another thread
         */
        void requireUsable(IoVector iov);
    }

    private static volatile Access access;

    private FileChannelBuffers() {
    }

    /**
     * Installs {@link IoVector}'s side; called once, by {@link IoVector}'s class initializer.
     *
     * @param from the implementation
     * @throws IllegalStateException if one is already installed
     */
    public static void register(Access from) {
        Objects.requireNonNull(from, "from");
        synchronized (FileChannelBuffers.class) {
            if (access != null) {
                throw new IllegalStateException("IoVector's FileChannel view is already registered");
            }
            access = from;
        }
    }

    /**
     * The vector's bytes as buffers for a gathering write ({@code FileChannel.write(ByteBuffer[],
     * int, int)}): each positioned at 0 with its limit at its length; segments over
     * {@link IoVector#MAX_BUFFER_BYTES} span several. Valid until the vector next changes. Checks
     * nothing about liveness: call {@link #requireUsable} before each use.
     *
     * @param iov the vector
     * @return the cached array; use entries {@code [0, count(iov))}
     */
    public static ByteBuffer[] toWrite(IoVector iov) {
        return access(iov).buffers(iov, false);
    }

    /**
     * As {@link #toWrite}, for a scattering read into the vector.
     *
     * @param iov the vector
     * @return the cached array; use entries {@code [0, count(iov))}
     * @throws IllegalArgumentException if a segment is read-only (a TO_DEVICE mapping, ROM)
     */
    public static ByteBuffer[] toRead(IoVector iov) {
        return access(iov).buffers(iov, true);
    }

    /**
     * {@return how many entries the last {@link #toWrite}/{@link #toRead} of {@code iov} filled}
     *
     * @param iov the vector
     */
    public static int count(IoVector iov) {
        return access(iov).count(iov);
    }

    /**
     * Refuses a vector whose memory the session-less buffers must not reach: call right before
     * every {@code FileChannel} call that uses them.
     *
     * @param iov the vector
     * @throws IllegalStateException if a segment's memory is no longer alive (guest memory
     *                               closed, a debug-mode unmap)
     * @throws WrongThreadException  if a segment belongs to a confined arena of another thread
     */
    public static void requireUsable(IoVector iov) {
        access(iov).requireUsable(iov);
    }

    private static Access access(IoVector iov) {
        Objects.requireNonNull(iov, "iov");
        // An IoVector exists, so its class initializer, which registers, has run.
        return access;
    }
}
