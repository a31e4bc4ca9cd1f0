package io.guestdma.vhostuser;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.block.LocalImage;
import io.guestdma.block.NbdAddress;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code bin/vhost-user-blk}'s program: options, its start line, serving, SIGTERM, one-line errors. */
class VhostUserBlkCommandTest {
    @TempDir
    Path dir;

    @Test
    void options() {
        var o = VhostUserBlkCommand.parse(new String[] {"--socket", "/tmp/s", "--drive",
            "file=/tmp/a.img,format=raw,readonly=on", "--num-queues", "2"});
        assertThat(o.image()).isEqualTo(new LocalImage(Path.of("/tmp/a.img")));
        assertThat(o.readOnly()).isTrue();
        assertThat(o.queues()).isEqualTo(2);
        assertThat(o.pollMaxNanos()).isEqualTo(VhostUserBlkCommand.POLL_MAX_NS_DEFAULT).isEqualTo(200_000);
        assertThat(VhostUserBlkCommand.parse(new String[] {"--socket", "s", "--drive", "file=x", "--poll-max-ns", "0"})
                .pollMaxNanos()).isZero();
        assertThatThrownBy(() -> VhostUserBlkCommand.parse(new String[] {"--socket", "s", "--drive", "file=x",
            "--poll-max-ns", "-1"})).hasMessage("--poll-max-ns must be 0 to 1000000000, was -1");
        assertThatThrownBy(() -> VhostUserBlkCommand.parse(new String[] {"--socket", "s", "--drive", "file=x",
            "--poll-max-ns", "32us"})).hasMessage("--poll-max-ns: '32us' is not a number");
        assertThat(VhostUserBlkCommand.parse(new String[] {"--socket", "s", "--drive", "file=nbd://localhost/disk"})
                .image()).isInstanceOf(NbdAddress.class);
        assertThat(VhostUserBlkCommand.parse(new String[] {"-h"})).isNull();
        assertThatThrownBy(() -> VhostUserBlkCommand.parse(new String[] {"--drive", "file=x"}))
                .hasMessage("--socket is required");
        assertThatThrownBy(() -> VhostUserBlkCommand.parse(new String[] {"--socket", "s", "--drive", "file=x,format=qcow2"}))
                .hasMessageContaining("raw only");
        assertThatThrownBy(() -> VhostUserBlkCommand.parse(new String[] {"--socket", "s", "--drive", "file=x",
            "--num-queues", "0"})).hasMessageContaining("1 to 256");
        assertThatThrownBy(() -> VhostUserBlkCommand.parse(new String[] {"--socket"})).hasMessage("--socket needs a value");
        assertThatThrownBy(() -> VhostUserBlkCommand.parse(new String[] {"--socket", "s", "--drive", "cache=none"}))
                .hasMessageContaining("unknown key 'cache'");
    }

    Process start(String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                VhostUserBlkCommand.class.getName()));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).start();
    }

    @Test
    void servesUntilSigterm_thenRemovesItsSocket() throws Exception {
        Path image = Files.write(dir.resolve("disk.img"), new byte[1 << 20]);
        Path socket = dir.resolve("blk.sock");
        Process p = start("--socket", socket.toString(), "--drive", "file=" + image + ",format=raw");
        try {
            var out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            assertThat(out.readLine()).startsWith("vhost-user-blk: listening on " + socket);
            try (FrontEnd fe = FrontEnd.connect(socket)) {
                assertThat(fe.getU64(Protocol.GET_FEATURES) & Protocol.F_PROTOCOL_FEATURES).isNotZero();
                assertThat(fe.getU64(Protocol.GET_QUEUE_NUM)).isEqualTo(1);
            }
            p.destroy(); // SIGTERM
            assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
            assertThat(p.exitValue()).isEqualTo(143);
            assertThat(socket).doesNotExist();
        } finally {
            p.destroyForcibly().waitFor();
        }
    }

    @Test
    void errorsAreOneLine() throws Exception {
        Process missing = start("--socket", dir.resolve("s").toString(), "--drive", "file=" + dir.resolve("none.img"));
        assertThat(missing.waitFor(20, TimeUnit.SECONDS)).isTrue();
        assertThat(missing.exitValue()).isEqualTo(1);
        String err = new String(missing.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(err.lines()).singleElement().asString().startsWith("vhost-user-blk: ").contains("none.img");

        Process bad = start("--socket", "s", "--bogus", "1");
        assertThat(bad.waitFor(20, TimeUnit.SECONDS)).isTrue();
        assertThat(bad.exitValue()).isEqualTo(2);
        assertThat(new String(bad.getErrorStream().readAllBytes(), StandardCharsets.UTF_8))
                .startsWith("vhost-user-blk: unknown option '--bogus'");
    }
}
