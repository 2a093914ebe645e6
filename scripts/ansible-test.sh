#!/usr/bin/env bash
# Runs the Ansible role of examples/ansible/ against this machine, as root on Debian 12
# (CI runs it after scripts/package-test.sh, whose .deb it reuses): ansible-core from PyPI
# in a venv, examples/ansible/site.yml with `connection: local`, then a clsync daemon that
# this script starts itself, and checks that
#   0. without a .deb the role asks apt for clsync, and refuses the C clsync of Debian's
#      archive before installing it;
#   1. the play installs the package and writes clsync.toml and one jobs.d file per job;
#   2. a listed job syncs a file to its destination;
#   3. a job, or clsync.toml, with an unknown key fails `validate` and leaves the old file
#      in place;
#   4. editing one job and removing another fires the reload handler (`clsync reload`
#      over the control socket) and the daemon runs the new configuration: the removed
#      job's file is gone and `clsync status` no longer lists it, the edit is in force;
#   5. a third run changes nothing (changed=0) and fires no handler;
#   6. the systemd branch (see below).
# It leaves no clsync package, job file or daemon behind; the venv stays for the next run.
#
# Without systemd (CI runs no systemd as PID 1) two tasks of the role cannot run for
# real: "Enable and start clsync.service" and the handler "Reload clsync.service"
# (`systemctl reload clsync`). The play skips both, since /run/systemd/system does not
# exist. Check 6 runs them against a stand-in systemctl placed first in PATH, which
# answers `systemctl show` and `is-enabled` for a running, enabled clsync.service and
# does for `systemctl reload clsync` what the unit's ExecReload does (kill -HUP of the
# daemon): that covers the role's side (the branch is chosen, the module's calls, the
# daemon reloads on SIGHUP), not systemd's. The unit itself is checked by
# scripts/package-test.sh (systemd-analyze verify).
#
# Environment: CLSYNC_ANSIBLE_VENV (default /tmp/clsync-ansible-venv), CLSYNC_DEB (a
# package to use instead of target/debian/clsync_VERSION-1_ARCH.deb, which is built with
# scripts/package.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
export ANSIBLE_NOCOLOR=1 ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_RETRY_FILES_ENABLED=0

[ "$(id -u)" = 0 ] || { echo "ansible-test.sh: run as root (the role installs a package and writes /etc/clsync)" >&2; exit 1; }
t0=$(date +%s)
checks=0
ok() { checks=$((checks + 1)); echo "ok: $* [$(($(date +%s) - t0)) s]"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
installed() { dpkg-query -W -f='${db:Status-Status}' clsync 2>/dev/null || true; }
version() { dpkg-query -W -f='${Version}' clsync 2>/dev/null || true; }
# Waits up to $1 seconds for the command that follows to succeed.
wait_for() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# exited PID: the process is gone or a zombie (our child, until `wait`).
exited() { local state; state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0; [ "$state" = Z ]; }

venv=${CLSYNC_ANSIBLE_VENV:-/tmp/clsync-ansible-venv}
conf=/etc/clsync
jobs=(www logs)

# The machine must hold no clsync of someone else's: a clsync package older than ours, a
# job file the role would remove (it keeps jobs.d to its list), a daemon on the default
# socket. A leftover of this script (or of scripts/package-test.sh) is purged.
case "$(installed)" in
    "" | not-installed) ;;
    *) dpkg --compare-versions "$(version)" ge 0.5~ || fail "clsync $(version) is installed here; not replacing it"
       dpkg -P clsync >/dev/null ;;
