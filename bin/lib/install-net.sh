#!/usr/bin/env bash
# The network backends' tests read our pcap captures with tcpdump (Debian tcpdump), the reference
# for "a file Wireshark and tcpdump open". Installs it when missing and we are allowed to (root with
# apt-get); otherwise that test says it is skipped, and in CI it fails, since a missing reference
# must not pass silently.
if command -v tcpdump >/dev/null 2>&1 || [ -x /usr/sbin/tcpdump ] || [ -x /usr/bin/tcpdump ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "guestdma: installing tcpdump for the pcap tests (apt-get install tcpdump)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -qq tcpdump >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq tcpdump >/dev/null; }; } \
        || echo "guestdma: could not install tcpdump; the pcap test will be skipped (or fail in CI)" >&2
else
    echo "guestdma: tcpdump not found and cannot be installed here; the pcap test will be skipped" >&2
fi
exit 0
