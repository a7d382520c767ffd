#!/bin/sh
# An init command of the cells whose state keeps the kernel's FIN
# unacknowledged (FIN_WAIT1, CLOSING, LAST_ACK): a minimum RTO of 3 s on the
# routes through tun0, so that the FIN's tail loss probe and retransmission
# (200 ms after it with Linux's default) cannot come while a cell runs, even
# on a busy machine. Run after ../../defaults.sh, inside the run's namespace.
set -e
for family in -4 -6; do
    ip "$family" route show dev tun0 | grep ' via ' | while read -r route; do
        # shellcheck disable=SC2086 # the route's words, as ip printed them
        ip "$family" route change $route dev tun0 rto_min 3s
    done
done
