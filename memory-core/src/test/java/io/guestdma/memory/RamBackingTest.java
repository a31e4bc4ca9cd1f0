package io.guestdma.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.memory.internal.Posix;
import io.guestdma.memory.posix.PosixException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RamBackingTest {
    private static final long GIB = 1L << 30;

    /** Resident set size of this process, from the kernel's own accounting. */
    private static long residentBytes() throws IOException {
        Matcher m = Pattern.compile("VmRSS:\\s+(\\d+) kB").matcher(Files.readString(Path.of("/proc/self/status")));
        assertThat(m.find()).as("VmRSS in /proc/self/status").isTrue();
        return Long.parseLong(m.group(1)) * 1024;
    }

    @Test
    void sixteenGibGuestBuildsLazilyAndStaysSmallInMemory() throws IOException {
        long before = residentBytes();
        try (GuestMemory mem = GuestMemory.builder()
                .backing(RamBacking.reserved(16 * GIB))
                .ram("ram", 0, 16 * GIB)
                .build()) {
            // Touch one page in every GiB, and the very last bytes of the guest.
            for (long addr = 0; addr < 16 * GIB; addr += GIB) {
                mem.writeLong(addr + 0x123000, addr);
            }
            mem.writeLong(16 * GIB - 8, 0x1122334455667788L);
            for (long addr = 0; addr < 16 * GIB; addr += GIB) {
                assertThat(mem.readLong(addr + 0x123000)).isEqualTo(addr);
            }
            assertThat(mem.readLong(16 * GIB - 8)).isEqualTo(0x1122334455667788L);
            assertThat(mem.readLong(8 * GIB + 0x800000)).as("untouched RAM reads zero").isZero();
            long grown = residentBytes() - before;
            // 17 touched pages plus the dirty bitmap (4 Mi pages = 512 KiB per client) and JIT noise;
            // committing the guest would add 16 GiB.
            assertThat(grown).as("resident growth after building and touching a 16 GiB guest")
                    .isLessThan(64L << 20);
        }
    }

    @Test
    void reservedAndAnonymousBackingsRoundToPagesAndStartZeroed() {
        try (RamBacking a = RamBacking.anonymous(1); RamBacking r = RamBacking.reserved(Posix.pageSize() + 1)) {
            assertThat(a.size()).isEqualTo(Posix.pageSize());
            assertThat(r.size()).isEqualTo(2 * Posix.pageSize());
            assertThat(a.kind()).isEqualTo(RamBacking.Kind.ANONYMOUS);
            assertThat(r.kind()).isEqualTo(RamBacking.Kind.RESERVED);
            assertThat(a.segment().address() % Posix.pageSize()).as("page aligned").isZero();
            assertThat(r.segment().get(ValueLayout.JAVA_LONG, 8)).isZero();
            assertThat(a.fd()).isEmpty();
            assertThat(a.file()).isNull();
        }
    }

    @Test
    void nonPositiveSizesAreRejected() {
        assertThatThrownBy(() -> RamBacking.anonymous(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> RamBacking.reserved(-4096)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> RamBacking.memfd("x", 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> RamBacking.anonymous(Long.MAX_VALUE)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void closingRevokesTheSegmentAndIsIdempotent() {
        RamBacking backing = RamBacking.anonymous(1 << 16);
        MemorySegment whole = backing.segment();
        MemorySegment slice = whole.asSlice(4096, 16);
        slice.set(ValueLayout.JAVA_INT, 0, 7);
        backing.close();
        backing.close();
        assertThat(backing.isClosed()).isTrue();
        assertThatThrownBy(() -> slice.get(ValueLayout.JAVA_INT, 0)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(backing::segment).isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(backing::adviseHugePages).isInstanceOf(IllegalStateException.class);
    }

    @Test
    @SuppressWarnings("restricted")
    void memfdRamIsVisibleThroughASecondMappingOfItsDescriptor() throws IOException {
        try (RamBacking backing = RamBacking.memfd("guest-ram", 1 << 16)) {
            assertThat(backing.kind()).isEqualTo(RamBacking.Kind.MEMFD);
            int fd = backing.fd().orElseThrow();
            // What a vhost-user back end would do with the descriptor it was passed.
            MemorySegment peer = Posix.mmap(1 << 16, Posix.PROT_READ | Posix.PROT_WRITE, Posix.MAP_SHARED, fd, 0)
                    .reinterpret(1 << 16);
            try {
                backing.segment().set(ValueLayout.JAVA_LONG, 0x2000, 0xfeedfacecafef00dL);
                assertThat(peer.get(ValueLayout.JAVA_LONG, 0x2000)).isEqualTo(0xfeedfacecafef00dL);
                peer.set(ValueLayout.JAVA_BYTE, 0xffff, (byte) 0x5a);
                assertThat(backing.segment().get(ValueLayout.JAVA_BYTE, 0xffff)).isEqualTo((byte) 0x5a);
            } finally {
                Posix.munmap(peer, 1 << 16);
            }
        }
    }

    @Test
    void sharedFileRamLivesInTheFile(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("ram");
        try (GuestMemory mem = GuestMemory.builder()
                .backing(RamBacking.sharedFile(file, 1 << 16))
                .ram("ram", 0, 1 << 16)
                .build()) {
            assertThat(mem.backing().kind()).isEqualTo(RamBacking.Kind.SHARED_FILE);
            assertThat(mem.backing().file()).isEqualTo(file);
            mem.write(0x3000, "shared guest RAM".getBytes(), 0, 16);
            byte[] onDisk = Files.readAllBytes(file);
            assertThat(onDisk).hasSize(1 << 16);
            assertThat(new String(onDisk, 0x3000, 16)).isEqualTo("shared guest RAM");
        }
        // The file outlives the guest, and a new backing over it sees the old bytes.
        try (RamBacking again = RamBacking.sharedFile(file, 1 << 16)) {
            assertThat(again.segment().asSlice(0x3000, 6).toArray(ValueLayout.JAVA_BYTE))
                    .isEqualTo("shared".getBytes());
        }
    }

    @Test
    void sharedFileErrorsNameTheFileAndErrno(@TempDir Path dir) {
        assertThatThrownBy(() -> RamBacking.sharedFile(dir, 4096))
                .isInstanceOf(PosixException.class)
                .hasMessageContaining(dir.toString())
                .hasMessageContaining("EISDIR");
        assertThatThrownBy(() -> RamBacking.sharedFile(dir.resolve("missing/ram"), 4096))
                .isInstanceOf(PosixException.class)
                .hasMessageContaining("ENOENT");
    }

    @Test
    void hugePageAdviceIsAcceptedOrDeclinedWithoutChangingContents() {
        try (RamBacking backing = RamBacking.anonymous(4L << 20)) {
            backing.segment().set(ValueLayout.JAVA_INT, 100, 42);
            backing.adviseHugePages(); // true or false depending on the kernel's THP support
            assertThat(backing.segment().get(ValueLayout.JAVA_INT, 100)).isEqualTo(42);
        } catch (PosixException e) {
            throw new AssertionError(e);
        }
    }
}
