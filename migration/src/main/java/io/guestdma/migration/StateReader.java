package io.guestdma.migration;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Reads one device's state section from an untrusted stream. Every read names the field it reads,
 * so a section that ends early or holds a value out of range fails with a
 * {@link MigrationFormatException} saying which section, which field and at which offset.
 */
public final class StateReader {
    private final String section;
    private final ByteBuffer data;

    /**
     * Creates a reader over a section's payload.
     *
     * @param section the section's identifier, for error messages
     * @param payload the bytes; not copied, so do not change them while reading
     */
    public StateReader(String section, byte[] payload) {
        this.section = section;
        this.data = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
    }

    private ByteBuffer need(String field, int bytes) throws MigrationFormatException {
        if (data.remaining() < bytes) {
            throw failure(field, "truncated: needs " + bytes + " bytes, " + data.remaining() + " left");
        }
        return data;
    }

    /**
     * An error about a field, for checks the device makes itself.
     *
     * @param field the field's name
     * @param problem what is wrong with it
     * @return the exception to throw
     */
    public MigrationFormatException failure(String field, String problem) {
        return new MigrationFormatException(
                "section " + section + ", field " + field + " at offset " + data.position() + ": " + problem);
    }

    /**
     * Reads one byte.
     *
     * @param field the field's name, for errors
     * @return 0..255
     * @throws MigrationFormatException if the section ends first
     */
    public int u8(String field) throws MigrationFormatException {
        return Byte.toUnsignedInt(need(field, 1).get());
    }

    /**
     * Reads two bytes.
     *
     * @param field the field's name, for errors
     * @return 0..65535
     * @throws MigrationFormatException if the section ends first
     */
    public int u16(String field) throws MigrationFormatException {
        return Short.toUnsignedInt(need(field, 2).getShort());
    }

    /**
     * Reads four bytes.
     *
     * @param field the field's name, for errors
     * @return 0..2<sup>32</sup>-1
     * @throws MigrationFormatException if the section ends first
     */
    public long u32(String field) throws MigrationFormatException {
        return Integer.toUnsignedLong(need(field, 4).getInt());
    }

    /**
     * Reads eight bytes.
     *
     * @param field the field's name, for errors
     * @return the bit pattern
     * @throws MigrationFormatException if the section ends first
     */
    public long u64(String field) throws MigrationFormatException {
        return need(field, 8).getLong();
    }

    /**
     * Reads a u32 that must lie in a range.
     *
     * @param field the field's name, for errors
     * @param min the smallest accepted value
     * @param max the largest accepted value
     * @return the value
     * @throws MigrationFormatException if the section ends first or the value is out of range
     */
    public long u32InRange(String field, long min, long max) throws MigrationFormatException {
        long value = u32(field);
        if (value < min || value > max) {
            throw failure(field, value + " is outside " + min + ".." + max);
        }
        return value;
    }

    /**
     * Reads a flag written by {@link StateWriter#bool}.
     *
     * @param field the field's name, for errors
     * @return the flag
     * @throws MigrationFormatException if the section ends first or the byte is neither 0 nor 1
     */
    public boolean bool(String field) throws MigrationFormatException {
        int value = u8(field);
        if (value > 1) {
            throw failure(field, "flag is " + value);
        }
        return value == 1;
    }

    /**
     * Reads a length-prefixed byte array.
     *
     * @param field the field's name, for errors
     * @param maxLength the longest array the device accepts
     * @return the bytes
     * @throws MigrationFormatException if the section ends first or the length exceeds the limit
     */
    public byte[] bytes(String field, int maxLength) throws MigrationFormatException {
        int length = (int) u32InRange(field, 0, maxLength);
        byte[] value = new byte[length];
        need(field, length).get(value);
        return value;
    }

    /**
     * Reads a length-prefixed UTF-8 string.
     *
     * @param field the field's name, for errors
     * @param maxBytes the longest encoding the device accepts
     * @return the string
     * @throws MigrationFormatException if the section ends first, the length exceeds the limit or
     *     the bytes are not UTF-8
     */
    public String string(String field, int maxBytes) throws MigrationFormatException {
        byte[] raw = bytes(field, maxBytes);
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(raw))
                    .toString();
        } catch (CharacterCodingException e) {
            throw failure(field, "not UTF-8");
        }
    }

    /**
     * The bytes not read yet.
     *
     * @return the count
     */
    public int remaining() {
        return data.remaining();
    }

    /**
     * Checks that every byte of the section was read, so a section longer than its version's
     * layout is refused rather than half-understood.
     *
     * @throws MigrationFormatException if bytes are left
     */
    public void expectEnd() throws MigrationFormatException {
        if (data.hasRemaining()) {
            throw failure("(end)", data.remaining() + " bytes left after the last field");
        }
    }
}