esac
for f in "$conf"/jobs.d/*.toml; do
    [ -e "$f" ] || continue
    case "$(basename "$f" .toml)" in
        www | logs) rm -f "$f" ;;
        *) fail "$f is not this test's: the role would remove it" ;;
    esac
done
# A socket that nobody listens on is a leftover of a daemon that was killed.
if [ -S /run/clsync/clsync.sock ]; then
    /usr/bin/python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' /run/clsync/clsync.sock 2>/dev/null \
        && fail "a clsync daemon listens on /run/clsync/clsync.sock"
    rm -f /run/clsync/clsync.sock
fi
rm -rf /var/cache/clsync-ansible   # where the role copies the .deb

work=$(mktemp -d /tmp/clsync-ansible-test.XXXXXX)
daemon=
ours=   # set once this script may have installed the package and written /etc/clsync
cleanup() {
    local rc=$?
    if [ -n "$daemon" ]; then
        # SIGTERM: it finishes the syncs in flight; SIGKILL if it has not exited in 30 s.
        kill -TERM "$daemon" 2>/dev/null || true
        wait_for 30 exited "$daemon" || kill -KILL "$daemon" 2>/dev/null || true
        wait "$daemon" 2>/dev/null || true
    fi
    if [ $rc != 0 ]; then
        for log in "$work"/*.log; do
            [ -f "$log" ] || continue
            echo "--- $log (last 60 lines)" >&2
            tail -n 60 "$log" >&2
        done
    fi
    if [ -n "$ours" ]; then
        for j in "${jobs[@]}"; do rm -f "$conf/jobs.d/$j.toml"; done
        dpkg -P clsync >/dev/null 2>&1 || true
        rmdir "$conf/jobs.d" "$conf" 2>/dev/null || true
    fi
    rm -rf /var/cache/clsync-ansible "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ansible-core in a venv of Debian's python3 (the one with python3-apt, which the role's
# apt tasks use on this host).
need=()
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
/usr/bin/python3 -c 'import apt' 2>/dev/null || need+=(python3-apt)
command -v rsync >/dev/null || need+=(rsync)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! "$venv/bin/ansible-playbook" --version >/dev/null 2>&1; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'ansible-core>=2.16,<2.17'
fi
"$venv/bin/ansible-playbook" --version | sed -n 1p
ok "ansible-core in $venv"

# The package: scripts/package.sh's, built when missing.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
deb=${CLSYNC_DEB:-target/debian/clsync_${version}-1_$(dpkg --print-architecture).deb}
if [ ! -f "$deb" ]; then
    deb=$(bash scripts/package.sh | tail -n1)
fi
[ -f "$deb" ] || fail "no package at $deb"
deb=$(realpath "$deb")
want=$(dpkg-deb -f "$deb" Version)
ok "package $deb"

# The sources and destinations of the test's jobs, and the play's variables (extra vars,
# which win over site.yml's sample jobs).
mkdir -p "$work/www" "$work/logs"
vars() { # vars NAME: writes $work/NAME.yml from stdin (the clsync_jobs list)
    { printf 'clsync_daemon: {log_level: info}\nclsync_defaults: {delay: 100ms}\nclsync_jobs:\n'; cat; } >"$work/$1.yml"
}
vars first <<EOF
  - {name: www, source: $work/www, destination: $work/www-replica, mode: rsync, exclude: ["*.swp"]}
  - {name: logs, source: $work/logs, destination: $work/logs-replica, mode: mirror}
EOF
vars broken <<EOF
  - {name: www, source: $work/www, destination: $work/www-replica, mode: rsync, exclude: ["*.swp"], bogus_key: 1}
  - {name: logs, source: $work/logs, destination: $work/logs-replica, mode: mirror}
EOF
vars second <<EOF
  - {name: www, source: $work/www, destination: $work/www-replica, mode: rsync, exclude: ["*.swp", "*.tmp"]}
EOF
vars third <<EOF
  - {name: www, source: $work/www, destination: $work/www-replica, mode: rsync, exclude: ["*.swp", "*.tmp"], workers: 1}
  - {name: logs, state: absent}
EOF
# play LOG VARS [ARGS...]: runs site.yml, output in $work/LOG.log; returns its exit status.
play() {
    local log=$work/$1.log vars=$work/$2.yml
    shift 2
    (cd examples/ansible && "$venv/bin/ansible-playbook" -i inventory.ini site.yml \
        -e clsync_deb="$deb" -e @"$vars" "$@") >"$log" 2>&1
}
recap() { sed -n 's/^localhost *: .*changed=\([0-9]*\) .*failed=\([0-9]*\) .*/changed=\1 failed=\2/p' "$work/$1.log"; }
# The package's clsync, whatever else PATH has (e.g. a `cargo install`ed one).
clsync() { /usr/bin/clsync "$@"; }
status_json() { clsync status --json 2>/dev/null; }
job_names() { status_json | /usr/bin/python3 -c 'import json, sys; print(" ".join(j["name"] for j in json.load(sys.stdin)["jobs"]))'; }
all_watching() {
    status_json | /usr/bin/python3 -c 'import json, sys; s = json.load(sys.stdin)
sys.exit(not (s["ready"] and s["jobs"] and all(j["state"] == "watching" for j in s["jobs"])))'
}

