package io.guestdma.migration;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Collects one device's state as fixed-width little-endian fields, in the order the matching
 * {@link StateReader} calls read them. There are no field tags: the section's version says the
 * layout, so a device writes exactly what its {@link DeviceState#load} reads.
 */
public final class StateWriter {
    private ByteBuffer buffer = ByteBuffer.allocate(256).order(ByteOrder.LITTLE_ENDIAN);

    /** Creates an empty writer. */
    public StateWriter() {
    }

    private ByteBuffer room(int bytes) {
        if (buffer.remaining() < bytes) {
            int needed = Math.addExact(buffer.position(), bytes);
            ByteBuffer bigger = ByteBuffer.allocate(Math.max(needed, buffer.capacity() * 2))
                    .order(ByteOrder.LITTLE_ENDIAN);
            bigger.put(buffer.flip());
            buffer = bigger;
        }
        return buffer;
    }

    /**
     * Writes one byte.
     *
     * @param value 0..255
     * @return this writer
     * @throws IllegalArgumentException if the value does not fit
     */
    public StateWriter u8(int value) {
        if ((value & ~0xff) != 0) {
            throw new IllegalArgumentException("u8 out of range: " + value);
        }
        room(1).put((byte) value);
        return this;
    }

    /**
     * Writes two bytes.
     *
     * @param value 0..65535
     * @return this writer
     * @throws IllegalArgumentException if the value does not fit
     */
    public StateWriter u16(int value) {
        if ((value & ~0xffff) != 0) {
            throw new IllegalArgumentException("u16 out of range: " + value);
        }
        room(2).putShort((short) value);
        return this;
    }

    /**
     * Writes four bytes.
     *
     * @param value 0..2<sup>32</sup>-1
     * @return this writer
     * @throws IllegalArgumentException if the value does not fit
     */
    public StateWriter u32(long value) {
        if ((value & ~0xffff_ffffL) != 0) {
            throw new IllegalArgumentException("u32 out of range: " + value);
        }
        room(4).putInt((int) value);
        return this;
    }

    /**
     * Writes eight bytes, any bit pattern.
     *
     * @param value the value
     * @return this writer
     */
    public StateWriter u64(long value) {
        room(8).putLong(value);
        return this;
    }

    /**
     * Writes a flag as one byte, 0 or 1.
     *
     * @param value the flag
     * @return this writer
     */
    public StateWriter bool(boolean value) {
        return u8(value ? 1 : 0);
    }

    /**
     * Writes a byte array preceded by its length as a u32.
     *
     * @param value the bytes
     * @return this writer
     */
    public StateWriter bytes(byte[] value) {
        u32(value.length);
        room(value.length).put(value);
        return this;
    }

    /**
     * Writes a string as UTF-8 bytes preceded by their length.
     *
     * @param value the string
     * @return this writer
     */
    public StateWriter string(String value) {
        return bytes(value.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * The number of bytes written so far.
     *
     * @return the size
     */
    public int size() {
        return buffer.position();
    }

    /**
     * A copy of the bytes written so far.
     *
     * @return the section's payload
     */
    public byte[] toByteArray() {
        return Arrays.copyOf(buffer.array(), buffer.position());
    }
}
