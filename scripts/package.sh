#!/usr/bin/env bash
# Builds the Debian package target/debian/clsync_VERSION_ARCH.deb from a release build, with
# dpkg-deb from a staged tree (no cargo-deb to compile). Needs dpkg-dev (dpkg-shlibdeps) and
# binutils (strip), both in build-essential. Prints the package's path on its last line.
#
# The manual pages and completions are made here by the binary itself (`clsync man`,
# `clsync completions`), from its clap definitions and the job schema: nothing generated is
# checked in.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022
export LC_ALL=C

for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
    command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done

cargo build --release --locked --quiet
bin=target/release/clsync
version=$("$bin" --version | awk '{print $2}')
debversion="$version-1"
arch=$(dpkg --print-architecture)
# Reproducible timestamps (dpkg-deb clamps file times to it).
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

work=target/debian/work
root=$work/debian/clsync   # where dpkg-shlibdeps expects the package's files
rm -rf "$work"
mkdir -p "$root/DEBIAN"

# The binary, without its debug info (the release profile keeps line tables).
install -d "$root/usr/bin"
strip --strip-debug --strip-unneeded -o "$root/usr/bin/clsync" "$bin"
chmod 755 "$root/usr/bin/clsync"

# Manual pages: clsync(8), clsync-COMMAND(8), clsync.toml(5).
man=$work/man
"$bin" man "$man" >/dev/null
for page in "$man"/*; do
    section=${page##*.}
    install -D -m644 "$page" "$root/usr/share/man/man$section/$(basename "$page")"
    gzip -9n "$root/usr/share/man/man$section/$(basename "$page")"
done

# Shell completions, where bash-completion, zsh and fish look for a package's.
install -d "$root/usr/share/bash-completion/completions" \
    "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$root/usr/share/bash-completion/completions/clsync"
"$bin" completions zsh >"$root/usr/share/zsh/vendor-completions/_clsync"
"$bin" completions fish >"$root/usr/share/fish/vendor_completions.d/clsync.fish"

# Configuration (conffiles) and the jobs directory, empty.
install -D -m644 packaging/clsync.toml "$root/etc/clsync/clsync.toml"
install -d -m755 "$root/etc/clsync/jobs.d"
install -D -m644 packaging/clsync.default "$root/etc/default/clsync"
# Debian 12 ships units in /lib (dpkg does not know /lib is /usr/lib).
install -D -m644 packaging/clsync.service "$root/lib/systemd/system/clsync.service"

# Documentation, the sample jobs and the schema.
doc=$root/usr/share/doc/clsync
install -D -m644 packaging/copyright "$doc/copyright"
install -m644 README.md "$doc/README.md"
gzip -9n "$doc/README.md"
install -d "$doc/examples/jobs.d"
install -m644 jobs.d/*.toml "$doc/examples/jobs.d/"
install -m644 schemas/job.schema.json "$doc/examples/job.schema.json"

# Control files.
for script in preinst postinst prerm postrm; do
    install -m755 "packaging/deb/$script" "$root/DEBIAN/$script"
done
printf '%s\n' /etc/clsync/clsync.toml /etc/default/clsync >"$root/DEBIAN/conffiles"
# dpkg-shlibdeps reads a source package's control file: a minimal one does.
printf 'Source: clsync\n\nPackage: clsync\nArchitecture: any\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O -edebian/clsync/usr/bin/clsync | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# Debian's C clsync (0.4.5) is the same package name: dpkg -i upgrades it (0.5.0-1 > 0.4.5-2),
# its files that this package does not ship (clsync@.service, clsync.1) go, and the
# maintainer scripts remove its init script (a conffile). No Conflicts/Replaces are needed,
# and a package may not conflict with itself.
cat >"$root/DEBIAN/control" <<EOF
Package: clsync
Version: $debversion
Architecture: $arch
Maintainer: clsync developers <clsync@clsync.invalid>
Installed-Size: $size
Depends: $shlibs, rsync
Section: net
Priority: optional
Description: live file-sync daemon (inotify + rsync or a native mirror)
 clsync watches directory trees with inotify, batches the changes, filters them
 through exclude patterns and rules and hands each batch to one rsync run (or its
 native mirror, or a program of yours), so that destinations keep up with their
 sources within seconds. One daemon runs many jobs, one TOML file each in
 /etc/clsync/jobs.d/, and reloads them as a diff on SIGHUP.
 .
 This is the Rust successor of the C clsync 0.4: the command line and the
 configuration are new (see clsync(8), clsync.toml(5)); rules files still work.
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

deb=target/debian/clsync_${debversion}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
