#!/usr/bin/env bash
# The conformance tests compare our IDE with QEMU 7.2's. Installs it when missing and we are
# allowed to (root with apt-get); otherwise those tests explain that they are skipped, and in CI
# they fail, since a missing reference must not pass silently.
if command -v qemu-system-x86_64 >/dev/null 2>&1 && command -v qemu-img >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "guestdma: installing QEMU for the conformance tests (apt-get install qemu-system-x86 qemu-utils)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq qemu-system-x86 qemu-utils >/dev/null \
        || echo "guestdma: could not install QEMU; conformance tests will be skipped (or fail in CI)" >&2
else
    echo "guestdma: QEMU not found and cannot be installed here; conformance tests will be skipped" >&2
fi
exit 0
