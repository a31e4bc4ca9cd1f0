package io.guestdma.memory;

import static io.guestdma.memory.DmaDirection.FROM_DEVICE;
import static io.guestdma.memory.DmaDirection.TO_DEVICE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

/**
 * The deadlock Ian Jackson and Anthony Liguori describe in the 2009 review: one bounce page, and a
 * packet that spans RAM and two MMIO pages. A device that maps piece by piece and waits for bounce
 * space while holding the first MMIO page waits forever. DmaPacket releases everything and falls
 * back to the copy path, delivering the packet whole.
 */
class DmaPacketTest {

    @Test
    void packetSpanningRamAndTwoMmioPagesCompletesWithOneBouncePage() {
        RecordingDevice nicRing = new RecordingDevice(0x2000, 1, 8);
        for (int i = 0; i < 0x2000; i++) {
            nicRing.registers[i] = (byte) (i * 7);
        }
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x10000).mmio("mmio", 0x10000, 0x2000, nicRing)
                .bouncePoolBytes(4096).build()) {
            for (int i = 0; i < 0x800; i++) {
                mem.writeByte(0x8000 + i, (byte) 0x11);
            }
            SgList packet = new SgList().add(0x8000, 0x800).add(0x10000, 0x1000).add(0x11000, 0x1000);
            DmaPacket dma = new DmaPacket(mem);
            IoVector iov = dma.map(packet, TO_DEVICE);
            assertThat(dma.usedFallback()).isTrue();
            assertThat(iov.size()).as("the whole packet, one message").isEqualTo(0x2800);
            assertThat(mem.bouncePool().bytesInFlight()).as("no bounce space held").isZero();
            byte[] bytes = iov.toByteArray();
            assertThat(bytes[0x7ff]).isEqualTo((byte) 0x11);
            for (int i = 0; i < 0x2000; i++) {
                assertThat(bytes[0x800 + i]).isEqualTo((byte) (i * 7));
            }
            dma.complete(0x2800);
            assertThat(mem.liveMappings()).isZero();
        }
    }

    @Test
    void receivedPacketThroughTheFallbackReachesGuestMemoryUpToAccessLen() {
        RecordingDevice mmio = new RecordingDevice(0x2000, 4, 4);
        try (GuestMemory mem = GuestMemory.builder().ram("ram", 0, 0x10000).mmio("mmio", 0x10000, 0x2000, mmio).build()) {
            SgList packet = new SgList().add(0x100, 0x100).add(0x10000, 0x2000);
            DmaPacket dma = new DmaPacket(mem, Arena.ofAuto().allocate(0x4000));
            IoVector iov = dma.map(packet, FROM_DEVICE);
            assertThat(dma.usedFallback()).isTrue();
            iov.fill(0, (byte) 0x42, iov.size());
            dma.complete(0x1100); // RAM part and 0x1000 of the MMIO part
            assertThat(mem.readByte(0x1ff)).isEqualTo((byte) 0x42);
            assertThat(mmio.registers[0xfff]).isEqualTo((byte) 0x42);
            assertThat(mmio.registers[0x1000]).isZero();
        }
    }

    @Test
    void packetThatFitsIsMappedZeroCopy() {
        try (GuestMemory mem = GuestMemory.ofRam(0x10000)) {
            DmaPacket dma = new DmaPacket(mem);
            IoVector iov = dma.map(new SgList().add(0, 0x100).add(0x1000, 0x100), FROM_DEVICE);
            assertThat(dma.usedFallback()).isFalse();
            assertThat(iov.count()).isEqualTo(2);
            iov.fill(0, (byte) 9, 0x200);
            assertThatThrownBy(() -> dma.map(new SgList(), TO_DEVICE)).isInstanceOf(IllegalStateException.class);
            dma.complete(0x200);
            assertThat(mem.readByte(0x10ff)).isEqualTo((byte) 9);
            assertThat(mem.liveMappings()).isZero();
        }
    }

    @Test
    void aCallerSuppliedFallbackThatIsTooSmallIsReported() {
        RecordingDevice mmio = new RecordingDevice(0x4000, 1, 8);
        try (GuestMemory mem = GuestMemory.builder().mmio("mmio", 0x10000, 0x4000, mmio).build()) {
            DmaPacket dma = new DmaPacket(mem, Arena.ofAuto().allocate(0x100));
            assertThatThrownBy(() -> dma.map(new SgList().add(0x10000, 0x2000), TO_DEVICE))
                    .isInstanceOf(DmaAccessException.class).hasMessageContaining("fallback");
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
        }
    }
}
