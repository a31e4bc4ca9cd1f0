#!/usr/bin/env bash
# The vhost-user guest tests boot a real Linux guest under QEMU (TCG) whose virtio-blk driver does
# its I/O through our back end. They need Debian's kernel (linux-image-amd64: vmlinuz and the
# virtio modules), busybox-static (the guest's shell and tools), fio (the guest's workload, copied
# into the initramfs with its shared libraries) and cpio (packs the initramfs). Installs them when
# missing and we are allowed to (root with apt-get); otherwise those tests say they are skipped,
# and in CI they fail, since a missing guest must not pass silently.
guest_kernel_present() {
    ls /boot/vmlinuz-* >/dev/null 2>&1 && ls -d /lib/modules/*/kernel >/dev/null 2>&1
}
if guest_kernel_present && [ -x /bin/busybox ] && command -v fio >/dev/null 2>&1 \
        && command -v cpio >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "guestdma: installing a guest for the vhost-user guest tests" \
        "(apt-get install linux-image-amd64 busybox-static fio cpio)" >&2
    export DEBIAN_FRONTEND=noninteractive
    packages=(linux-image-amd64 busybox-static fio cpio)
    # initramfs-tools would build an initrd for the host on every kernel install; the tests build
    # their own, so it is not wanted (and it is slow on 2 cores).
    { apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null \
             && apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; }; } \
        || echo "guestdma: could not install the guest packages; guest tests will be skipped (or fail in CI)" >&2
else
    echo "guestdma: guest kernel, busybox, fio or cpio not found and cannot be installed here;" \
        "guest tests will be skipped" >&2
fi
exit 0
