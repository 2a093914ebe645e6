#!/bin/bash
# Run as root after `cargo build --release`: bash bench/million.sh (about 3 minutes, ~1.5 GB of kernel memory).
# 1M directories: time to "watching", RSS, bytes per directory, and a mass rmdir of 100k dirs
# followed by a sentinel file (event-loop stall check). Restores max_user_watches.
set -u
B="$(cd "$(dirname "$0")/.." && pwd)/target/release/clsync"
T=/dev/shm/m1; rm -rf $T; mkdir -p $T/cfg/jobs.d $T/src
OLD=$(cat /proc/sys/fs/inotify/max_user_watches)
trap 'echo $OLD > /proc/sys/fs/inotify/max_user_watches; [ -n "${P:-}" ] && kill $P 2>/dev/null; rm -rf $T' EXIT
echo 2000000 > /proc/sys/fs/inotify/max_user_watches
python3 - <<'PY'
import os
for i in range(1000):
    base=f'/dev/shm/m1/src/d{i:03}'
    os.mkdir(base)
    for j in range(1000):
        os.mkdir(f'{base}/e{j:03}')
PY
echo "tree made"
printf 'source="%s/src"\ndestination="%s/dst"\ninitial_sync=false\ndelay="0s"\n' $T $T > $T/cfg/jobs.d/j.toml
printf '[daemon]\nsocket="%s/s.sock"\n' $T > $T/cfg/clsync.toml
start=$(date +%s.%N)
$B run --config-dir $T/cfg 2> $T/log & P=$!
until grep -q watching $T/log; do sleep 0.1; done
ready=$(date +%s.%N)
echo "watching after $(echo "$ready - $start" | bc) s"
grep -E "VmRSS|VmHWM" /proc/$P/status
rss=$(awk '/VmRSS/{print $2}' /proc/$P/status)
awk '/^[0-9a-f]/{name=$6} /^Rss/{if(name=="") anon+=$2} END{print "anon KiB", anon}' /proc/$P/smaps
# rsync of the tree for reference (how long a plain rsync of 1M dirs takes)
s2=$(date +%s.%N); rsync -a $T/src/ $T/ref/; e2=$(date +%s.%N); echo "plain rsync of the tree: $(echo "$e2 - $s2" | bc) s"; rm -rf $T/ref
mkdir -p $T/dst
t0=$(awk '{print $14+$15}' /proc/$P/stat)
s3=$(date +%s.%N)
for i in $(seq 0 99); do rm -rf $T/src/d$(printf %03d $i); done
echo sentinel > $T/src/sentinel
until [ -e $T/dst/sentinel ]; do sleep 0.01; done
e3=$(date +%s.%N)
t1=$(awk '{print $14+$15}' /proc/$P/stat)
echo "rmdir of 100k dirs + sentinel synced: $(echo "$e3 - $s3" | bc) s; daemon CPU ticks $((t1-t0))"
