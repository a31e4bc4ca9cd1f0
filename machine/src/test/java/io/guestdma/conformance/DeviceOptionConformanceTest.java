package io.guestdma.conformance;

import static org.assertj.core.api.Assertions.assertThat;

import io.guestdma.machine.QtestMachine;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Bad {@code -drive}, {@code -blockdev} and {@code -device} options: QEMU 7.2 and
 * bin/qtest-machine refuse the same command lines with the same message and a nonzero status.
 * The message is compared after each program's name ("qemu-system-x86_64: ", "qtest-machine: ").
 */
class DeviceOptionConformanceTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {
        "-device foo",
        "-device ide-hd",
        "-device ide-hd,drive=x",
        "-drive if=none,id=d0,file=IMG,format=raw -device ide-hd,drive=d0 -device ide-hd,drive=d0",
        "-drive if=none,id=d0,file=IMG,format=raw -device ide-cd,drive=d0,bus=ide.1,unit=1 -device ide-hd,drive=d0",
        "-drive if=none,id=d0,file=IMG,format=raw -device ide-hd,drive=d0,bus=ide.5",
        "-drive if=none,id=d0,file=IMG,format=raw -device ide-hd,drive=d0,bus=ide.0,unit=2",
        "-drive if=none,id=d0,file=IMG,format=raw -drive if=none,id=d1,file=IMG2,format=raw "
                + "-device ide-hd,drive=d0,bus=ide.0,unit=0 -device ide-hd,drive=d1,bus=ide.0,unit=0",
        "-device ide-hd,drive=d0,foo=1 -drive if=none,id=d0,file=IMG,format=raw",
        "-device ide-cd,bus=ide.0,unit=x",
        "-device ide-cd,bus=ide.0 -device ide-cd,bus=ide.0 -device ide-cd,bus=ide.0",
        "-drive if=ide,file=IMG,format=raw -device ide-hd,drive=ide0-hd0",
        "-drive file=IMG,format=raw -drive if=none,id=d0,file=IMG2,format=raw -device ide-hd,drive=d0,bus=ide.0,unit=0",
        "-blockdev driver=file,node-name=n0,filename=IMG,foo=1",
        "-blockdev driver=file,filename=IMG",
        "-blockdev driver=file,node-name=n0",
        "-blockdev driver=raw,node-name=n1,file=n0",
        "-blockdev driver=file,node-name=n0,filename=IMG -blockdev driver=file,node-name=n0,filename=IMG2",
        "-drive if=none,id=n0,file=IMG,format=raw -blockdev driver=file,node-name=n0,filename=IMG2",
        "-drive if=none,id=d0,file=IMG,format=raw -drive if=none,id=d0,file=IMG2,format=raw",
        "-device virtio-blk-pci",
        "-device virtio-blk-pci,drive=x",
        "-drive if=none,id=d0,file=IMG,format=raw -device virtio-blk-pci,drive=d0,addr=04.0 "
                + "-device virtio-blk-pci,drive=d0,addr=05.0",
        "-drive if=none,id=d0,file=IMG,format=raw -drive if=none,id=d1,file=IMG2,format=raw "
                + "-device virtio-blk-pci,drive=d0,addr=04.0 -device virtio-blk-pci,drive=d1,addr=04.0",
        "-drive if=none,id=d0,file=IMG,format=raw -device virtio-blk-pci,drive=d0,addr=01.0",
        "-drive if=none,id=d0,file=IMG,format=raw -device virtio-blk-pci,drive=d0,addr=zz",
        "-drive if=none,id=d0,file=IMG,format=raw -device virtio-blk-pci,drive=d0,queue-size=100",
        "-drive if=none,id=d0,file=IMG,format=raw -device virtio-blk-pci,drive=d0,queue-size=2",
        "-drive if=none,id=d0,file=IMG,format=raw -device virtio-blk-pci,drive=d0,num-queues=0",
        "-drive if=none,id=d0,file=IMG,format=raw -device virtio-blk-pci,drive=d0,foo=1",
    })
    void refusedAlikeWithQemusMessage(String options) throws Exception {
        QemuTarget qemu = QemuTarget.require();
        Path image = Files.write(dir.resolve("a.img"), new byte[1 << 20]);
        Path image2 = Files.write(dir.resolve("b.img"), new byte[1 << 20]);
        List<String> args = new ArrayList<>();
        for (String a : options.split(" ")) {
            args.add(a.replace("IMG2", image2.toString()).replace("IMG", image.toString()));
        }

        List<String> command = new ArrayList<>(qemu.baseCommand());
        command.addAll(args);
        Path stderr = dir.resolve("qemu.err");
        Process process = new ProcessBuilder(command).redirectError(stderr.toFile()).start();
        process.getOutputStream().close();
        if (!process.waitFor(20, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor();
            throw new AssertionError("QEMU accepted " + options);
        }
        String qemuMessage = firstLine(Files.readString(stderr), "qemu-system-x86_64: ");

        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = QtestMachine.run(args.toArray(String[]::new), new ByteArrayInputStream(new byte[0]),
                new ByteArrayOutputStream(), new PrintStream(err, true, StandardCharsets.UTF_8));
        String ours = firstLine(err.toString(StandardCharsets.UTF_8), "qtest-machine: ");

        assertThat(process.exitValue()).as("QEMU's status").isNotZero();
        assertThat(status).as("our status").isNotZero();
        assertThat(ours).isEqualTo(qemuMessage);
    }

    private static String firstLine(String text, String program) throws IOException {
        for (String line : text.split("\n")) {
            if (line.startsWith(program)) {
                return line.substring(program.length()).strip();
            }
        }
        throw new IOException("no message from " + program + "in: " + text);
    }
}
