#!/usr/bin/env bash
# The NBD backend's tests run against real servers: qemu-nbd (Debian qemu-utils, installed with
# QEMU by install-qemu.sh) and nbdkit with its memory and file plugins and its filters (error,
# delay, log, blocksize-policy), all in Debian's nbdkit package. Installs nbdkit when missing and
# we are allowed to (root with apt-get); otherwise those tests say they are skipped, and in CI
# they fail, since a missing server must not pass silently.
if command -v nbdkit >/dev/null 2>&1 && command -v qemu-nbd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "guestdma: installing NBD servers for the NBD backend tests (apt-get install nbdkit qemu-utils)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq nbdkit qemu-utils >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq nbdkit qemu-utils >/dev/null; }; } \
        || echo "guestdma: could not install nbdkit; NBD tests will be skipped (or fail in CI)" >&2
else
    echo "guestdma: nbdkit or qemu-nbd not found and cannot be installed here; NBD tests will be skipped" >&2
fi
exit 0
