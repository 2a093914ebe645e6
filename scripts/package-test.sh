#!/usr/bin/env bash
# Builds the Debian package (scripts/package.sh) and puts it through what an admin does with
# it, as root on Debian 12: upgrade from Debian's C clsync 0.4.5 (when the archive has it),
# install with dpkg -i, run it, read its manual pages (no groff warnings), complete in bash,
# remove (conffiles stay), purge (they go). CI runs it after the tests; it leaves no clsync
# package behind.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

[ "$(id -u)" = 0 ] || { echo "package-test.sh: run as root (it installs the package)" >&2; exit 1; }
checks=0
ok() { checks=$((checks + 1)); echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
installed() { dpkg-query -W -f='${db:Status-Status}' clsync 2>/dev/null || true; }
version() { dpkg-query -W -f='${Version}' clsync 2>/dev/null || true; }

# Never touch a clsync that someone installed on this machine; a leftover of an earlier run
# of this script (our version) is purged.
case "$(installed)" in
    "" | not-installed) ;;
    *) if dpkg --compare-versions "$(version)" ge 0.5~; then
           dpkg -P clsync >/dev/null
       else
           fail "clsync $(version) is installed here; not replacing it (purge it to run this test)"
       fi ;;
esac
trap 'rc=$?; [ $rc = 0 ] || { echo "package-test.sh: failed; purging the package" >&2; dpkg -P clsync >/dev/null 2>&1 || true; }' EXIT

# What the build and the checks need (all in Debian 12; most come with build-essential).
need=()
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v strip >/dev/null || need+=(binutils)
command -v groff >/dev/null || need+=(groff-base)
command -v man >/dev/null || need+=(man-db)
command -v rsync >/dev/null || need+=(rsync)   # the package depends on it; dpkg -i does not fetch it
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

t0=$(date +%s)
deb=$(bash scripts/package.sh | tail -n1)
[ -f "$deb" ] || fail "package.sh made no package"
ok "built $deb ($(( $(date +%s) - t0 )) s)"
want=$(dpkg-deb -f "$deb" Version)

