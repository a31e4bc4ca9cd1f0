package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** libqtest's launch options are taken out of the command line; the rest is left for the machine. */
class LaunchOptionsTest {

    @Test
    void libqtestsCommandLine() {
        LaunchOptions o = LaunchOptions.parse(List.of("-qtest", "unix:/tmp/q.sock", "-qtest-log", "/dev/null",
                "-chardev", "socket,path=/tmp/m.sock,id=char0", "-mon", "chardev=char0,mode=control",
                "-display", "none", "-audio", "none", "-machine", "pc,accel=qtest", "-trace", "file=/tmp/t",
                "-accel", "qtest", "-m", "64M", "-drive", "file=a.img,format=raw", "-nodefaults"));
        assertThat(o.qtestSocket()).isEqualTo(Path.of("/tmp/q.sock"));
        assertThat(o.qtestLog()).isNull();
        assertThat(o.monitorSocket()).isEqualTo(Path.of("/tmp/m.sock"));
        assertThat(o.machineArgs()).containsExactly("-m", "64M", "-drive", "file=a.img,format=raw");
    }

    @Test
    void stdioAndNoMonitorByDefault() {
        LaunchOptions o = LaunchOptions.parse(List.of("-qtest", "stdio", "-qtest-log", "/tmp/log", "-M", "pc"));
        assertThat(o.qtestSocket()).isNull();
        assertThat(o.qtestLog()).isEqualTo(Path.of("/tmp/log"));
        assertThat(o.monitorSocket()).isNull();
        assertThat(o.machineArgs()).isEmpty();
    }

    @Test
    void incomingNamesWhereTheMigrationArrives() {
        assertThat(LaunchOptions.parse(List.of("-m", "16M")).incoming()).isNull();
        assertThat(LaunchOptions.parse(List.of("-incoming", "tcp:127.0.0.1:4444", "-m", "16M")).incoming())
                .isEqualTo(new io.guestdma.migration.MigrationUri.Tcp("127.0.0.1", 4444));
        assertThat(LaunchOptions.parse(List.of("-incoming", "unix:/tmp/m.sock")).incoming())
                .isEqualTo(new io.guestdma.migration.MigrationUri.Unix(Path.of("/tmp/m.sock")));
        assertThat(LaunchOptions.parse(List.of("-incoming", "file:/tmp/snap")).incoming())
                .isEqualTo(new io.guestdma.migration.MigrationUri.File(Path.of("/tmp/snap")));
        assertBad("-incoming defer: migration URI 'defer' has no scheme", "-incoming", "defer");
        assertBad("-incoming exec:cat", "-incoming", "exec:cat");
        assertBad("option -incoming needs a value", "-incoming");
    }

    @Test
    void whatThisMachineIsNotIsRefused() {
        assertBad("-machine q35 is not supported", "-machine", "q35");
        assertBad("-machine accel kvm is not supported", "-machine", "pc,accel=kvm");
        assertBad("-accel kvm is not supported", "-accel", "kvm");
        assertBad("-display gtk is not supported", "-display", "gtk");
        assertBad("-qtest tcp:1234: use stdio or unix:PATH", "-qtest", "tcp:1234");
        assertBad("only mode=control", "-chardev", "socket,path=/x,id=c", "-mon", "chardev=c");
        assertBad("no -chardev with id=other", "-mon", "chardev=other,mode=control");
        assertBad("only socket,path=P,id=ID", "-chardev", "pty,id=c");
        assertBad("needs path= and id=", "-chardev", "socket,id=c");
        assertBad("option -qtest needs a value", "-qtest");
    }

    private static void assertBad(String message, String... args) {
        assertThatThrownBy(() -> LaunchOptions.parse(List.of(args)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(message);
    }
}
