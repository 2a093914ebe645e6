#!/usr/bin/env bash
# Prints the path of a second rsync build for the tests, unpacking it once into
# target/test-rsync/: $CLSYNC_TEST_RSYNC_DEB, else Debian 12's 3.2.7-1+deb12u5 from
# ../shared/rsync/, else another version of Debian's rsync fetched with `apt-get download`.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${CLSYNC_TEST_RSYNC_DEB:-../shared/rsync/rsync_3.2.7-1+deb12u5_amd64.deb}
out=target/test-rsync
if [ ! -f "$deb" ]; then
    mine=$(dpkg-query -W -f '${Version}' rsync 2>/dev/null || true)
    other=$(apt-cache madison rsync | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -vxF "$mine" | head -1)
    [ -n "$other" ] || { echo "no second rsync build: set CLSYNC_TEST_RSYNC_DEB to a .deb" >&2; exit 1; }
    mkdir -p "$out/debs"
    (cd "$out/debs" && apt-get download -qq "rsync=$other" >&2)
    deb=$(ls "$out"/debs/rsync_*.deb | head -1)
fi
dir="$out/$(basename "$deb" .deb)"
if [ ! -x "$dir/usr/bin/rsync" ]; then
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    dpkg -x "$deb" "$dir.tmp"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
realpath "$dir/usr/bin/rsync"
