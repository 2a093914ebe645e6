#!/usr/bin/env bash
# Runs the whole test suite. Installs rsync first when it is missing (the end-to-end tests
# drive the real daemon against real rsync).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v rsync >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq rsync
    else
        echo "rsync is missing: install it (e.g. sudo apt-get install rsync) and run again" >&2
        exit 1
    fi
fi
# The remote-destination tests start a real sshd on loopback; without it they are skipped.
if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq openssh-server openssh-client || echo "note: no sshd, the remote tests will be skipped" >&2
fi
# The attack cases run their attackers with Debian's python3 as nobody, and some hold the
# daemon's chmods with strace.
if { [ ! -x /usr/bin/python3 ] || ! command -v strace >/dev/null 2>&1; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq python3 strace || echo "note: no python3/strace, some attack cases will fail or be skipped" >&2
fi
# A second rsync build, for the rsync-mode cases: Debian 12's 3.2.7-1+deb12u5, whose receiver
# rejects --delete-missing-args (RsyncProject/rsync issue 910). Unpacked, never installed.
second=$(bash scripts/second-rsync.sh)
# Unit tests and the end-to-end suite with the machine's rsync…
cargo test --lib --bins --test e2e "$@"
# …and again, the rsync cases (unit, e2e; mirror-only cases skipped), with the second build
# first in PATH: it is then every job's rsync and the tests' reference rsync.
echo "== the rsync cases again with $("$second" --version | sed -n 1p) ($second)"
PATH="$(dirname "$second"):$PATH" CLSYNC_TEST_RSYNC_AFFECTED="$second" \
    cargo test --lib --test e2e "$@" -- --skip mirror
# The fault-injection cases (one at a time, each printing a `FAULT case: ok, consistent
# after ...` line).
cargo test --test faults "$@" -- --nocapture
