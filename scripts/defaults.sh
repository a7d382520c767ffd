#!/bin/bash
# Settings every script of the suite starts from, run as its init command
# (`./defaults.sh`, or `../defaults.sh` from a topic folder). It runs inside
# the script's own network namespace: these sysctls are per namespace, so the
# host's settings are never touched. Values are the kernel's defaults unless
# a comment says why not; a script that needs another value sets it after
# calling this.
set -e

# Reno: always allowed in a namespace, no pacing, no model of the path; the
# suite is about connection management, not congestion control (the host's
# default may be bbr, which paces segments out).
sysctl -q net.ipv4.tcp_congestion_control=reno

# Buffer limits of the kernel's packetdrill selftests, so that the window
# scale the kernel offers is 8 as in their scripts.
sysctl -q net.ipv4.tcp_rmem="4096 540000 15728640"
sysctl -q net.ipv4.tcp_wmem="4096 262144 4194304"

sysctl -q net.ipv4.tcp_timestamps=1 net.ipv4.tcp_sack=1 net.ipv4.tcp_dsack=1
sysctl -q net.ipv4.tcp_window_scaling=1
sysctl -q net.ipv4.tcp_ecn=0                      # no ECN negotiation on SYNs
sysctl -q net.ipv4.tcp_fastopen=0                 # plain handshakes only
sysctl -q net.ipv4.tcp_syn_retries=6 net.ipv4.tcp_synack_retries=5
sysctl -q net.ipv4.tcp_syncookies=1               # cookies only once a SYN queue overflows
sysctl -q net.ipv4.tcp_rfc1337=0                  # an RST ends TIME_WAIT (scripts/rst/ shows both)
sysctl -q net.ipv4.tcp_fin_timeout=60
sysctl -q net.ipv4.tcp_slow_start_after_idle=0

# The kernel answers an invalid segment (a challenge ACK, a duplicate ACK for
# an out-of-window segment) at most once per 500 ms per socket; scripts that
# send several in a row want every answer. scripts/rst/ shows the limit.
sysctl -q net.ipv4.tcp_invalid_ratelimit=0

# MSS 1460 in every IP version, as the kernel's selftests get with
# --mtu=1520 for IPv6: the device MTU leaves room for the larger header.
if ip -6 address show dev tun0 scope global | grep -q inet6; then
    ip link set dev tun0 mtu 1520
fi

# A plain FIFO on the test device: a pacing qdisc would shift segment times.
tc qdisc add dev tun0 root pfifo
