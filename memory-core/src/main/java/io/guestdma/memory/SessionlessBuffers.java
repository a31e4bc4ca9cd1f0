package io.guestdma.memory;

import io.guestdma.memory.internal.Posix;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Constructor;
import java.nio.ByteBuffer;

/**
 * Direct {@code ByteBuffer}s over raw native addresses that belong to no memory session, for
 * {@link IoVector}'s internal FileChannel view.
 *
 * <p>Why: every buffer {@link MemorySegment#asByteBuffer()} makes carries its segment's session,
 * even the global one, and for each such buffer JDK 25's gathering and scattering calls
 * ({@code sun.nio.ch.IOUtil.write/read(FileDescriptor, ByteBuffer[], ...)}) acquire the session
 * and allocate a {@code Releaser} (16 bytes) and a {@code LinkedRunnable} (24 bytes) to release it
 * after the system call: 40 bytes per buffer per call, which no caching of the buffers avoids. A
 * buffer with no session, like the ones JNI's {@code NewDirectByteBuffer} makes, takes NIO's path
 * that allocates nothing.
 *
 * <p>How: {@code java.nio.DirectByteBuffer(long address, long capacity)} is the constructor behind
 * {@code NewDirectByteBuffer}. It is not accessible, and {@code java.nio} is not open to us; the
 * JDK's {@code sun.reflect.ReflectionFactory} (module {@code jdk.unsupported}, kept accessible for
 * serialization libraries) returns it usable ({@code newConstructorForSerialization} with a
 * constructor of the class itself). Neither JNI through FFM downcalls (a local reference does not
 * survive from one downcall to the next: the next JNI native method to return on the thread resets
 * the handle block it lives in) nor one positional call per buffer (2.5 times slower for 16
 * pieces) was an alternative. If the JDK ever withdraws the loophole, {@link #available()} is
 * false and callers keep the session-scoped buffers: correct, 40 bytes per buffer per call.
 *
 * <p>Such a buffer is unchecked memory: nothing stops it from outliving the memory it points at,
 * or from being used by a thread a confined arena would refuse. It must never reach user code; the
 * one caller checks every segment's liveness, thread access and read-only mode before each system
 * call, as {@link IoVector#nativeIovecs()} does for the raw iovecs handed to {@code pwritev}.
 * Thread-safe.
 */
final class SessionlessBuffers {
    /** {@code (long address, long capacity) -> ByteBuffer}, or null when the JDK does not let us. */
    private static final MethodHandle CONSTRUCTOR = constructor();

    private SessionlessBuffers() {
    }

    /** {@return whether buffers can be made; if not, {@link #of} must not be called} */
    static boolean available() {
        return CONSTRUCTOR != null;
    }

    /**
     * Makes a direct buffer over {@code [address, address + length)} with no memory session.
     *
     * @param address  the first byte; the caller vouches that the memory is mapped whenever the
     *                 buffer is used
     * @param length   how many bytes
     * @param readOnly whether to return a read-only view
     * @return the buffer, positioned at 0 with its limit at {@code length}
     * @throws IllegalStateException if {@link #available()} is false
     */
    static ByteBuffer of(long address, int length, boolean readOnly) {
        if (CONSTRUCTOR == null) {
            throw new IllegalStateException("this JDK does not let guestdma make session-less buffers");
        }
        ByteBuffer buffer;
        try {
            buffer = (ByteBuffer) CONSTRUCTOR.invokeExact(address, (long) length);
        } catch (Throwable e) {
            throw new IllegalStateException("java.nio.DirectByteBuffer(long, long) failed", e);
        }
        return readOnly ? buffer.asReadOnlyBuffer() : buffer;
    }

    private static MethodHandle constructor() {
        try {
            Class<?> direct = Class.forName("java.nio.DirectByteBuffer");
            Constructor<?> declared = direct.getDeclaredConstructor(long.class, long.class);
            Constructor<?> usable = sun.reflect.ReflectionFactory.getReflectionFactory()
                    .newConstructorForSerialization(direct, declared);
            MethodHandle handle = MethodHandles.lookup().unreflectConstructor(usable)
                    .asType(MethodType.methodType(ByteBuffer.class, long.class, long.class));
            ByteBuffer probe = (ByteBuffer) handle.invokeExact(0L, 0L);
            // The rest of Posix.CUSTOMIZE_CALLS: the JDK customizes a handle at its 128th call
            // from interpreted or C1 code (a hidden class built on the heap, see
            // Posix.customizeDataPath); done here, it cannot land in a request whose caller the
            // JIT has just deoptimized.
            for (int i = 1; i < Posix.CUSTOMIZE_CALLS; i++) {
                probe = (ByteBuffer) handle.invokeExact(0L, 0L);
            }
            return probe.isDirect() ? handle : null;
        } catch (Throwable e) {
            // Another JDK layout (no such constructor) or the loophole closed: scoped buffers it is.
            return null;
        }
    }
}