# 1. The upgrade from Debian's C clsync: same package name, so dpkg -i upgrades it.
old=$(apt-cache policy clsync 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -n "$old" ] && [ "$old" != "(none)" ] && dpkg --compare-versions "$old" lt 0.5~ \
    && apt-get install -y -qq --no-install-recommends "clsync=$old" >/tmp/clsync-old-install.log 2>&1; then
    [ -e /etc/init.d/clsync ] && [ -e /lib/systemd/system/clsync@.service ] \
        || fail "the C clsync $old did not install what it is known to"
    dpkg -i "$deb" >/tmp/clsync-upgrade.log 2>&1 || { cat /tmp/clsync-upgrade.log; fail "dpkg -i over the C clsync $old"; }
    [ "$(version)" = "$want" ] && [ "$(installed)" = installed ] || fail "after the upgrade: $(version) $(installed)"
    for gone in /etc/init.d/clsync /lib/systemd/system/clsync@.service /usr/share/man/man1/clsync.1.gz; do
        [ ! -e "$gone" ] || fail "the upgrade left $gone"
    done
    ! ls /etc/rc?.d/*clsync >/dev/null 2>&1 || fail "the upgrade left the init script's rc links"
    grep -q '^CLSYNC_ARGS=""' /etc/default/clsync && ! grep -q CLSYNC_ENABLE /etc/default/clsync \
        || fail "/etc/default/clsync is not the new one after the upgrade"
    /usr/bin/clsync --version | grep -qx "clsync ${want%-*}" || fail "the upgraded binary is not the new one"
    dpkg -P clsync >/dev/null
    [ "$(installed)" = not-installed ] || [ -z "$(installed)" ] || fail "purge after the upgrade: $(installed)"
    [ ! -e /etc/default/clsync ] || fail "purge after the upgrade left /etc/default/clsync"
    ok "dpkg -i upgrades Debian's C clsync $old: init script and rc links, clsync@.service and clsync(1) gone, /etc/default/clsync replaced"
else
    echo "notice: Debian's C clsync is not installable here (candidate: ${old:-none}); the upgrade check is skipped"
fi

# 2. A fresh install.
dpkg -i "$deb" >/tmp/clsync-install.log 2>&1 || { cat /tmp/clsync-install.log; fail "dpkg -i $deb"; }
[ "$(installed)" = installed ] && [ "$(version)" = "$want" ] || fail "dpkg -i: $(installed) $(version)"
ok "dpkg -i installs clsync $want"
[ "$(command -v clsync)" = /usr/bin/clsync ] || fail "clsync is not /usr/bin/clsync"
# (Not `tee /dev/stderr`: tee opens it with O_TRUNC, emptying a log file that stderr is.)
version=$(clsync --version)
echo "$version"
[ "$version" = "clsync ${want%-*}" ] || fail "clsync --version"
ok "clsync --version"
conffiles=$(dpkg-query -W -f='${Conffiles}' clsync)
for f in /etc/clsync/clsync.toml /etc/default/clsync; do
    grep -q " $f " <<<"$conffiles " || fail "$f is not a conffile: $conffiles"
    [ -f "$f" ] || fail "$f is missing"
done
[ -d /etc/clsync/jobs.d ] && [ -z "$(ls -A /etc/clsync/jobs.d)" ] || fail "/etc/clsync/jobs.d is not an empty directory"
for f in job.schema.json jobs.d/www-replica.toml jobs.d/home-backup.toml; do
    [ -f "/usr/share/doc/clsync/examples/$f" ] || fail "examples/$f is missing"
done
clsync check --config-dir /etc/clsync >/dev/null || fail "clsync check of the packaged /etc/clsync"
clsync check --config-dir /etc/clsync /usr/share/doc/clsync/examples/jobs.d/*.toml >/dev/null 2>&1 \
    || fail "the sample jobs do not pass clsync check"
ok "conffiles /etc/clsync/clsync.toml and /etc/default/clsync, empty jobs.d, valid examples"
grep -q '^EnvironmentFile=-/etc/default/clsync$' /lib/systemd/system/clsync.service || fail "unit: EnvironmentFile"
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify /lib/systemd/system/clsync.service 2>&1) || { echo "$out"; fail "systemd-analyze verify clsync.service"; }
    ! grep -q clsync <<<"$out" || { echo "$out"; fail "systemd-analyze verify: clsync.service"; }
fi
ok "the unit reads /etc/default/clsync (systemd-analyze verify is clean)"

# The installed binary syncs: one job, once, with the native mirror.
tmp=$(mktemp -d)
mkdir -p "$tmp/conf/jobs.d" "$tmp/src/sub"
echo hello >"$tmp/src/sub/file"
printf 'source = "%s"\ndestination = "%s"\nmode = "mirror"\ndelay = "100ms"\n' "$tmp/src" "$tmp/dst" >"$tmp/conf/jobs.d/t.toml"
timeout 60 clsync sync --once --config-dir "$tmp/conf" t 2>"$tmp/log" || { cat "$tmp/log"; fail "clsync sync --once"; }
cmp -s "$tmp/src/sub/file" "$tmp/dst/sub/file" || fail "clsync sync --once did not copy the file"
rm -rf "$tmp"
ok "the installed clsync syncs a job (sync --once, mirror)"

# Manual pages: found by man, rendered by groff with every warning on, and none printed.
pages=(/usr/share/man/man8/clsync.8.gz /usr/share/man/man5/clsync.toml.5.gz /usr/share/man/man8/clsync-*.8.gz)
[ ${#pages[@]} -ge 8 ] || fail "only ${#pages[@]} manual pages: ${pages[*]}"
for p in "${pages[@]}"; do
    [ -f "$p" ] || fail "$p is missing"
    warnings=$(zcat "$p" | groff -man -Tutf8 -ww -z 2>&1)
    [ -z "$warnings" ] || { echo "$warnings"; fail "groff warns about $p"; }
done
[ "$(man -w clsync)" = /usr/share/man/man8/clsync.8.gz ] || fail "man -w clsync: $(man -w clsync)"
for page in "8 clsync" "5 clsync.toml" "8 clsync-run"; do
    # shellcheck disable=SC2086
    out=$(MANWIDTH=80 man $page 2>/tmp/clsync-man.err) || fail "man $page"
    [ ! -s /tmp/clsync-man.err ] || { cat /tmp/clsync-man.err; fail "man $page printed warnings"; }
    [ "$(wc -l <<<"$out")" -gt 15 ] || fail "man $page is nearly empty"
done
man 5 clsync.toml | grep -q 'status_file_mode' || fail "clsync.toml(5) lacks the daemon keys"
ok "${#pages[@]} manual pages render without warnings (groff -ww, man)"

# Completions: bash loads them and completes a command; zsh and fish files are there.
bash -c 'source /usr/share/bash-completion/completions/clsync && complete -p clsync' | grep -q -- '-F _clsync' \
    || fail "bash completion does not load"
words=$(bash -c 'source /usr/share/bash-completion/completions/clsync
    COMP_WORDS=(clsync ru); COMP_CWORD=1; COMP_LINE="clsync ru"; COMP_POINT=${#COMP_LINE}
    _clsync clsync ru clsync; printf "%s\n" "${COMPREPLY[@]}"')
grep -qx run <<<"$words" || fail "bash completes \"clsync ru\" to: $words"
[ -s /usr/share/zsh/vendor-completions/_clsync ] && [ -s /usr/share/fish/vendor_completions.d/clsync.fish ] \
    || fail "zsh or fish completions missing"
cmp -s <(clsync completions bash) /usr/share/bash-completion/completions/clsync || fail "clsync completions bash differs from the packaged file"
ok "bash completion loads and completes \"clsync ru\" to run; zsh and fish files installed"

# 3. Remove: the program goes, the conffiles stay (an admin's edit survives).
echo '# edited by the admin' >>/etc/clsync/clsync.toml
dpkg -r clsync >/dev/null
[ "$(installed)" = config-files ] || fail "after dpkg -r the status is $(installed), not config-files"
[ ! -e /usr/bin/clsync ] && [ ! -e /usr/share/man/man8/clsync.8.gz ] || fail "dpkg -r left the program or its manual"
grep -q 'edited by the admin' /etc/clsync/clsync.toml && [ -f /etc/default/clsync ] || fail "dpkg -r removed the conffiles"
ok "dpkg -r removes the program and keeps the conffiles"

# 4. Purge: the conffiles and the configuration directory go.
dpkg -P clsync >/dev/null
case "$(installed)" in "" | not-installed) ;; *) fail "after dpkg -P the status is $(installed)" ;; esac
for gone in /etc/clsync/clsync.toml /etc/default/clsync /etc/clsync; do
    [ ! -e "$gone" ] || fail "dpkg -P left $gone"
done
ok "dpkg -P removes the conffiles and /etc/clsync"

echo "package-test: all $checks checks ok ($(( $(date +%s) - t0 )) s)"
