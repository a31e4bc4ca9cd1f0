package io.guestdma.memory;

import static io.guestdma.memory.DmaDirection.FROM_DEVICE;
import static io.guestdma.memory.DmaDirection.TO_DEVICE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class DmaDebugTest {

    private static GuestMemory debugMemory(RecordingDevice dev) {
        return GuestMemory.builder().ram("ram", 0, 0x10000).mmio("dev", 0x100000, 0x1000, dev).debug(true).build();
    }

    @Test
    void accessAfterUnmapThrowsInDebugMode() {
        try (GuestMemory mem = debugMemory(new RecordingDevice(0x1000, 1, 8))) {
            assertThat(mem.isDebug()).isTrue();
            DmaMapping ram = (DmaMapping) mem.map(0x100, 0x100, FROM_DEVICE);
            ram.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 1);
            mem.unmap(ram, 1);
            assertThatThrownBy(() -> ram.segment().set(ValueLayout.JAVA_BYTE, 0, (byte) 2))
                    .isInstanceOf(IllegalStateException.class);
            assertThat(mem.readByte(0x100)).isEqualTo((byte) 1);
            DmaMapping bounce = (DmaMapping) mem.map(0x100000, 0x10, TO_DEVICE);
            mem.unmap(bounce, 0x10);
            assertThatThrownBy(() -> bounce.segment().get(ValueLayout.JAVA_BYTE, 0))
                    .isInstanceOf(IllegalStateException.class);
        }
    }

    @Test
    void withoutDebugModeTheSegmentIsPlainGuestMemory() {
        try (GuestMemory mem = GuestMemory.ofRam(0x1000)) {
            assertThat(mem.isDebug()).isFalse();
            DmaMapping m = (DmaMapping) mem.map(0, 0x10, FROM_DEVICE);
            mem.unmap(m, 0);
            m.segment().get(ValueLayout.JAVA_BYTE, 0); // not revoked: only debug mode catches this
        }
    }

    @Test
    void leakedMappingsAreReportedWithTheStackThatCreatedThem() {
        try (GuestMemory mem = debugMemory(new RecordingDevice(0x1000, 1, 8))) {
            DmaMapping leaked = (DmaMapping) mem.map(0x2000, 0x40, TO_DEVICE);
            assertThatThrownBy(mem::checkNoOutstandingMappings)
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("1 DMA mapping(s) never unmapped")
                    .hasMessageContaining("0x2000 +0x40")
                    .hasMessageContaining("leakedMappingsAreReportedWithTheStackThatCreatedThem");
            mem.unmap(leaked, 0);
            mem.checkNoOutstandingMappings();
        }
    }

    @Test
    void aDeviceThatWritesPastItsAccessLengthIsCaught() {
        RecordingDevice dev = new RecordingDevice(0x1000, 1, 8);
        try (GuestMemory mem = debugMemory(dev)) {
            DmaMapping m = (DmaMapping) mem.map(0x100000, 0x100, FROM_DEVICE);
            m.segment().asSlice(0, 0x20).fill((byte) 0);
            assertThatThrownBy(() -> mem.unmap(m, 0x10))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("past its access length").hasMessageContaining("offset 16")
                    .hasMessageContaining("0x100000 +0x100");
            assertThat(m.isUnmapped()).as("the unmap itself completed").isTrue();
            assertThat(mem.bouncePool().bytesInFlight()).isZero();
        }
    }

    @Test
    void aDeviceThatClaimsBytesItNeverWroteIsCaught() {
        try (GuestMemory mem = debugMemory(new RecordingDevice(0x1000, 1, 8))) {
            DmaMapping m = (DmaMapping) mem.map(0x100000, 0x100, FROM_DEVICE);
            m.segment().asSlice(0, 0x40).fill((byte) 7);
            assertThatThrownBy(() -> mem.unmap(m, 0x100))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("never written").hasMessageContaining("offset 64");
        }
    }

    @Test
    void anHonestDeviceIsNotFlagged() {
        try (GuestMemory mem = debugMemory(new RecordingDevice(0x1000, 1, 8))) {
            DmaMapping m = (DmaMapping) mem.map(0x100000, 0x101, FROM_DEVICE);
            m.segment().asSlice(0, 0x43).fill((byte) 0);
            mem.unmap(m, 0x43);
            mem.checkNoOutstandingMappings();
        }
    }

    @Test
    void aWriteOneBytePastTheAccessLengthInsideAWordIsCaught() {
        try (GuestMemory mem = debugMemory(new RecordingDevice(0x1000, 1, 8))) {
            DmaMapping m = (DmaMapping) mem.map(0x100000, 0x100, FROM_DEVICE);
            m.segment().asSlice(0, 0x44).fill((byte) 0);
            assertThatThrownBy(() -> mem.unmap(m, 0x43)).hasMessageContaining("offset 67");
        }
    }
}
