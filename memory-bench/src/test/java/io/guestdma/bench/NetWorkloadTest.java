package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The benchmarked frames really reach the guest's buffers whole, on both paths: no no-op is timed. */
class NetWorkloadTest {

    @ParameterizedTest
    @CsvSource({"64,2048,false", "64,65536,false", "9000,4096,false", "9000,4096,true"})
    void receivedFramesLandWholeWithTheirHeader(int frameBytes, int bufferBytes, boolean copy) {
        try (NetWorkload net = new NetWorkload(frameBytes, bufferBytes, copy, false)) {
            for (int i = 0; i < 300; i++) { // past the end of the 256-entry ring
                int usedIdx = net.receive();
                byte[] guest = net.received(usedIdx);
                int buffers = (frameBytes + 12 + bufferBytes - 1) / bufferBytes;
                assertThat(guest).hasSize(12 + frameBytes);
                assertThat(Arrays.copyOfRange(guest, 0, 10)).as("no offload: a zero header").containsOnly(0);
                assertThat((guest[10] & 0xff) | (guest[11] & 0xff) << 8).as("num_buffers").isEqualTo(buffers);
                assertThat(Arrays.copyOfRange(guest, 12, guest.length)).isEqualTo(net.frameBytes());
            }
            assertThat(net.device().rxFrames()).isEqualTo(300);
            assertThat(net.device().rxDropped()).isZero();
        }
    }

    @ParameterizedTest
    @CsvSource({"false", "true"})
    void transmittedFramesComeBackThroughTheLoopback(boolean copy) {
        try (NetWorkload net = new NetWorkload(1514, 2048, copy, true)) {
            for (int i = 0; i < 300; i++) {
                byte[] guest = net.received(net.transmitAndReceive());
                assertThat(Arrays.copyOfRange(guest, 12, guest.length)).isEqualTo(net.frameBytes());
            }
            assertThat(net.device().txFrames()).isEqualTo(300);
            assertThat(net.device().rxFrames()).isEqualTo(300);
        }
    }
}
