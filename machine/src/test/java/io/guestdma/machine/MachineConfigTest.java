package io.guestdma.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.guestdma.block.LocalImage;
import io.guestdma.block.NbdAddress;
import io.guestdma.ide.DmaMode;
import io.guestdma.block.ErrorPolicy;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class MachineConfigTest {

    private static MachineConfig parse(String... args) {
        return MachineConfig.parse(List.of(args));
    }

    @Test
    void defaultsAreQemus() {
        MachineConfig c = parse();
        assertThat(c.ramBytes()).isEqualTo(128L << 20);
        assertThat(c.drives()).isEmpty();
        assertThat(c.dmaMode()).isEqualTo(DmaMode.MAP);
    }

    @Test
    void netdevsInQemuSyntaxWithDistinctIds() {
        MachineConfig c = parse("-netdev", "socket,id=n0,connect=127.0.0.1:5555", "-netdev", "loopback,id=n1",
                "-device", "virtio-net-pci,netdev=n0");
        assertThat(c.netdevs()).extracting(io.guestdma.net.NetdevSpec::id).containsExactly("n0", "n1");
        assertThatThrownBy(() -> parse("-netdev", "loopback,id=n0", "-netdev", "loopback,id=n0"))
                .hasMessage("-netdev loopback,id=n0: Duplicate ID 'n0' for netdev");
        assertThatThrownBy(() -> parse("-netdev", "socket,id=n0"))
                .hasMessageStartingWith("-netdev socket,id=n0: exactly one of listen= and connect=")
                .hasMessageNotContaining("n0: -netdev");
    }

    @Test
    void ramSizesInQemuSyntax() {
        assertThat(parse("-m", "64M").ramBytes()).isEqualTo(64L << 20);
        assertThat(parse("-m", "64").ramBytes()).as("no suffix means MiB").isEqualTo(64L << 20);
        assertThat(parse("-m", "1G").ramBytes()).isEqualTo(1L << 30);
        assertThat(parse("-m", "size=8192k").ramBytes()).isEqualTo(8L << 20);
        assertThat(parse("-m", "4g").ramBytes()).isEqualTo(4L << 30);
    }

    @Test
    void driveOptions() {
        MachineConfig c = parse("-m", "64M",
                "-drive", "file=/tmp/a.img,format=raw,if=ide,cache=writeback",
                "-drive", "file=/tmp/b,,c.img,index=3,discard=unmap,backend=native,werror=ignore,rerror=report");
        DriveSpec a = c.drives().get(0);
        assertThat(a.image()).isEqualTo(new LocalImage(Path.of("/tmp/a.img")));
        assertThat(a.index()).isZero();
        assertThat(a.backend()).isEqualTo(BackendType.FILE_CHANNEL);
        assertThat(a.discard()).isFalse();
        DriveSpec b = c.drives().get(1);
        assertThat(b.image()).as("',,' is a literal comma").isEqualTo(new LocalImage(Path.of("/tmp/b,c.img")));
        assertThat(b.index()).isEqualTo(3);
        assertThat(b.channel()).isEqualTo(1);
        assertThat(b.unit()).isEqualTo(1);
        assertThat(b.backend()).isEqualTo(BackendType.NATIVE);
        assertThat(b.discard()).isTrue();
        assertThat(b.writePolicy()).isEqualTo(ErrorPolicy.IGNORE);
        assertThat(parse("-drive", "file=x,dma=copy").dmaMode()).isEqualTo(DmaMode.COPY);
        assertThat(parse("-drive", "file=x,index=0", "-drive", "file=y").drives().get(1).index())
                .as("the next free index").isEqualTo(1);
    }

    @Test
    void nbdExportsInQemusSpellings() {
        MachineConfig c = parse("-drive", "file=nbd://127.0.0.1:10810/disk0",
                "-drive", "file=nbd+unix:///disk1?socket=/run/nbd.sock,index=2",
                "-drive", "file=nbd://server/disk2,werror=ignore");
        DriveSpec tcp = c.drives().get(0);
        assertThat(tcp.image()).isEqualTo(new NbdAddress.Tcp("127.0.0.1", 10810, "disk0"));
        assertThat(tcp.backend()).isEqualTo(BackendType.NBD);
        assertThat(c.drives().get(1).image()).isEqualTo(new NbdAddress.Unix(Path.of("/run/nbd.sock"), "disk1"));
        assertThat(c.drives().get(1).index()).isEqualTo(2);
        assertThat(c.drives().get(2).image()).as("the default port")
                .isEqualTo(new NbdAddress.Tcp("server", 10809, "disk2"));
        assertThatThrownBy(() -> new DriveSpec(new LocalImage(Path.of("x")), 0, BackendType.NBD, DmaMode.MAP, false,
                ErrorPolicy.REPORT, ErrorPolicy.REPORT)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("needs an nbd:// location");
    }

    @Test
    void cdromDrives() {
        MachineConfig c = parse("-drive", "file=/tmp/disc.iso,if=ide,media=cdrom,format=raw",
                "-drive", "if=ide,index=3,media=cdrom", "-drive", "file=/tmp/d.img,media=disk");
        assertThat(c.drives().get(0).cdrom()).isTrue();
        assertThat(c.drives().get(0).image()).isEqualTo(new LocalImage(Path.of("/tmp/disc.iso")));
        assertThat(c.drives().get(1).cdrom()).isTrue();
        assertThat(c.drives().get(1).image()).as("an empty CD-ROM drive").isNull();
        assertThat(c.drives().get(1).index()).isEqualTo(3);
        assertThat(c.drives().get(2).cdrom()).isFalse();
        assertBad("media=floppy is not supported (use disk, cdrom)", "-drive", "file=x,media=floppy");
        assertBad("-drive needs file=IMAGE", "-drive", "if=ide,media=disk");
    }

    @Test
    void stopPoliciesAndBlkdebugInQemusSpelling() {
        MachineConfig c = parse("-drive", "file=blkdebug:/tmp/rules.conf:/tmp/a.img,if=ide,werror=stop,rerror=stop",
                "-drive", "file=blkdebug::/tmp/b.img,if=none,id=d1");
        DriveSpec a = c.drives().get(0);
        assertThat(a.writePolicy()).isEqualTo(ErrorPolicy.STOP);
        assertThat(a.readPolicy()).isEqualTo(ErrorPolicy.STOP);
        assertThat(a.blkdebug()).isEqualTo(new DriveSpec.Blkdebug(Path.of("/tmp/rules.conf")));
        assertThat(a.image()).isEqualTo(new LocalImage(Path.of("/tmp/a.img")));
        DriveSpec b = c.drives().get(1);
        assertThat(b.blkdebug()).as("blkdebug:: has no rules file").isEqualTo(new DriveSpec.Blkdebug(null));
        assertThat(b.image()).isEqualTo(new LocalImage(Path.of("/tmp/b.img")));
        assertThat(parse("-drive", "file=/tmp/c.img").drives().get(0).blkdebug()).isNull();
    }

    @Test
    void globals() {
        MachineConfig c = parse("-global", "ide-hd.serial=testdisk", "-global", "ide-hd.ver=version",
                "-global", "ide-cd.model=x=y");
        assertThat(c.globals()).containsEntry("ide-hd.serial", "testdisk").containsEntry("ide-hd.ver", "version")
                .containsEntry("ide-cd.model", "x=y");
        assertBad("-global ide-hd.wwn is not supported", "-global", "ide-hd.wwn=1");
        assertBad("use DRIVER.PROPERTY=VALUE", "-global", "ide-hd.serial");
    }

    @Test
    void badCommandLinesSayWhatIsWrong() {
        assertBad("file=nbd+unix:///x: invalid NBD address", "-drive", "file=nbd+unix:///x");
        assertBad("TLS", "-drive", "file=nbds://host/x");
        assertBad("port must be 1..65535", "-drive", "file=nbd://host:70000/x");
        assertBad("backend=native applies to image files", "-drive", "file=nbd://host/x,backend=native");
        assertBad("unknown argument '-hda'", "-hda", "x.img");
        assertBad("-m needs a value", "-m");
        assertBad("is not a size", "-m", "lots");
        assertBad("at most 4G", "-m", "5G");
        assertBad("multiple of 4K", "-m", "1000B");
        assertBad("needs file=IMAGE", "-drive", "format=raw");
        assertBad("format=qcow2 is not supported", "-drive", "file=x,format=qcow2");
        assertBad("if=virtio is not supported", "-drive", "file=x,if=virtio");
        assertBad("unknown option 'snapshot'", "-drive", "file=x,snapshot=on");
        assertBad("'readonly' is not key=value", "-drive", "file=x,readonly");
        assertBad("index 0 is already in use", "-drive", "file=x", "-drive", "file=y,index=0");
        assertBad("at most 4 IDE drives", "-drive", "file=a", "-drive", "file=b", "-drive", "file=c",
                "-drive", "file=d", "-drive", "file=e");
        assertBad("rerror=enospc is not supported (use report, ignore, stop)", "-drive", "file=x,rerror=enospc");
        assertBad("blkdebug requires both config file and image path", "-drive", "file=blkdebug:x.img");
        assertBad("the image path is empty", "-drive", "file=blkdebug:c:");
        assertBad("same dma= mode", "-drive", "file=x,dma=copy", "-drive", "file=y,dma=map");
        assertBad("backend=io_uring is not supported", "-drive", "file=x,backend=io_uring");
        assertBad("given twice", "-drive", "file=x,file=y");
    }

    private static void assertBad(String message, String... args) {
        assertThatThrownBy(() -> parse(args)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }
}
