package io.guestdma.block;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** QEMU's NBD spellings are read as QEMU reads them, and everything else gets a clear error. */
class NbdAddressTest {
    @Test
    void tcpUrisWithAndWithoutPortAndExport() {
        assertThat(NbdAddress.parse("nbd://example.org:1234/disk0"))
                .isEqualTo(new NbdAddress.Tcp("example.org", 1234, "disk0"));
        assertThat(NbdAddress.parse("nbd://example.org/disk0"))
                .isEqualTo(new NbdAddress.Tcp("example.org", NbdAddress.DEFAULT_PORT, "disk0"));
        assertThat(NbdAddress.parse("nbd://10.0.0.1")).isEqualTo(new NbdAddress.Tcp("10.0.0.1", 10809, ""));
        assertThat(NbdAddress.parse("nbd://10.0.0.1/")).isEqualTo(new NbdAddress.Tcp("10.0.0.1", 10809, ""));
        assertThat(NbdAddress.parse("nbd+tcp://[::1]:5000/a%20b"))
                .as("IPv6 literal and a percent-encoded export name")
                .isEqualTo(new NbdAddress.Tcp("::1", 5000, "a b"));
        assertThat(NbdAddress.parse("NBD://host/x/y")).isEqualTo(new NbdAddress.Tcp("host", 10809, "x/y"));
    }

    @Test
    void unixUris() {
        assertThat(NbdAddress.parse("nbd+unix:///disk0?socket=/run/nbd.sock"))
                .isEqualTo(new NbdAddress.Unix(Path.of("/run/nbd.sock"), "disk0"));
        assertThat(NbdAddress.parse("nbd+unix:///?socket=/tmp/s"))
                .isEqualTo(new NbdAddress.Unix(Path.of("/tmp/s"), ""));
        assertThat(NbdAddress.parse("nbd+unix://?socket=rel.sock"))
                .isEqualTo(new NbdAddress.Unix(Path.of("rel.sock"), ""));
    }

    @Test
    void qemusOlderColonSyntax() {
        assertThat(NbdAddress.parse("nbd:localhost:10810")).isEqualTo(new NbdAddress.Tcp("localhost", 10810, ""));
        assertThat(NbdAddress.parse("nbd:localhost:10810:exportname=disk"))
                .isEqualTo(new NbdAddress.Tcp("localhost", 10810, "disk"));
        assertThat(NbdAddress.parse("nbd:unix:/tmp/nbd.sock:exportname=disk"))
                .isEqualTo(new NbdAddress.Unix(Path.of("/tmp/nbd.sock"), "disk"));
    }

    @Test
    void toStringIsAUriThatParsesBack() {
        for (String uri : new String[] {"nbd://example.org:1234/disk0", "nbd+unix:///disk0?socket=/run/nbd.sock",
                "nbd://[::1]:5000/a%20b", "nbd+unix:///?socket=/tmp/s"}) {
            NbdAddress a = NbdAddress.parse(uri);
            assertThat(NbdAddress.parse(a.toString())).as(uri).isEqualTo(a);
        }
        assertThat(new NbdAddress.Tcp("h", 10809, "e").toString()).isEqualTo("nbd://h:10809/e");
        assertThat(new NbdAddress.Unix(Path.of("/s"), "e").toString()).isEqualTo("nbd+unix:///e?socket=/s");
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "nbds://host/x                        | TLS",
        "nbd+tls://host/x                     | unknown scheme",
        "nbd+unix:///x                        | needs ?socket=PATH",
        "nbd+unix:///x?socket=                | needs ?socket=PATH",
        "nbd+unix://host/x?socket=/s          | takes no host",
        "nbd+unix:///x?socket=/s&foo=1        | only the socket= parameter",
        "nbd://host/x?socket=/s               | takes no parameters",
        "nbd:///x                             | a host is required",
        "nbd://host:0/x                       | 1..65535",
        "nbd://host:99999/x                   | 1..65535",
        "nbd://user@host/x                    | user information",
        "nbd://host/x#frag                    | fragment",
        "nbd://host name/x                    | Illegal character",
        "nbd://bad_host:10809/x               | not a valid host",
        "nbd:host                             | expected nbd:HOST:PORT",
        "nbd:host:port                        | not a port number",
        "nbd:unix:                            | needs a socket path",
    })
    void badAddressesAreRefusedWithTheReason(String uri, String reason) {
        assertThatThrownBy(() -> NbdAddress.parse(uri))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("invalid NBD address '" + uri + "'")
                .hasMessageContaining(reason);
    }

    @Test
    void exportNamesAreBoundedAndNulFree() {
        assertThatThrownBy(() -> new NbdAddress.Tcp("h", 1, "a\0b")).hasMessageContaining("NUL");
        assertThatThrownBy(() -> NbdAddress.parse("nbd://h/" + "x".repeat(4097))).hasMessageContaining("4096");
        assertThatThrownBy(() -> new NbdAddress.Tcp("", 1, "")).hasMessageContaining("needs a host");
    }

    @Test
    void imageLocationsTellFilesFromNbd() {
        assertThat(ImageLocation.parse("/tmp/disk.img")).isEqualTo(new LocalImage(Path.of("/tmp/disk.img")));
        assertThat(ImageLocation.parse("disk.img")).isInstanceOf(LocalImage.class);
        assertThat(ImageLocation.parse("nbd://h/e")).isEqualTo(new NbdAddress.Tcp("h", 10809, "e"));
        assertThat(ImageLocation.parse("nbd+unix:///e?socket=/s")).isInstanceOf(NbdAddress.Unix.class);
        assertThatThrownBy(() -> ImageLocation.parse("")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ImageLocation.parse("nbds://h/e")).hasMessageContaining("TLS");
        assertThatThrownBy(() -> ImageLocation.parse("a\0b")).hasMessageContaining("not a valid image path");
    }
}