# 0. Without clsync_deb the role installs clsync by name from apt, whose Debian archive
# has only the C clsync 0.4.5 (or nothing, with other sources): refused before installing.
ours=1
if play apt first -e clsync_deb= -e clsync_apt_cache_valid_time=86400; then fail "the run without clsync_deb passed with apt's clsync"; fi
grep -q 'clsync is not installed, the apt sources have .*: clsync 0.5 or later is needed' "$work/apt.log" \
    || fail "the run without clsync_deb did not refuse apt's clsync"
[ "$(installed)" = "" ] || [ "$(installed)" = not-installed ] || fail "the refused run installed clsync $(version)"
[ ! -e "$conf/clsync.toml" ] || fail "the refused run wrote $conf/clsync.toml"
ok "without clsync_deb the role asks apt, and refuses its clsync ($(apt-cache policy clsync 2>/dev/null | sed -n 's/ *Candidate: //p')) before installing it"

# 1. A fresh install and configuration.
play first first || fail "the first run failed"
[[ "$(recap first)" =~ ^changed=[1-9][0-9]*\ failed=0$ ]] || fail "first run: $(recap first)"
[ "$(installed)" = installed ] && [ "$(version)" = "$want" ] || fail "after the first run clsync is $(installed) $(version), not $want"
grep -A1 'TASK \[clsync : Install the .deb' "$work/first.log" | grep -q '^changed' || fail "the first run did not install the .deb"
for j in "${jobs[@]}"; do [ -f "$conf/jobs.d/$j.toml" ] || fail "no $conf/jobs.d/$j.toml"; done
grep -qx 'delay = "100ms"' "$conf/clsync.toml" || fail "clsync.toml lacks [defaults] delay: $(cat "$conf/clsync.toml")"
grep -qx 'exclude = \["\*.swp"\]' "$conf/jobs.d/www.toml" || fail "www.toml: $(cat "$conf/jobs.d/www.toml")"
clsync check --config-dir "$conf" >/dev/null || fail "clsync check of what the role wrote"
# No daemon yet: the handler ran, found none, and did not fail.
grep -q 'clsync is not running: nothing to reload' "$work/first.log" || fail "the first run's reload handler"
ok "first run ($(recap first)): clsync $want installed, clsync.toml and jobs.d/{www,logs}.toml written, clsync check passes, reload handler finds no daemon"

# 2. The daemon (no systemd here: started and stopped by its PID) syncs a listed job.
/usr/bin/clsync run --config-dir "$conf" >"$work/daemon.log" 2>&1 &
daemon=$!
wait_for 30 all_watching || fail "the daemon's jobs are not watching: $(clsync status 2>&1)"
[ "$(job_names)" = "logs www" ] || fail "clsync status lists: $(job_names)"
echo "hello from ansible" >"$work/www/index.html"
echo "a log line" >"$work/logs/app.log"
wait_for 30 cmp -s "$work/www/index.html" "$work/www-replica/index.html" || fail "job www did not sync index.html"
wait_for 30 cmp -s "$work/logs/app.log" "$work/logs-replica/app.log" || fail "job logs did not sync app.log"
ok "the daemon runs jobs www and logs; each syncs a new file to its destination"

# 3. A job with an unknown key: validate refuses it, the old file stays.
cp "$conf/jobs.d/www.toml" "$work/www.toml.before"
if play broken broken; then fail "a job with an unknown key passed"; fi
grep -q 'failed to validate' "$work/broken.log" && grep -q 'unknown field `bogus_key`' "$work/broken.log" \
    || fail "the broken run did not fail in validate with clsync check's message"
cmp -s "$work/www.toml.before" "$conf/jobs.d/www.toml" || fail "the refused job file replaced the old one"
! grep -q 'RUNNING HANDLER' "$work/broken.log" || fail "the broken run (nothing changed) ran a handler"
[ "$(job_names)" = "logs www" ] || fail "after the broken run clsync status lists: $(job_names)"
ok "a job with an unknown key fails validate (clsync check: unknown field \`bogus_key\`); the old www.toml stays"

# ... and so does clsync.toml with an unknown [daemon] key (checked with --as clsync.toml).
cp "$conf/clsync.toml" "$work/clsync.toml.before"
if play broken-main first -e '{"clsync_daemon": {"log_level": "info", "bogus_daemon_key": 1}}'; then
    fail "clsync.toml with an unknown key passed"
