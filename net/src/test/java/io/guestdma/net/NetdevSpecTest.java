package io.guestdma.net;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.InetSocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class NetdevSpecTest {
    @TempDir
    Path dir;

    @Test
    void qemusSpellingsParse() {
        NetdevSpec listen = NetdevSpec.parse("socket,id=n0,listen=127.0.0.1:1234");
        assertThat(listen.type()).isEqualTo(NetdevSpec.Type.SOCKET);
        assertThat(listen.server()).isTrue();
        assertThat(listen.address()).isEqualTo(new InetSocketAddress("127.0.0.1", 1234));
        assertThat(NetdevSpec.parse("socket,id=n0,listen=:1234").address()).isEqualTo(new InetSocketAddress(1234));
        NetdevSpec connect = NetdevSpec.parse("socket,connect=localhost:99,id=up");
        assertThat(connect.id()).isEqualTo("up");
        assertThat(connect.server()).isFalse();
        NetdevSpec stream = NetdevSpec.parse("stream,id=s,server=on,addr.type=unix,addr.path=/tmp/a,,b.sock");
        assertThat(stream.address()).as("a doubled comma is a comma").isEqualTo(UnixDomainSocketAddress.of("/tmp/a,b.sock"));
        assertThat(stream.server()).isTrue();
        NetdevSpec inet = NetdevSpec.parse("stream,id=s,addr.type=inet,addr.host=::1,addr.port=5555");
        assertThat(inet.server()).as("QEMU's default").isFalse();
        assertThat(((InetSocketAddress) inet.address()).getPort()).isEqualTo(5555);
        NetdevSpec loop = NetdevSpec.parse("loopback,id=l,loop=off,capture=/tmp/x.pcap");
        assertThat(loop.loop()).isFalse();
        assertThat(loop.capture()).isEqualTo(Path.of("/tmp/x.pcap"));
        assertThat(loop.replay()).isNull();
    }

    @Test
    void badCommandLinesAreRefusedInQemusWords() {
        assertThatThrownBy(() -> NetdevSpec.parse("socket,listen=:1")).hasMessageContaining("Parameter 'id' is missing");
        assertThatThrownBy(() -> NetdevSpec.parse("id=x")).hasMessageContaining("Parameter 'type' is missing");
        assertThatThrownBy(() -> NetdevSpec.parse("bogus,id=x")).hasMessageContaining("does not accept value 'bogus'");
        assertThatThrownBy(() -> NetdevSpec.parse("socket,id=x")).hasMessageContaining("exactly one of listen= and connect=");
        assertThatThrownBy(() -> NetdevSpec.parse("socket,id=x,listen=:1,connect=a:2"))
                .hasMessageContaining("exactly one");
        assertThatThrownBy(() -> NetdevSpec.parse("socket,id=x,listen=:99999")).hasMessageContaining("not a port");
        assertThatThrownBy(() -> NetdevSpec.parse("socket,id=x,connect=:5")).hasMessageContaining("needs a host");
        assertThatThrownBy(() -> NetdevSpec.parse("socket,id=x,mcast=230.0.0.1:1234")).hasMessageContaining("not supported");
        assertThatThrownBy(() -> NetdevSpec.parse("socket,id=x,listen=:1,speed=9")).hasMessageContaining("Invalid parameter 'speed'");
        assertThatThrownBy(() -> NetdevSpec.parse("stream,id=x")).hasMessageContaining("'addr.type' is missing");
        assertThatThrownBy(() -> NetdevSpec.parse("stream,id=x,addr.type=inet,addr.host=a")).hasMessageContaining("'addr.port' is missing");
        assertThatThrownBy(() -> NetdevSpec.parse("stream,id=x,server=maybe,addr.type=unix,addr.path=p"))
                .hasMessageContaining("expects 'on' or 'off'");
        assertThatThrownBy(() -> NetdevSpec.parse("user,id=x")).hasMessageContaining("not supported");
        assertThatThrownBy(() -> NetdevSpec.parse("socket,id=x,id=y,listen=:1")).hasMessageContaining("given twice");
    }

    @Test
    void aLoopbackSpecOpensWithItsCaptureAndReplay() throws Exception {
        Path capture = dir.resolve("c.pcap");
        try (PcapWriter w = PcapWriter.create(dir.resolve("r.pcap"))) {
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                w.write(new io.guestdma.memory.IoVector().add(arena.allocate(60).fill((byte) 5)));
            }
        }
        NetdevSpec spec = NetdevSpec.parse("loopback,id=l,capture=" + capture + ",replay=" + dir.resolve("r.pcap"));
        RxQueue q = new RxQueue();
        try (NetBackend backend = spec.open(q, StreamNetBackendTest.TX_TIMEOUT)) {
            assertThat(StreamNetBackendTest.take(q, 1).get(0)).hasSize(60).containsOnly(5);
            assertThat(capture).exists();
        }
        assertThatThrownBy(() -> NetdevSpec.parse("loopback,id=l,replay=" + dir.resolve("missing.pcap"))
                .open(new RxQueue(), StreamNetBackendTest.TX_TIMEOUT)).isInstanceOf(java.io.IOException.class);
    }
}
