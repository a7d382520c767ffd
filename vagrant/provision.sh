#!/usr/bin/env bash
# Install tcptest and what its runs need on Debian 12, then check the machine
# with `tcptest doctor`.
#
# Vagrant runs it as root inside the VM, with the repo synced at /tcptest.
# It also runs directly as root from a checkout (CI does):
#     sudo vagrant/provision.sh            # the checkout this script is in
#     sudo vagrant/provision.sh /path/to/tcptest
# Running it again is safe: it installs what is missing and refreshes the
# install. tcptest goes into a venv at /opt/tcptest (Debian's system Python is
# externally managed), installed editable so that the checkout is what runs,
# and /usr/local/bin/tcptest points at it.
set -euo pipefail

REPO=$(cd "${1:-$(dirname "$0")/..}" && pwd)
VENV=/opt/tcptest

if [ "$(id -u)" -ne 0 ]; then
    echo "provision.sh: run as root (sudo $0)" >&2
    exit 1
fi
if [ ! -f "$REPO/pyproject.toml" ] || [ ! -d "$REPO/tcptest" ]; then
    echo "provision.sh: no tcptest checkout at $REPO" >&2
    exit 1
fi

echo "== system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# iproute2: ip, tc, nstat; procps: sysctl; kmod: modprobe (doctor --fix)
apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip iproute2 ethtool tcpdump kmod procps >/dev/null
# chromium: the HTML report's test opens it headless; tshark: reads the pcapng comments
apt-get install -y -qq --no-install-recommends chromium tshark >/dev/null
# run --kernel: qemu, Debian's 6.1 kernel to boot, busybox for virtme-ng's initramfs
apt-get install -y -qq --no-install-recommends qemu-system-x86 linux-image-amd64 busybox-static >/dev/null

echo "== tcptest from $REPO into $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    /usr/bin/python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e "$REPO[test,vm]"
ln -sfn "$VENV/bin/tcptest" /usr/local/bin/tcptest

echo "== tcptest doctor --fix"
# Its own verdict comes from the plain `doctor` below, after the fixes.
/usr/local/bin/tcptest doctor --fix || true
echo "== tcptest doctor"
/usr/local/bin/tcptest doctor
