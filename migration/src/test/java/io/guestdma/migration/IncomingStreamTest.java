package io.guestdma.migration;

import io.guestdma.memory.GuestMemory;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.CRC32C;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

/**
 * The destination never trusts the stream: hand-made streams break one rule each, and a fuzzer
 * mutates a real stream (recorded from a migration under load) every way a network or a hostile
 * source could: flipped bytes, cut, deleted, repeated and swapped ranges, stray words.
 */
class IncomingStreamTest {
    private static byte[] real;

    /** The recorded stream, made once for the whole class (jqwik and Jupiter share it). */
    private static synchronized byte[] real() throws Exception {
        if (real == null) {
            Path dir = Files.createTempDirectory("incoming-fuzz");
            try (GuestMemory source = Machines.memory()) {
                Path file = Machines.snapshot(dir, source, 42);
                real = Files.readAllBytes(file);
                Files.delete(file);
            } finally {
                Files.delete(dir);
            }
        }
        return real;
    }

    /** Loads a stream into a fresh destination; returns the devices on success. */
    private static List<DeviceState> load(byte[] stream) throws Exception {
        List<DeviceState> devices = Machines.devices(0);
        try (GuestMemory memory = Machines.memory()) {
            IncomingMigration.load(Channels.newChannel(new java.io.ByteArrayInputStream(stream)), memory, devices);
        }
        return devices;
    }

    @Test
    void theRealStreamLoads() throws Exception {
        List<DeviceState> devices = load(real());
        assertThat(((Counter) devices.get(0)).value).isEqualTo(42);
    }

    /** A stream written field by field, to break one rule at a time. */
    private static final class Stream {
        final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Stream bytes(byte[] b) {
            out.writeBytes(b);
            return this;
        }

