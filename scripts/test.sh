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
# Unit tests and the end-to-end suite, then the fault-injection cases (one at a time, each
# printing a `FAULT case: ok, consistent after ...` line).
cargo test --lib --bins --test e2e "$@"
cargo test --test faults "$@" -- --nocapture
