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
# Unit tests and the end-to-end suite, then the fault-injection cases (one at a time, each
# printing a `FAULT case: ok, consistent after ...` line).
cargo test --lib --bins --test e2e "$@"
cargo test --test faults "$@" -- --nocapture