fi
grep -q 'failed to validate' "$work/broken-main.log" && grep -q ':[0-9]*:[0-9]*: unknown field `bogus_daemon_key`' "$work/broken-main.log" \
    || fail "the broken clsync.toml did not fail in validate with clsync check's message"
cmp -s "$work/clsync.toml.before" "$conf/clsync.toml" || fail "the refused clsync.toml replaced the old one"
ok "clsync.toml with an unknown [daemon] key fails validate; the old clsync.toml stays"

# 4. Edit www (exclude *.tmp), remove logs: the handler reloads the daemon.
play second second || fail "the second run failed"
[[ "$(recap second)" =~ ^changed=[1-9][0-9]*\ failed=0$ ]] || fail "second run: $(recap second)"
grep -A1 'RUNNING HANDLER \[clsync : Reload clsync over its control socket\]' "$work/second.log" | grep -q '^changed' \
    || fail "the second run did not reload over the control socket"
grep -q 'reloaded: added \[\], changed \[\\*"www\\*"\], removed \[\\*"logs\\*"\]' "$work/second.log" \
    || fail "the reload did not report www changed, logs removed"
[ ! -e "$conf/jobs.d/logs.toml" ] || fail "logs.toml is still there"
[ "$(job_names)" = www ] || fail "after the reload clsync status lists: $(job_names)"
clsync explain www x.tmp | grep -q 'denied: exclude pattern' || fail "the edited exclude is not in force: $(clsync explain www x.tmp)"
echo temp >"$work/www/x.tmp"
echo kept >"$work/www/y.txt"
wait_for 30 cmp -s "$work/www/y.txt" "$work/www-replica/y.txt" || fail "job www no longer syncs"
[ ! -e "$work/www-replica/x.tmp" ] || fail "x.tmp was synced despite the new exclude"
ok "second run ($(recap second)): handler ran clsync reload (www changed, logs removed); logs.toml gone, status lists only www, *.tmp excluded"

# 5. Idempotence.
play third-same second || fail "the third run failed"
[ "$(recap third-same)" = "changed=0 failed=0" ] || fail "the third run is not idempotent: $(recap third-same)"
! grep -q 'RUNNING HANDLER' "$work/third-same.log" || fail "the third run ran a handler"
ok "third run with the same list: $(recap third-same), no handler"

# 6. The systemd branch, against a stand-in systemctl (see the top of this file).
stub=$work/stub
mkdir "$stub"
cat >"$stub/systemctl" <<EOF
#!/bin/sh
echo "\$*" >>"$work/systemctl.calls"
case "\$*" in
    "show clsync") printf 'Id=clsync.service\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=$daemon\nUnitFileState=enabled\n' ;;
    "is-enabled clsync -l" | "is-enabled clsync") echo enabled ;;
    "reload clsync") kill -HUP $daemon ;;   # clsync.service: ExecReload=/bin/kill -HUP \$MAINPID
    *) echo "stand-in systemctl: unexpected call: \$*" >&2; exit 1 ;;
esac
EOF
chmod +x "$stub/systemctl"
before=$(status_json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["last_reload"])')
PATH=$stub:$PATH play systemd third -e clsync_service_manager=systemd || fail "the run with the systemd branch failed"
[[ "$(recap systemd)" =~ ^changed=[1-9][0-9]*\ failed=0$ ]] || fail "systemd run: $(recap systemd)"
grep -qx 'reload clsync' "$work/systemctl.calls" || fail "systemctl reload clsync was not called: $(cat "$work/systemctl.calls")"
! grep -qx 'start clsync\|enable clsync' "$work/systemctl.calls" || fail "the running, enabled service was started or enabled again"
grep -A1 'RUNNING HANDLER \[clsync : Reload clsync over its control socket\]' "$work/systemd.log" | grep -q '^skipping' \
    || fail "the systemd run also reloaded over the control socket"
reloaded() {
    status_json | /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin)["last_reload"]
sys.exit(not (r and str(r) != sys.argv[1] and "www" in json.dumps(r.get("changed"))))' "$before"
}
wait_for 30 reloaded || fail "the daemon did not reload www after SIGHUP: $(clsync status 2>&1 | tail -n1)"
ok "systemd branch (stand-in systemctl): service left running and enabled, handler ran systemctl reload clsync, the daemon reloaded www"

echo "ansible-test: all $checks checks ok ($(($(date +%s) - t0)) s)"