        Stream u32(long v) {
            return bytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) v).array());
        }

        Stream u64(long v) {
            return bytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
        }

        Stream header(int version, long lowSize) {
            ByteArrayOutputStream h = new ByteArrayOutputStream();
            Stream s = new Stream();
            s.bytes("GDMIGRAT".getBytes(StandardCharsets.US_ASCII)).u32(version).u32(4096).u32(2);
            s.bytes(new byte[] {3}).bytes("ram".getBytes(StandardCharsets.US_ASCII)).u64(lowSize);
            s.bytes(new byte[] {5}).bytes("dimm0".getBytes(StandardCharsets.US_ASCII)).u64(Machines.DIMM);
            byte[] body = s.out.toByteArray();
            CRC32C crc = new CRC32C();
            crc.update(body);
            h.writeBytes(body);
            bytes(h.toByteArray());
            return u32(crc.getValue());
        }

        Stream record(int type, int flags, int block, long value) {
            return u64(type | (long) flags << 8 | (long) block << 16 | value << 32);
        }

        Stream page(int block, long page) {
            return record(1, 0, block, page).bytes(new byte[4096]);
        }

        Stream section(String id, int version, byte[] payload, boolean corrupt) {
            byte[] rawId = id.getBytes(StandardCharsets.UTF_8);
            CRC32C crc = new CRC32C();
            crc.update(rawId);
            crc.update(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(0, version));
            crc.update(payload);
            record(3, rawId.length, 0, payload.length).bytes(rawId).u32(version).u32(crc.getValue() ^ (corrupt ? 1 : 0));
            return bytes(payload);
        }

        Stream counter(String id, long value) {
            return section(id, 2, new StateWriter().u64(value).string("x").toByteArray(), false);
        }

        Stream valid() {
            return header(1, Machines.LOW).record(2, 0, 0, 1).page(0, 0);
        }

        byte[] end() {
            record(4, 0, 0, 0);
            return out.toByteArray();
        }
    }

    private static void refused(byte[] stream, String message) {
        assertThatThrownBy(() -> load(stream)).isInstanceOf(MigrationFormatException.class)
                .hasMessageContaining(message);
    }

    @Test
    void aHandMadeValidStreamLoads() throws Exception {
        List<DeviceState> devices = load(new Stream().valid().counter("piix-ide", 5).counter("virtio-blk@00:04.0", 6).end());
        assertThat(((Counter) devices.get(1)).value).isEqualTo(6);
    }

    @Test
    void everyRuleIsEnforced() {
        refused(new Stream().header(2, Machines.LOW).end(), "unknown stream version 2");
        refused(new Stream().header(1, Machines.LOW * 2).end(), "RAM region 'ram' of 2097152 bytes");
        refused(new Stream().bytes("NOTMIGR!".getBytes(StandardCharsets.US_ASCII)).end(), "bad magic");
        refused(new Stream().valid().page(0, Machines.LOW / 4096).end(), "outside RAM region ram");
        refused(new Stream().valid().page(2, 0).end(), "RAM block 2");
        refused(new Stream().valid().record(1, 0x80, 0, 0).end(), "unknown flags");
        refused(new Stream().valid().record(9, 0, 0, 0).end(), "unknown record type 0x9");
        refused(new Stream().valid().counter("piix-ide", 1).counter("nic", 1).end(), "unknown device section 'nic'");
        refused(new Stream().valid().counter("virtio-blk@00:04.0", 1).counter("piix-ide", 1).end(), "out of order");
        refused(new Stream().valid().counter("piix-ide", 1).counter("piix-ide", 1).end(), "out of order");
        refused(new Stream().valid().counter("piix-ide", 1).end(), "without the section of device virtio-blk");
        refused(new Stream().valid().counter("piix-ide", 1).page(0, 1).end(), "RAM page after a device section");
        refused(new Stream().valid().section("piix-ide", 3, new byte[16], false).end(), "has version 3");
        refused(new Stream().valid().section("piix-ide", 2, new StateWriter().u64(1).string("x").toByteArray(), true)
                .end(), "CRC32C mismatch");
        refused(new Stream().valid().record(3, 8, 0, 1L << 31).end(), "more than the");
        refused(new Stream().valid().counter("piix-ide", 1)
                .section("virtio-blk@00:04.0", 2, new StateWriter().u64(1).string("x").u8(0).toByteArray(), false)
                .end(), "bytes left after the last field");
        refused(new Stream().header(1, Machines.LOW).counter("piix-ide", 1).counter("virtio-blk@00:04.0", 1).end(),
                "before any pass");
        byte[] whole = new Stream().valid().counter("piix-ide", 1).counter("virtio-blk@00:04.0", 1).end();
        refused(java.util.Arrays.copyOf(whole, whole.length - 1), "truncated");
    }

    @Property(tries = 400)
    void aMutatedStreamIsRefusedCleanlyOrLoadsCompletely(@ForAll("mutations") byte[] stream) throws Exception {
        Throwable thrown = catchThrowable(() -> {
            List<DeviceState> devices = load(stream);
            for (DeviceState d : devices) {
                assertThat(((Counter) d).loads).isEqualTo(1);
            }
        });
        if (thrown != null) {
            assertThat(thrown).isInstanceOfAny(MigrationFormatException.class, IOException.class);
            assertThat(thrown.getMessage()).isNotBlank();
        }
    }

    @Provide
    Arbitrary<byte[]> mutations() throws Exception {
        byte[] real = real();
        Arbitrary<Integer> kind = Arbitraries.integers().between(0, 5);
        // Half the offsets land in the header or the tail, where the records that are not page bytes are.
        Arbitrary<Integer> offset = Arbitraries.oneOf(
                Arbitraries.integers().between(0, real.length - 1),
                Arbitraries.integers().between(0, Math.min(120, real.length - 1)),
                Arbitraries.integers().between(Math.max(0, real.length - 200), real.length - 1));
        Arbitrary<Integer> length = Arbitraries.integers().between(1, 9000);
        Arbitrary<Long> word = Arbitraries.longs();
        return Combinators.combine(kind, offset, offset, length, word)
                .as((k, at, other, n, w) -> mutate(real, k, at, other, n, w));
    }

    private static byte[] mutate(byte[] real, int kind, int at, int other, int length, long word) {
        byte[] s = real.clone();
        int len = Math.min(length, s.length - at);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        switch (kind) {
            case 0 -> s[at] ^= (byte) (1 | word);
            case 1 -> {
                return java.util.Arrays.copyOf(s, at);
            }
            case 2 -> {
                out.write(s, 0, at);
                out.write(s, at + len, s.length - at - len);
                return out.toByteArray();
            }
            case 3 -> {
                out.write(s, 0, at + len);
                out.write(s, at, len);
                out.write(s, at + len, s.length - at - len);
                return out.toByteArray();
            }
            case 4 -> {
                int a = Math.min(at, other);
                int b = Math.max(at, other);
                int n = Math.min(Math.min(len, b - a), s.length - b);
                byte[] first = java.util.Arrays.copyOfRange(s, a, a + n);
                System.arraycopy(s, b, s, a, n);
                System.arraycopy(first, 0, s, b, n);
            }
            default -> {
                for (int i = 0; i < 8 && at + i < s.length; i++) {
                    s[at + i] = (byte) (word >>> (8 * i));
                }
            }
        }
        return s;
    }
}
