#!/usr/bin/env python3
"""clsync benchmark suite.

    python3 bench/bench.py [--quick] [--only NAME[,NAME]] [--runs N] [--peers]
                           [--bin PATH] [--tmpdir DIR] [--no-write]

Runs every workload against the daemon (rsync mode and mirror mode where it
applies) and the plain-rsync reference in the same run, prints a markdown
table and writes bench/RESULTS.md (unless --quick or --no-write).
See bench/README.md for the method.
"""

import argparse
import collections
import datetime
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
TICK = os.sysconf("SC_CLK_TCK")
READY_RE = re.compile(rb"initial sync done in ([0-9.]+)s; watching (\d+) directories"
                      rb"|watching (\d+) directories \(initial sync skipped\)")
JOBS_READY = b"ready: every job finished its initial sync"  # src/supervisor/mod.rs, once for the daemon
WORKLOADS = ["initial", "latency", "burst", "deletes", "rename", "overflow", "scale", "idle", "jobs", "churn"]
# The peers each workload runs with --peers (and so needs installed).
PEERS = dict(initial=("lsyncd", "clsync-c"), latency=("lsyncd", "clsync-c"), burst=("lsyncd", "clsync-c"),
             jobs=("lsyncd",), churn=("lsyncd",))
PEER_BIN = {"lsyncd": "/usr/bin/lsyncd", "clsync-c": "/usr/bin/clsync"}

now = time.monotonic


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- sizes

FULL = dict(
    initial_files=50_000, initial_dirs=2_500,
    latency_files=10_000, latency_repeats=20, latency_idle=1.0,
    burst_base=1_000, burst_files=10_000, burst_dirs=100,
    deletes_files=10_000, deletes_dirs=100,
    rename_files=10_000,
    overflow_dirs=100, overflow_per_dir=1_000,
    scale_dirs=100_000,
    idle_files=10_000, idle_wait=60.0,
    jobs=1_000, jobs_changes=10, jobs_grace=5.0,
    churn_dirs=1_000, churn_per_dir=5, churn_rates=(500, 2_000, 6_000), churn_secs=60.0, churn_warmup=10.0,
    churn_markers=50,
    timeout=120.0,
)
QUICK = dict(
    initial_files=5_000, initial_dirs=250,
    latency_files=1_000, latency_repeats=5, latency_idle=1.0,
    burst_base=100, burst_files=1_000, burst_dirs=10,
    deletes_files=1_000, deletes_dirs=10,
    rename_files=1_000,
    overflow_dirs=10, overflow_per_dir=1_000,
    scale_dirs=10_000,
    idle_files=1_000, idle_wait=5.0,
    jobs=100, jobs_changes=10, jobs_grace=5.0,
    churn_dirs=1_000, churn_per_dir=5, churn_rates=(500, 2_000), churn_secs=7.0, churn_warmup=2.0,
    churn_markers=50,
    timeout=30.0,
)


# ---------------------------------------------------------------- helpers: trees

def write_files(root, dirs, per_dir, rng, maxsize=4096, prefix="d"):
    """Create `dirs` directories under root with `per_dir` files of 0..maxsize random bytes."""
    paths = []
    for d in range(dirs):
        dpath = os.path.join(root, f"{prefix}{d:05d}")
        os.makedirs(dpath, exist_ok=True)
        for f in range(per_dir):
            p = os.path.join(dpath, f"f{f:05d}")
            with open(p, "wb") as fh:
                fh.write(rng.randbytes(rng.randint(0, maxsize)))
            paths.append(p)
    return paths


def make_tree(root, nfiles, ndirs, rng, prefix="d"):
    """nfiles files spread evenly over ndirs directories (returns relative file paths)."""
    os.makedirs(root, exist_ok=True)
    per = max(1, nfiles // ndirs)
    return [os.path.relpath(p, root) for p in write_files(root, ndirs, per, rng, prefix=prefix)]


def make_dir_tree(root, ndirs, rng):
    """ndirs leaf directories (100 top dirs × ndirs/100) with one 0..4 KiB file each."""
    os.makedirs(root, exist_ok=True)
    per = ndirs // 100
    for t in range(100):
        top = os.path.join(root, f"t{t:03d}")
        os.mkdir(top)
        for s in range(per):
            d = os.path.join(top, f"s{s:05d}")
            os.mkdir(d)
            with open(os.path.join(d, "f"), "wb") as fh:
                fh.write(rng.randbytes(rng.randint(0, 4096)))
    return 100 + 100 * per


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


def timed(cmd):
    """Wall time of one command (which must succeed)."""
    t0 = now()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = now() - t0
    if r.returncode != 0:
        raise BenchError(f"{cmd} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return dt


# ---------------------------------------------------------------- helpers: consistency

def check(src, dst):
    """One `rsync -anci --delete SRC/ DST/`: True when it prints nothing (killed at first output)."""
    p = subprocess.Popen([RSYNC, "-anci", "--delete", src + "/", dst + "/"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    if line:
        p.kill()
        p.wait()
        return False
    return p.wait() == 0


def count_diffs(src, dst):
    r = subprocess.run([RSYNC, "-anci", "--delete", src + "/", dst + "/"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return len(r.stdout.splitlines())


class Gate:
    """Cheap necessary condition polled before the full check: sampled paths present in
    DST with the source's type, size and mtime (s), and some paths absent."""

    def __init__(self, src, dst, present=(), absent=(), also=None):
        self.src, self.dst = src, dst
        self.present, self.absent = list(present), list(absent)
        self.also = also  # an extra necessary condition, e.g. "the daemon logged readiness"

    def __call__(self):
        if self.also is not None and not self.also():
            return False
        for rel in self.absent:
            if os.path.lexists(os.path.join(self.dst, rel)):
                return False
        for rel in self.present:
            try:
                a = os.lstat(os.path.join(self.src, rel))
                b = os.lstat(os.path.join(self.dst, rel))
            except FileNotFoundError:
                return False
            if (a.st_mode != b.st_mode or a.st_size != b.st_size
                    or int(a.st_mtime) != int(b.st_mtime)):
                return False
        return True


def wait_consistent(src, dst, t0, timeout, gate=None, interval=0.02, gate_interval=None):
    """Poll until DST matches SRC. Returns dict(t=start of the passing check - t0,
    check=duration of that check) or dict(t=None, diffs=N) on timeout."""
    gate_interval = interval if gate_interval is None else gate_interval
    deadline = now() + timeout
    while now() < deadline:
        if gate is not None and not gate():
            time.sleep(gate_interval)
            continue
        ts = now()
        if check(src, dst):
            return dict(t=ts - t0, check=now() - ts)
        time.sleep(interval)
    return dict(t=None, diffs=count_diffs(src, dst))


def sample(rels, k, rng):
    """k random paths plus the last ones in sorted order (rsync transfers in that order)."""
    last = sorted(rels)[-3:]
    return rng.sample(rels, min(k, len(rels))) + last


# ---------------------------------------------------------------- helpers: /proc sampling

def proc_cpu(pid):
    """(own utime+stime, reaped children cutime+cstime) in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    f = lambda n: int(rest[n - 3])  # noqa: E731  (field n of proc(5))
    return (f(14) + f(15)) / TICK, (f(16) + f(17)) / TICK


def proc_mem(pid):
    """(RSS, VmHWM) in MB. RSS from smaps_rollup, which counts every page: /proc/PID/status
    sums per-CPU counters that lag behind by up to 64 pages a thread, several MB below the
    truth in a daemon of 1,000 threads (smaps_rollup also brings status up to date)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k == "Rss":
                    out["Rss"] = int(v.split()[0]) / 1024
    except OSError:
        pass
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out.get("Rss", out.get("VmRSS", 0.0)), out.get("VmHWM", 0.0)


def proc_ctxt(pid):
    """Context switches (voluntary + nonvoluntary) summed over every thread."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as fh:
                for line in fh:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def proc_runq(pid):
    """Seconds the live threads of a process have waited on a run queue (runnable, no CPU):
    field 2 of /proc/PID/task/TID/schedstat, summed; None where schedstat is missing."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[1])
        except FileNotFoundError:
            pass
        except (OSError, IndexError, ValueError):
            return None
    return total / 1e9


def proc_counts(pid):
    """(threads, fds, inotify instances, inotify watches) of a process."""
    threads = len(os.listdir(f"/proc/{pid}/task"))
    fds = os.listdir(f"/proc/{pid}/fd")
    inst = watches = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                watches += sum(line.startswith("inotify wd:") for line in fh)
            inst += 1
        except (FileNotFoundError, ProcessLookupError):
            pass
    return threads, len(fds), inst, watches


def inotify_instances_of(uid):
    """inotify instances held by every process of `uid` (what max_user_instances limits)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    total += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
                except OSError:
                    pass
        except OSError:
            pass
    return total


class Sysctl:
    """Set a /proc/sys value; restore() puts the old one back (idempotent)."""

    def __init__(self, path, value):
        self.path = path
        with open(path) as fh:
            self.old = fh.read().strip()
        with open(path, "w") as fh:
            fh.write(str(value))
        self.restored = False

    def restore(self):
        if not self.restored:
            with open(self.path, "w") as fh:
                fh.write(self.old)
            self.restored = True


def read_int(path):
    with open(path) as fh:
        return int(fh.read().strip())


# ---------------------------------------------------------------- helpers: daemons

class Daemon:
    """One daemon process started by us. `tool` is "rsync"/"mirror" (our clsync in that
    mode), "lsyncd" or "clsync-c" (Debian's C clsync 0.4.5). Stopped by its PID only."""

    def __init__(self, ctx, tool, src, dst, delay="0s", initial_sync=True, peer_delay=0,
                 workers=None):
        self.ctx, self.tool, self.src, self.dst = ctx, tool, src, dst
        self.workers = workers  # our clsync: the job's `workers` (None: its default)
        self.peer_delay = peer_delay  # lsyncd's `delay` in seconds (our `delay` is not passed to peers)
        self.work = tempfile.mkdtemp(prefix=f"d-{tool}-", dir=ctx.tmp)
        self.log_path = os.path.join(self.work, "log")
        self.calls_path = os.path.join(self.work, "rsync-calls")
        self.wrapper = os.path.join(self.work, "rsync-wrapper.sh")
        with open(self.wrapper, "w") as fh:
            # The daemon's start-up questions to its rsync (--version, the probe) are not
            # batches: not counted.
            fh.write(f'#!/bin/sh\ncase "$*" in --version|*/clsync-probe.*) exec {RSYNC} "$@";; esac\n'
                     f'echo x >> "{self.calls_path}"\nexec {RSYNC} "$@"\n')
        os.chmod(self.wrapper, 0o755)
        open(self.calls_path, "w").close()
        self.cmd = self._command(delay, initial_sync)
        self.proc = None

    def _command(self, delay, initial_sync):
        if self.tool in ("rsync", "mirror"):
            cfg = os.path.join(self.work, "cfg")
            os.makedirs(os.path.join(cfg, "jobs.d"))
            with open(os.path.join(cfg, "clsync.toml"), "w") as fh:
                fh.write(f'[daemon]\nsocket = "{self.work}/ctl.sock"\n')
            with open(os.path.join(cfg, "jobs.d", "bench.toml"), "w") as fh:
                # The wrapper counts calls outside the job's trees: the sandbox must let it.
                sandbox = "false" if self.ctx.args.no_sandbox else '"auto"'
                fh.write(f'source = "{self.src}"\ndestination = "{self.dst}"\n'
                         f'mode = "{self.tool}"\ndelay = "{delay}"\n'
                         f'initial_sync = {"true" if initial_sync else "false"}\n'
                         + (f'workers = {self.workers}\n' if self.workers else '') +
                         f'sandbox = {sandbox}\nsandbox_write = ["{self.calls_path}"]\n'
                         f'[rsync]\npath = "{self.wrapper}"\n')
            return [self.ctx.bin, "run", "--config-dir", cfg]
        # Peers, configured as in the peer benchmark (delay 0 everywhere).
        if self.tool == "lsyncd":
            conf = os.path.join(self.work, "lsyncd.conf.lua")
            with open(conf, "w") as fh:
                fh.write('settings { nodaemon = true, }\n'
                         'sync {\n  default.rsync,\n'
                         f'  source = "{self.src}", target = "{self.dst}",\n'
                         f'  delay = {self.peer_delay:g}, delete = true,\n'
                         f'  rsync = {{ binary = "{self.wrapper}", archive = true,'
                         ' protect_args = true },\n}\n')
            return ["/usr/bin/lsyncd", conf]
        if self.tool == "clsync-c":
            lists = os.path.join(self.work, "clsync-lists")
            os.mkdir(lists, 0o700)
            return ["/usr/bin/clsync", "-H", "/NULL/", "-M", "rsyncdirect", "-W", self.src,
                    "-D", self.dst, "-S", self.wrapper, "-L", lists, "-u", "0", "-g", "0",
                    "-w", "0", "-t", "0", "-T", "0", "-x", "23", "-x", "24"]
        raise ValueError(self.tool)

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.log = open(self.log_path, "wb")
        self.t_start = now()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.ctx.live.append(self)
        return self

    def ready_seen(self):
        """Our clsync logged readiness (peers: always True, they have no such line)."""
        return self.tool not in ("rsync", "mirror") or bool(READY_RE.search(self.log_text()))

    def log_text(self):
        with open(self.log_path, "rb") as fh:
            return fh.read()

    def wait_ready(self, timeout):
        """Our clsync: wait for the readiness log line (20 ms polls); returns seconds since start.
        Peers have no such line: wait until DST is consistent instead."""
        if self.tool not in ("rsync", "mirror"):
            r = wait_consistent(self.src, self.dst, self.t_start, timeout)
            if r["t"] is None:
                raise BenchError(f"{self.tool} never became consistent ({r['diffs']} diffs)")
            return r["t"]
        deadline = self.t_start + timeout
        while now() < deadline:
            if READY_RE.search(self.log_text()):
                return now() - self.t_start
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise BenchError(f"{self.tool} not ready (rc={self.proc.poll()}):\n"
                         + self.log_text()[-2000:].decode(errors="replace"))

    def calls(self):
        with open(self.calls_path) as fh:
            return len(fh.readlines())

    def cpu(self):
        return proc_cpu(self.pid)

    def stop(self):
        """SIGTERM the PID, wait, then SIGKILL it and its own process group (created by us)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        finally:
            try:  # leftover helpers (rsync) in the session we created for this daemon
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.log.close()
            if self in self.ctx.live:
                self.ctx.live.remove(self)


class JobsDaemon(Daemon):
    """One daemon running many jobs: `pairs` is a list of (name, src, dst). Our clsync (mirror
    mode): one jobs.d/NAME.toml per pair, written as Daemon._command writes its one job; lsyncd:
    one sync{} block per pair in one config."""

    def __init__(self, ctx, tool, pairs, delay="0s"):
        self.pairs = pairs
        super().__init__(ctx, tool, None, None, delay=delay)

    def _command(self, delay, initial_sync):
        if self.tool == "mirror":
            self.cfg = os.path.join(self.work, "cfg")
            os.makedirs(os.path.join(self.cfg, "jobs.d"))
            with open(os.path.join(self.cfg, "clsync.toml"), "w") as fh:
                fh.write(f'[daemon]\nsocket = "{self.work}/ctl.sock"\n')
            for name, src, dst in self.pairs:
                with open(os.path.join(self.cfg, "jobs.d", f"{name}.toml"), "w") as fh:
                    fh.write(f'source = "{src}"\ndestination = "{dst}"\n'
                             f'mode = "{self.tool}"\ndelay = "{delay}"\n'
                             f'initial_sync = {"true" if initial_sync else "false"}\n'
                             f'[rsync]\npath = "{self.wrapper}"\n')
            return [self.ctx.bin, "run", "--config-dir", self.cfg]
        if self.tool == "lsyncd":
            conf = os.path.join(self.work, "lsyncd.conf.lua")
            with open(conf, "w") as fh:
                fh.write('settings { nodaemon = true, }\n')
                for _, src, dst in self.pairs:
                    fh.write('sync {\n  default.rsync,\n'
                             f'  source = "{src}", target = "{dst}",\n'
                             '  delay = 0, delete = true,\n'
                             f'  rsync = {{ binary = "{self.wrapper}", archive = true,'
                             ' protect_args = true },\n}\n')
            return ["/usr/bin/lsyncd", conf]
        raise ValueError(self.tool)

    def log_has(self, needle):
        """`needle` is in the log (reads only what was appended since the last call)."""
        if not hasattr(self, "_log_pos"):
            self._log_pos, self._log_tail = 0, b""
        with open(self.log_path, "rb") as fh:
            fh.seek(self._log_pos)
            new = fh.read()
        self._log_pos += len(new)
        buf = self._log_tail + new
        if needle in buf:
            return True
        self._log_tail = buf[-len(needle):]
        return False


class Ctx:
    def __init__(self, args, sizes):
        self.args, self.s = args, sizes
        self.bin = args.bin
        self.tmp = tempfile.mkdtemp(prefix="clsync-bench-", dir=args.tmpdir)
        self.live = []
        self.rng = random.Random(args.seed)
        self.rows = []      # summary rows
        self.details = []   # (workload, text)
        self.notes = []

    def modes(self):
        return ["rsync", "mirror"]

    def peers(self):
        return ["lsyncd", "clsync-c"] if self.args.peers else []

    def fresh(self, name):
        """A new empty per-run directory under the one temp dir."""
        return tempfile.mkdtemp(prefix=name + "-", dir=self.tmp)

    def daemon(self, tool, src, dst, **kw):
        return Daemon(self, tool, src, dst, **kw).start()

    def stop_all(self):
        for d in list(self.live):
            d.stop()


# ---------------------------------------------------------------- stats / rows

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def p90(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def fmt(x, unit="s", nd=3):
    if x is None:
        return "–"
    if unit == "ms":
        return f"{x * 1000:.1f} ms"
    if unit == "s":
        return f"{x:.{nd}f} s"
    if unit == "MB":
        return f"{x:.1f} MB"
    return f"{x:g}{unit}"


def row(ctx, workload, tool, metric, value, ref=None, target=None, met=None, runs="", unit="s"):
    ratio = f"{value / ref:.2f}×" if value is not None and ref else "–"
    status = "" if met is None else ("met" if met else "**MISSED**")
    ctx.rows.append([workload, tool, metric, fmt(value, unit), fmt(ref, unit) if ref else "–",
                     ratio, target or "", status, runs])


def runs_str(xs, unit="s"):
    return ", ".join("fail" if x is None else (f"{x * 1000:.1f}" if unit == "ms" else f"{x:.3f}")
                     for x in xs)


# ---------------------------------------------------------------- workloads

def w_initial(ctx):
    """1. Initial sync of 50k files / 2.5k dirs: daemon start to consistent DST."""
    s = ctx.s
    src = ctx.fresh("init-src")
    rels = make_tree(src, s["initial_files"], s["initial_dirs"], ctx.rng)
    # The mirror twice, in the same run: walked by one thread, and by one per core
    # (its `workers`; target: the tool's start→consistent over plain rsync's time).
    cores = os.cpu_count() or 1
    mirrors = {"mirror, 1 worker": ("mirror", 1, 0.8),
               f"mirror, {cores} workers": ("mirror", cores, 0.5)}
    # rsync mode with its default `workers` (a full sync in parts, one per core up to 2),
    # and as one rsync run: what the parts buy (no target of its own).
    if "rsync" in ctx.modes():
        mirrors = {"rsync, 1 worker": ("rsync", 1, None), **mirrors}
    modes = [m for m in ctx.modes() if m != "mirror"] + list(mirrors)
    tools = ["ref-rsync", "ref-cp"] + modes + ctx.peers()
    res = {t: [] for t in tools}
    extra = {t: [] for t in tools}
    for _ in range(ctx.args.runs):
        for tool in tools:
            dst = os.path.join(ctx.fresh("init-dst"), "d")
            os.sync()
            if tool == "ref-rsync":
                res[tool].append(timed([RSYNC, "-a", src + "/", dst + "/"]))
            elif tool == "ref-cp":
                res[tool].append(timed(["cp", "-a", src, dst]))
            else:
                os.mkdir(dst)
                mode, workers, _ = mirrors.get(tool, (tool, None, None))
                d = ctx.daemon(mode, src, dst, workers=workers)
                try:
                    gate = Gate(src, dst, sample(rels, 40, ctx.rng), also=d.ready_seen)
                    r = wait_consistent(src, dst, d.t_start, s["timeout"], gate)
                    res[tool].append(r["t"])
                    cpu, ccpu = d.cpu()
                    _, hwm = proc_mem(d.pid)
                    extra[tool].append((r.get("check"), cpu, ccpu, hwm, d.calls()))
                finally:
                    d.stop()
            rmtree(os.path.dirname(dst))
    ref = med(res["ref-rsync"])
    lines = ["| tool | median | runs (s) | check s | daemon CPU s | rsync CPU s | daemon VmHWM MB | rsync calls |",
             "|---|---|---|---|---|---|---|---|"]
    for tool in tools:
        m = med(res[tool])
        ex = extra[tool]
        cols = ["–"] * 5 if not ex else [
            f"{med([e[0] for e in ex]) or 0:.2f}", f"{med([e[1] for e in ex]):.2f}",
            f"{med([e[2] for e in ex]):.2f}", f"{med([e[3] for e in ex]):.1f}",
            str(max(e[4] for e in ex))]
        lines.append(f"| {tool} | {fmt(m)} | {runs_str(res[tool])} | " + " | ".join(cols) + " |")
        if tool == "ref-rsync":
            row(ctx, "1 initial", tool, "time", m, runs=runs_str(res[tool]))
        elif tool == "ref-cp":
            row(ctx, "1 initial", tool, "time", m, ref, runs=runs_str(res[tool]))
        else:
            lim = {"rsync": 1.05}.get(tool) or mirrors.get(tool, (None, None, None))[2]
            ok = None if lim is None else (None not in res[tool] and m <= lim * ref)
            row(ctx, "1 initial", tool, "start→consistent", m, ref,
                f"≤ {lim}× rsync" if lim else None, ok, runs_str(res[tool]))
    ctx.details.append(("1. Initial sync", f"{s['initial_files']:,} files in {s['initial_dirs']:,} dirs, "
                        "time from daemon start to the start of the first passing check "
                        "(the check's own duration is in *check s*).", lines))
    rmtree(src)


def w_latency(ctx):
    """2. Single-change latency with delay 0s: append 31 bytes, poll the DST file every 1 ms."""
    s = ctx.s
    src = ctx.fresh("lat-src")
    rels = make_tree(src, s["latency_files"], max(1, s["latency_files"] // 20), ctx.rng)
    tools = ctx.modes() + ctx.peers()
    res, extra = {}, {}
    # reference: one `rsync -a SRC/file DST/file` per change
    dst = ctx.fresh("lat-dst")
    subprocess.run([RSYNC, "-a", src + "/", dst + "/"], check=True)
    ref, ref_vis = [], []
    for _ in range(s["latency_repeats"]):
        rel = ctx.rng.choice(rels)
        sp, dp = os.path.join(src, rel), os.path.join(dst, rel)
        with open(sp, "ab") as fh:
            fh.write(ctx.rng.randbytes(31))
        size = os.stat(sp).st_size
        time.sleep(0.2)
        t0 = now()
        p = subprocess.Popen([RSYNC, "-a", sp, dp])
        vis = None
        while p.poll() is None:
            if vis is None and os.stat(dp).st_size == size:
                vis = now() - t0
            time.sleep(0.001)
        ref.append(now() - t0)
        ref_vis.append(vis if vis is not None else ref[-1])
        if p.returncode != 0:
            raise BenchError(f"rsync of {rel} failed")
    rmtree(dst)
    for tool in tools:
        dst = ctx.fresh("lat-dst")
        d = ctx.daemon(tool, src, dst, delay="0s")
        lat = []
        try:
            d.wait_ready(s["timeout"])
            if tool == "clsync-c":
                time.sleep(1.5)  # C clsync reads no events during its first ~1.05 s
            c0, calls0 = d.cpu()[0], d.calls()
            for _ in range(s["latency_repeats"]):
                time.sleep(s["latency_idle"])
                rel = ctx.rng.choice(rels)
                sp, dp = os.path.join(src, rel), os.path.join(dst, rel)
                payload = ctx.rng.randbytes(31)
                with open(sp, "rb") as fh:
                    want = fh.read() + payload
                t0 = now()
                with open(sp, "ab") as fh:
                    fh.write(payload)
                deadline = t0 + 10
                got = None
                while now() < deadline:
                    try:
                        if os.stat(dp).st_size == len(want):
                            with open(dp, "rb") as fh:
                                if fh.read() == want:
                                    got = now() - t0
                                    break
                    except FileNotFoundError:
                        pass
                    time.sleep(0.001)
                lat.append(got)
            extra[tool] = (d.cpu()[0] - c0, d.calls() - calls0)
        finally:
            d.stop()
        res[tool] = lat
        rmtree(dst)
    refm = med(ref)
    row(ctx, "2 latency", "ref rsync 1 file", "median", refm, unit="ms",
        runs=f"p90 {fmt(p90(ref), 'ms')}; file visible after {fmt(med(ref_vis), 'ms')}")
    lines = ["| tool | median | p90 | min | max | misses | rsync calls | daemon CPU s |",
             "|---|---|---|---|---|---|---|---|",
             f"| rsync -a one file | {fmt(refm, 'ms')} | {fmt(p90(ref), 'ms')} | {fmt(min(ref), 'ms')} | "
             f"{fmt(max(ref), 'ms')} | 0 | 1 per change | – |",
             f"| rsync -a one file: DST file visible | {fmt(med(ref_vis), 'ms')} | {fmt(p90(ref_vis), 'ms')} | "
             f"{fmt(min(ref_vis), 'ms')} | {fmt(max(ref_vis), 'ms')} | 0 | – | – |"]
    vis = med(ref_vis)
    row(ctx, "2 latency", "ref rsync 1 file", "DST file visible", vis, unit="ms",
        runs=f"p90 {fmt(p90(ref_vis), 'ms')}")
    peer = med(res["lsyncd"]) if "lsyncd" in res and None not in res["lsyncd"] else None
    for tool in tools:
        xs = res[tool]
        m, p = med(xs), p90(xs)
        miss = sum(x is None for x in xs)
        ok_xs = [x for x in xs if x is not None]
        lines.append(f"| {tool} | {fmt(m, 'ms')} | {fmt(p, 'ms')} | {fmt(min(ok_xs) if ok_xs else None, 'ms')} | "
                     f"{fmt(max(ok_xs) if ok_xs else None, 'ms')} | {miss} | {extra[tool][1]} | {extra[tool][0]:.2f} |")
        if tool == "rsync":
            # Against what a bare rsync of the file takes to make it visible (its exit comes
            # ~40 ms later: rsync's own shutdown), and against lsyncd in the same run.
            met = miss == 0 and m <= 1.15 * vis and (peer is None or m <= peer)
            target = "≤ 1.15× bare rsync (visible)" + (", ≤ lsyncd" if peer is not None else "")
            row(ctx, "2 latency", tool, "median", m, vis, target, met,
                f"p90 {fmt(p, 'ms')}" + (f"; lsyncd {fmt(peer, 'ms')}" if peer is not None else ""), unit="ms")
        elif tool == "mirror":
            row(ctx, "2 latency", tool, "median", m, vis, "≤ 2 ms", miss == 0 and m <= 0.002,
                f"p90 {fmt(p, 'ms')}", unit="ms")
        else:
            row(ctx, "2 latency", tool, "median", m, vis, runs=f"p90 {fmt(p, 'ms')}", unit="ms")
    ctx.details.append(("2. Single-change latency", f"delay 0s, {s['latency_files']:,}-file tree, "
                        f"{s['latency_repeats']} appends of 31 bytes, each after {s['latency_idle']} s idle; "
                        "time until the DST file has the new content (1 ms polls). Reference: wall time of "
                        "`rsync -a SRC/f DST/f` until it exits (includes fork/exec), and until the DST file has the new size.", lines))
    rmtree(src)


def burst(root, dirs, per_dir, rng):
    t0 = now()
    write_files(root, dirs, per_dir, rng, prefix="new")
    return now() - t0


def w_burst(ctx):
    """3. Burst of 10k files in 100 new dirs on top of 1k files, delay 100ms."""
    s = ctx.s
    per = s["burst_files"] // s["burst_dirs"]
    tools = ["ref"] + ctx.modes() + ctx.peers()
    res = {t: [] for t in tools}
    extra = {t: [] for t in tools}
    for _ in range(ctx.args.runs):
        for tool in tools:
            src, dst = ctx.fresh("burst-src"), ctx.fresh("burst-dst")
            make_tree(src, s["burst_base"], max(1, s["burst_base"] // 100), ctx.rng)
            os.sync()
            if tool == "ref":
                bt = burst(src, s["burst_dirs"], per, ctx.rng)
                res[tool].append(timed([RSYNC, "-a", src + "/", dst + "/"]))
                extra[tool].append((bt, None, None, 1))
            else:
                d = ctx.daemon(tool, src, dst, delay="100ms")
                try:
                    d.wait_ready(s["timeout"])
                    time.sleep(1.5)  # idle before the action (C clsync reads no events in its first ~1.05 s)
                    (c0, cc0), calls0 = d.cpu(), d.calls()
                    t0 = now()
                    bt = burst(src, s["burst_dirs"], per, ctx.rng)
                    present = [f"new{i:05d}/f{j:05d}" for i in sample(range(s["burst_dirs"]), 20, ctx.rng)
                               for j in (0, per - 1)]
                    r = wait_consistent(src, dst, t0, s["timeout"], Gate(src, dst, present))
                    time.sleep(0.1)
                    c1, cc1 = d.cpu()
                    res[tool].append(r["t"])
                    extra[tool].append((bt, c1 - c0, cc1 - cc0, d.calls() - calls0, r.get("diffs")))
                finally:
                    d.stop()
            rmtree(src)
            rmtree(dst)
    ref = med(res["ref"])
    lines = ["| tool | consistent | median (from burst start) | runs (s) | burst took s | rsync calls | daemon CPU s | rsync CPU s |",
             "|---|---|---|---|---|---|---|---|"]
    for tool in tools:
        xs, ex = res[tool], extra[tool]
        m = med(xs)
        calls = max(e[3] for e in ex)
        cpu = med([e[1] for e in ex]) if tool != "ref" else None
        lines.append(f"| {tool} | {sum(x is not None for x in xs)}/{len(xs)} | {fmt(m)} | {runs_str(xs)} | "
                     f"{med([e[0] for e in ex]):.3f} | {calls} | {fmt(cpu, '')} | "
                     f"{fmt(med([e[2] for e in ex]) if tool != 'ref' else None, '')} |")
        if tool == "ref":
            row(ctx, "3 burst", "ref rsync", "time (after burst)", m, runs=runs_str(xs))
            continue
        ok = None not in xs
        if tool in ("rsync", "mirror"):
            row(ctx, "3 burst", tool, "burst start→consistent", m, ref, "≤ 1.0 s", ok and m <= 1.0, runs_str(xs))
            if tool == "rsync":
                row(ctx, "3 burst", tool, "rsync calls (max)", calls, None, "≤ 4", calls <= 4, unit="")
            row(ctx, "3 burst", tool, "daemon CPU (median)", cpu, None, "≤ 0.3 CPU-s", cpu <= 0.3,
                runs_str([e[1] for e in ex]))
        else:
            row(ctx, "3 burst", tool, "burst start→consistent", m, ref, runs=runs_str(xs))
    ctx.details.append(("3. Burst", f"{s['burst_files']:,} files in {s['burst_dirs']} new dirs on top of "
                        f"{s['burst_base']:,} files, written by an in-process Python loop; our daemon with delay 100ms "
                        "(peers: delay 0). Reference: one `rsync -a` of the finished tree into a fresh DST.", lines))


def w_deletes(ctx):
    """3b. Deletions: every other file of 10k in 100 dirs, and 10 whole dirs, delay 100ms."""
    s = ctx.s
    per = s["deletes_files"] // s["deletes_dirs"]
    tools = ["ref"] + [t for t in ctx.modes() if t == "rsync"]
    res = {t: [] for t in tools}
    calls = {t: [] for t in tools}

    def delete(src):
        for d in range(s["deletes_dirs"]):
            dpath = os.path.join(src, f"d{d:05d}")
            if d % 10 == 0:
                shutil.rmtree(dpath)
                continue
            for f in range(0, per, 2):
                os.unlink(os.path.join(dpath, f"f{f:05d}"))

    for _ in range(ctx.args.runs):
        for tool in tools:
            src, dst = ctx.fresh("del-src"), ctx.fresh("del-dst")
            write_files(src, s["deletes_dirs"], per, ctx.rng)
            os.sync()
            if tool == "ref":
                subprocess.run([RSYNC, "-a", src + "/", dst + "/"], check=True)
                delete(src)
                res[tool].append(timed([RSYNC, "-a", "--delete", src + "/", dst + "/"]))
                calls[tool].append(1)
            else:
                d = ctx.daemon(tool, src, dst, delay="100ms")
                try:
                    d.wait_ready(s["timeout"])
                    time.sleep(0.5)
                    calls0 = d.calls()
                    t0 = now()
                    delete(src)
                    r = wait_consistent(src, dst, t0, s["timeout"])
                    time.sleep(0.1)
                    res[tool].append(r["t"])
                    calls[tool].append(d.calls() - calls0)
                finally:
                    d.stop()
            rmtree(src)
            rmtree(dst)
    ref = med(res["ref"])
    row(ctx, "3b deletes", "ref rsync --delete", "time", ref, runs=runs_str(res["ref"]))
    if "rsync" in res:
        xs = res["rsync"]
        m = med(xs)
        row(ctx, "3b deletes", "rsync", "start→consistent", m, ref, "≤ 1.0 s",
            None not in xs and m is not None and m <= 1.0, runs_str(xs))
        row(ctx, "3b deletes", "rsync", "rsync calls (max)", max(calls["rsync"]), None, unit="")
    ctx.details.append(("3b. Deletions", f"{s['deletes_files'] // 2:,} files deleted across {s['deletes_dirs']} "
                        f"directories and {s['deletes_dirs'] // 10} directories removed whole; our daemon with "
                        f"delay 100ms and rsync {RSYNC}. Reference: one `rsync -a --delete` of the tree afterwards.",
                        []))


def w_rename(ctx):
    """4. Rename of a directory holding 10k files (100 subdirs × 100 files)."""
    s = ctx.s
    tools = ["ref"] + ctx.modes()
    res = {t: [] for t in tools}
    for _ in range(ctx.args.runs):
        for tool in tools:
            src, dst = ctx.fresh("ren-src"), ctx.fresh("ren-dst")
            rels = make_tree(os.path.join(src, "big"), s["rename_files"], 100, ctx.rng)
            make_tree(os.path.join(src, "other"), 100, 1, ctx.rng)
            os.sync()
            if tool == "ref":
                subprocess.run([RSYNC, "-a", src + "/", dst + "/"], check=True)
                os.rename(os.path.join(src, "big"), os.path.join(src, "big2"))
                res[tool].append(timed([RSYNC, "-a", "--delete", src + "/", dst + "/"]))
            else:
                d = ctx.daemon(tool, src, dst, delay="0s")
                try:
                    d.wait_ready(s["timeout"])
                    time.sleep(1.0)
                    present = ["big2"] + ["big2/" + r for r in sample(rels, 20, ctx.rng)]
                    gate = Gate(src, dst, present, absent=["big"])
                    t0 = now()
                    os.rename(os.path.join(src, "big"), os.path.join(src, "big2"))
                    r = wait_consistent(src, dst, t0, s["timeout"], gate, gate_interval=0.002)
                    res[tool].append(r["t"])
                finally:
                    d.stop()
            rmtree(src)
            rmtree(dst)
    ref = med(res["ref"])
    row(ctx, "4 rename", "ref rsync --delete", "time", ref, runs=runs_str(res["ref"]))
    for tool in ctx.modes():
        xs = res[tool]
        m = med(xs)
        if tool == "mirror":
            row(ctx, "4 rename", tool, "rename→consistent", m, ref, "≤ 50 ms", None not in xs and m <= 0.05,
                runs_str(xs))
        else:
            row(ctx, "4 rename", tool, "rename→consistent", m, ref, runs=runs_str(xs))
    ctx.notes.append("Rename: delay 0s; the gate (new name present, old name absent, 20 sampled files) is "
                     "polled every 2 ms, then the full check; the time is the start of the passing check.")


def w_overflow(ctx):
    """5. Overflow recovery: inotify queue of 256 events, then 100k new files."""
    s = ctx.s
    qpath = "/proc/sys/fs/inotify/max_queued_events"
    tools = ["ref"] + ctx.modes()
    res = {t: [] for t in tools}
    extra = {t: [] for t in tools}
    n = s["overflow_dirs"] * s["overflow_per_dir"]
    for _ in range(ctx.args.runs):
        for tool in tools:
            src, dst = ctx.fresh("ovf-src"), ctx.fresh("ovf-dst")
            make_tree(src, 1000, 10, ctx.rng)
            os.sync()
            if tool == "ref":
                t = burst(src, s["overflow_dirs"], s["overflow_per_dir"], ctx.rng)
                res[tool].append(timed([RSYNC, "-a", src + "/", dst + "/"]))
                extra[tool].append((t, None, None))
            else:
                sc = Sysctl(qpath, 256)
                try:
                    d = ctx.daemon(tool, src, dst, delay="100ms")
                    d.wait_ready(s["timeout"])
                finally:
                    sc.restore()
                try:
                    time.sleep(1.0)
                    bt = burst(src, s["overflow_dirs"], s["overflow_per_dir"], ctx.rng)
                    t0 = now()
                    present = [f"new{i:05d}/f{j:05d}" for i in sample(range(s["overflow_dirs"]), 20, ctx.rng)
                               for j in (0, s["overflow_per_dir"] - 1)]
                    r = wait_consistent(src, dst, t0, s["timeout"], Gate(src, dst, present))
                    res[tool].append(r["t"])
                    overflow = b"overflow" in d.log_text().lower()
                    extra[tool].append((bt, overflow, d.calls(), r.get("diffs")))
                finally:
                    d.stop()
            rmtree(src)
            rmtree(dst)
    ref = med(res["ref"])
    row(ctx, "5 overflow", "ref rsync", "time", ref, runs=runs_str(res["ref"]))
    lines = ["| tool | consistent | median (after creation) | runs (s) | creation took s | 'overflow' logged | rsync calls |",
             "|---|---|---|---|---|---|---|"]
    for tool in tools:
        xs, ex = res[tool], extra[tool]
        if tool == "ref":
            lines.append(f"| rsync -a | {len(xs)}/{len(xs)} | {fmt(med(xs))} | {runs_str(xs)} | "
                         f"{med([e[0] for e in ex]):.2f} | – | 1 |")
            continue
        m = med(xs)
        logged = sum(e[1] for e in ex)
        lines.append(f"| {tool} | {sum(x is not None for x in xs)}/{len(xs)} | {fmt(m)} | {runs_str(xs)} | "
                     f"{med([e[0] for e in ex]):.2f} | {logged}/{len(ex)} | {max(e[2] for e in ex)} |")
        ok = None not in xs and m <= 2 * ref and logged == len(ex)
        row(ctx, "5 overflow", tool, "created→consistent", m, ref, "≤ 2× rsync, overflow logged", ok, runs_str(xs))
    ctx.details.append(("5. Overflow recovery", f"max_queued_events = 256 while the daemon starts (restored "
                        f"right after readiness); then {n:,} files in {s['overflow_dirs']} new dirs; time from "
                        "the end of the creation.", lines))


def w_scale(ctx):
    """6. Watch scale: 100k dirs with one file each, rsync mode initial sync."""
    s = ctx.s
    src = ctx.fresh("scale-src")
    ndirs = make_dir_tree(src, s["scale_dirs"], ctx.rng)
    wpath = "/proc/sys/fs/inotify/max_user_watches"
    sc = None
    if read_int(wpath) < ndirs + 20_000:  # headroom for other inotify users of this uid
        sc = Sysctl(wpath, 2 * ndirs)
        ctx.notes.append(f"Watch scale: max_user_watches raised from {sc.old} to {2 * ndirs} and restored.")
    try:
        tools = ["ref", "rsync"]
        res = {t: [] for t in tools}
        mem = []
        for _ in range(ctx.args.runs):
            for tool in tools:
                dst = ctx.fresh("scale-dst")
                os.sync()
                if tool == "ref":
                    res[tool].append(timed([RSYNC, "-a", src + "/", dst + "/"]))
                else:
                    d = ctx.daemon(tool, src, dst)
                    try:
                        r = wait_consistent(src, dst, d.t_start, s["timeout"],
                                            Gate(src, dst, [f"t{t:03d}/s00000/f" for t in range(0, 100, 5)]
                                                 + ["t099/" + sorted(os.listdir(src + "/t099"))[-1] + "/f"],
                                                 also=d.ready_seen))
                        d.wait_ready(s["timeout"])
                        res[tool].append(r["t"])
                        mem.append(proc_mem(d.pid) + (d.cpu()[0], r.get("check")))
                    finally:
                        d.stop()
                rmtree(dst)
    finally:
        if sc:
            sc.restore()
    ref, m = med(res["ref"]), med(res["rsync"])
    rss, hwm = med([x[0] for x in mem]), med([x[1] for x in mem])
    row(ctx, "6 scale", "ref rsync", "time", ref, runs=runs_str(res["ref"]))
    row(ctx, "6 scale", "rsync", "start→consistent", m, ref, "≤ 1.1× rsync",
        None not in res["rsync"] and m <= 1.1 * ref, runs_str(res["rsync"]))
    row(ctx, "6 scale", "rsync", "VmRSS after ready", rss, None, "≤ 10 MB", rss <= 10, f"VmHWM {hwm:.1f} MB",
        unit="MB")
    ctx.notes.append(f"Watch scale: {ndirs:,} dirs; daemon CPU median {med([x[2] for x in mem]):.2f} s; "
                     f"the passing check took {med([x[3] for x in mem]) or 0:.2f} s.")
    rmtree(src)


def w_idle(ctx):
    """7. Idle: CPU and context switches of a ready daemon over a quiet window."""
    s = ctx.s
    src = ctx.fresh("idle-src")
    make_tree(src, s["idle_files"], max(1, s["idle_files"] // 20), ctx.rng)
    daemons = {}
    res = {t: [] for t in ctx.modes()}
    try:
        # Both modes' daemons idle side by side (each on its own DST); nothing touches either.
        for tool in ctx.modes():
            daemons[tool] = ctx.daemon(tool, src, ctx.fresh("idle-dst"), delay="100ms")
        for d in daemons.values():
            d.wait_ready(s["timeout"])
        time.sleep(1.0)
        for _ in range(ctx.args.runs):
            before = {t: (d.cpu()[0], proc_ctxt(d.pid), len(os.listdir(f"/proc/{d.pid}/task")))
                      for t, d in daemons.items()}
            time.sleep(s["idle_wait"])
            for t, d in daemons.items():
                c0, x0, _ = before[t]
                res[t].append((d.cpu()[0] - c0, proc_ctxt(d.pid) - x0, before[t][2]))
    finally:
        for d in daemons.values():
            d.stop()
    for tool, xs in res.items():
        cpu, sw = med([x[0] for x in xs]), med([x[1] for x in xs])
        row(ctx, "7 idle", tool, f"CPU in {s['idle_wait']:g} s", cpu, None, "≤ 0.01 CPU-s", cpu <= 0.01,
            runs_str([x[0] for x in xs]))
        row(ctx, "7 idle", tool, f"ctx switches in {s['idle_wait']:g} s", sw, None, "0 (no periodic wake-ups)",
            sw == 0, f"{', '.join(str(x[1]) for x in xs)} ({xs[0][2]} threads)", unit="")
    rmtree(src)


def new_file_latency(sp, dp, payload, timeout):
    """Write `payload` to the new file SP; seconds until DP has it (2 ms polls), None after `timeout`."""
    t0 = now()
    with open(sp, "wb") as fh:
        fh.write(payload)
    deadline = t0 + timeout
    while now() < deadline:
        try:
            if os.stat(dp).st_size == len(payload):
                with open(dp, "rb") as fh:
                    if fh.read() == payload:
                        return now() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    return None


def w_jobs(ctx):
    """8. Many jobs: N small mirror jobs in one daemon (one jobs.d/*.toml each), stock inotify sysctls."""
    s = ctx.s
    n, k = s["jobs"], s["jobs_changes"]
    max_inst = read_int("/proc/sys/fs/inotify/max_user_instances")
    max_watches = read_int("/proc/sys/fs/inotify/max_user_watches")
    in_use = inotify_instances_of(os.geteuid())
    ctx.notes.append(f"Jobs: stock inotify sysctls, not changed: max_user_instances = {max_inst}, "
                     f"max_user_watches = {max_watches:,}; {in_use} inotify instances of uid {os.geteuid()} "
                     "were already in use by other processes before the workload.")
    if max_inst != 128:
        ctx.notes.append(f"Jobs: max_user_instances is {max_inst} here, not the stock 128 of the issue's target.")
    base = ctx.fresh("jobs-src")
    names = [f"j{i:04d}" for i in range(n)]
    srcs = [os.path.join(base, nm) for nm in names]
    for src in srcs:  # 3 directories (the root, a, a/b), 2 files
        os.makedirs(os.path.join(src, "a", "b"))
        for rel in ("f", "a/b/f"):
            with open(os.path.join(src, rel), "wb") as fh:
                fh.write(ctx.rng.randbytes(ctx.rng.randint(1, 4096)))
    size = [os.stat(os.path.join(src, "a/b/f")).st_size for src in srcs]
    os.sync()
    counter = itertools.count()
    deadline = 2.0  # per change: a missed change (a job not watching) costs this much

    def missing(pairs, todo):
        """Jobs in `todo` whose DST lacks a/b/f (with the source's size)."""
        out = set()
        for i in todo:
            try:
                if os.stat(os.path.join(pairs[i][2], "a/b/f")).st_size == size[i]:
                    continue
            except FileNotFoundError:
                pass
            out.add(i)
        return out

    def changes(pairs, picks):
        """A new 31-byte file in a/ of each picked job, each after latency_idle of quiet."""
        lat = []
        for i in picks:
            time.sleep(s["latency_idle"])
            _, src, dst = pairs[i]
            rel = f"a/new{next(counter):04d}"
            lat.append(new_file_latency(os.path.join(src, rel), os.path.join(dst, rel),
                                        ctx.rng.randbytes(31), deadline))
        return lat

    def settle_and_sample(d, r):
        time.sleep(1.0)
        r["rss"] = proc_mem(d.pid)[0]
        r["threads"], r["fds"], r["inotify"], r["watches"] = proc_counts(d.pid)
        c0, x0 = d.cpu()[0], proc_ctxt(d.pid)
        time.sleep(s["idle_wait"])
        r["cpu"], r["ctxt"] = d.cpu()[0] - c0, proc_ctxt(d.pid) - x0
        r["threads_after"] = len(os.listdir(f"/proc/{d.pid}/task"))

    tools = ["mirror"] + [p for p in ctx.peers() if p in PEERS["jobs"]]
    res = {t: [] for t in ["single"] + tools}
    for _ in range(ctx.args.runs):
        # Reference: the same change in a one-job daemon (job 0's tree).
        dst = os.path.join(ctx.fresh("jobs-dst1"), names[0])
        d = ctx.daemon("mirror", srcs[0], dst, delay="0s")
        try:
            d.wait_ready(s["timeout"])
            time.sleep(1.0)
            res["single"].append(dict(lat=changes([(names[0], srcs[0], dst)], [0] * k)))
        finally:
            d.stop()
        rmtree(os.path.dirname(dst))
        for tool in tools:
            root = ctx.fresh(f"jobs-dst-{tool}")
            pairs = [(nm, src, os.path.join(root, nm)) for nm, src in zip(names, srcs)]
            d = JobsDaemon(ctx, tool, pairs, delay="0s").start()
            r = dict(lat=[])
            try:
                end = d.t_start + s["timeout"]
                todo = set(range(n))
                if tool == "mirror":
                    while not d.log_has(JOBS_READY):
                        if d.proc.poll() is not None or now() > end:
                            raise BenchError(f"{n} jobs: no ready line (rc={d.proc.poll()}):\n"
                                             + d.log_text()[-2000:].decode(errors="replace"))
                        time.sleep(0.01)
                    r["ready"] = now() - d.t_start
                    todo = missing(pairs, todo)
                    r["at_ready"] = n - len(todo)
                    end = now() + s["jobs_grace"]
                r["ready_all"] = None
                while now() < end:
                    todo = missing(pairs, todo)
                    if not todo:
                        r["ready_all"] = now() - d.t_start
                        break
                    time.sleep(0.02)
                r["have"] = n - len(todo)
                if tool == "lsyncd":
                    r["ready"] = r["ready_all"]
                settle_and_sample(d, r)
                r["lat"] = changes(pairs, ctx.rng.sample(range(n), min(k, n)))
                if tool == "mirror":
                    st = []
                    for _ in range(5):
                        t0 = now()
                        p = subprocess.run([ctx.bin, "status", "--config-dir", d.cfg],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                        st.append(now() - t0)
                        if p.returncode not in (0, 4):  # 4: some job failing or retrying
                            raise BenchError(f"clsync status failed ({p.returncode}): {p.stderr.decode()[:200]}")
                    r["status"] = med(st)
                    p = subprocess.run([ctx.bin, "status", "--json", "--config-dir", d.cfg],
                                       capture_output=True)
                    states = collections.Counter(j["state"] for j in json.loads(p.stdout)["jobs"])
                    r["watching"], r["states"] = states.get("watching", 0), states
            finally:
                d.stop()
            res[tool].append(r)
            rmtree(root)
    rmtree(base)

    W = "8 jobs"
    one = [x for r in res["single"] for x in r["lat"]]
    one_m = med(one)

    def lat_row(tool, label, xs, ref):
        ok = [x for x in xs if x is not None]
        row(ctx, W, label, f"new-file latency, {len(xs)} jobs" if tool != "single" else
            f"new-file latency, {len(xs)} changes", med(xs), ref, "≤ 1 job (reported)" if ref else None, None,
            f"max {fmt(max(ok) if ok else None, 'ms')}; misses {len(xs) - len(ok)}/{len(xs)}", unit="ms")

    lat_row("single", "mirror, 1 job", one, None)
    g = lambda tool, key: med([r[key] for r in res[tool]])  # noqa: E731
    idle = f"{s['idle_wait']:g} s"
    for tool in tools:
        rs = res[tool]
        label = f"mirror, {n:,} jobs" if tool == "mirror" else f"lsyncd, {n:,} sync{{}}"
        have = f"{min(r['have'] for r in rs)}/{n} DST with their file"
        at = min(r.get("at_ready", 0) for r in rs)
        if tool == "mirror":
            w_ = g(tool, "watching")
            st = ", ".join(f"{v} {k_}" for k_, v in rs[-1]["states"].most_common())
            row(ctx, W, label, "jobs watching (status)", w_, None, f"{n}/{n}",
                all(r["watching"] == n for r in rs), st, unit="")
            row(ctx, W, label, "start→ready line", g(tool, "ready"), None, f"≤ 1 s, {n}/{n} DST with their file",
                all(r["ready"] <= 1.0 and r["at_ready"] == n for r in rs),
                f"{at}/{n} DST with their file at the line"
                + ("" if at == n else f", {have} within {s['jobs_grace']:g} s")
                + f"; runs {runs_str([r['ready'] for r in rs])}")
        else:
            xs = [r["ready_all"] for r in rs]
            row(ctx, W, label, "start→all DST have their file", med(xs), None, runs=f"{have}; runs {runs_str(xs)}")
        mine = tool == "mirror"
        row(ctx, W, label, "VmRSS once ready", g(tool, "rss"), None, "≤ 40 MB" if mine else None,
            g(tool, "rss") <= 40 if mine else None, unit="MB")
        row(ctx, W, label, "threads once ready", g(tool, "threads"), None, f"≤ {n + 16}" if mine else None,
            all(r["threads"] <= n + 16 for r in rs) if mine else None,
            f"{g(tool, 'threads_after'):g} after the idle window", unit="")
        row(ctx, W, label, "fds once ready", g(tool, "fds"), None, "≤ 64" if mine else None,
            g(tool, "fds") <= 64 if mine else None,
            f"inotify: {g(tool, 'inotify'):g} instances, {g(tool, 'watches'):g} watches", unit="")
        row(ctx, W, label, f"CPU in {idle} idle", g(tool, "cpu"), None, "≤ 0.01 CPU-s" if mine else None,
            g(tool, "cpu") <= 0.01 if mine else None, runs_str([r["cpu"] for r in rs]))
        row(ctx, W, label, f"ctx switches in {idle} idle", g(tool, "ctxt"), None,
            runs=", ".join(str(r["ctxt"]) for r in rs), unit="")
        lat_row(tool, label, [x for r in rs for x in r["lat"]], one_m)
        if mine:
            row(ctx, W, label, "`clsync status` wall time (median of 5)", g(tool, "status"), None, "≤ 200 ms",
                g(tool, "status") <= 0.2, runs_str([r["status"] for r in rs], "ms") + " ms", unit="ms")
    fanout_row(ctx, W)
    ctx.details.append(("8. Many jobs", f"{n:,} mirror jobs in one daemon, one `jobs.d/jNNNN.toml` each "
                        "(delay 0s), each a 3-directory tree (root, a, a/b) with 2 files of 1–4096 bytes, stock "
                        "inotify sysctls. Ready: the daemon's line \"ready: every job finished its initial sync\", "
                        "then every DST must have a/b/f (lsyncd: start until every DST has it, 20 ms polls). After 1 s "
                        "of settling: VmRSS, threads, fds, inotify instances and watches (/proc/PID/fdinfo); CPU and "
                        f"context switches over {idle} of nothing; then a new 31-byte file in a/ of {k} random jobs "
                        f"(each after {s['latency_idle']:g} s idle; 2 ms polls, {deadline:g} s deadline) and, as the "
                        "reference, the same change 10 times in a one-job daemon on job 0's tree; `clsync status "
                        "--config-dir CFG` wall time (a subprocess). lsyncd: one config with one `sync{}` per job "
                        "(default.rsync, delay = 0, the same trees, its own DSTs), settings { nodaemon = true }.", []))


def fanout_row(ctx, W, targets=10, ndirs=200):
    """A job with `targets` local destinations: the kernel watches it holds, against one target's."""
    src = ctx.fresh("fanout-src")
    make_dir_tree(src, ndirs, ctx.rng)
    dsts = [ctx.fresh(f"fanout-dst{i}") for i in range(targets)]
    for d_ in dsts:
        os.rmdir(d_)
    work = tempfile.mkdtemp(prefix="d-fanout-", dir=ctx.tmp)
    cfg = os.path.join(work, "cfg")
    os.makedirs(os.path.join(cfg, "jobs.d"))
    with open(os.path.join(cfg, "clsync.toml"), "w") as fh:
        fh.write(f'[daemon]\nsocket = "{work}/ctl.sock"\n')
    with open(os.path.join(cfg, "jobs.d", "fan.toml"), "w") as fh:
        fh.write(f'source = "{src}"\ndestinations = [{", ".join(json.dumps(d_) for d_ in dsts)}]\n'
                 'mode = "mirror"\ndelay = "0s"\n')
    log = open(os.path.join(work, "log"), "wb")
    p = subprocess.Popen([ctx.bin, "run", "--config-dir", cfg], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = now() + ctx.s["timeout"]
        while now() < deadline and b"ready:" not in open(os.path.join(work, "log"), "rb").read():
            time.sleep(0.02)
        time.sleep(0.5)
        _, _, inst, watches = proc_counts(p.pid)
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()
    dirs = sum(1 for _ in os.walk(src))
    row(ctx, W, f"mirror, 1 job, {targets} local targets", "kernel watches", watches, dirs,
        f"= one target's ({dirs:,} directories)", watches == dirs,
        f"{inst} inotify instance(s); {targets} targets, each its own queue and retry state", unit="")
    for d_ in dsts:
        rmtree(d_)
    rmtree(src)
    rmtree(work)


# ---------------------------------------------------------------- 9. sustained churn

CHURN_MIX = (0.25, 0.60, 0.75)  # cumulative: create 25 %, append 35 %, rename 15 %, delete 25 %


def churn_marker(i, ndirs):
    """Relative path of marker i: spread over every directory (7919 is prime to 10^k)."""
    return f"c{(i * 7919) % ndirs:03d}/m{i:06d}"


def churn_tree(root, ndirs, per_dir, rng):
    """ndirs directories c000… holding per_dir files of 0..1023 bytes; returns their paths."""
    live = []
    for d in range(ndirs):
        dpath = os.path.join(root, f"c{d:03d}")
        os.makedirs(dpath)
        for f in range(per_dir):
            p = os.path.join(dpath, f"b{f}")
            with open(p, "wb") as fh:
                fh.write(rng.randbytes(rng.randint(0, 1023)))
            live.append(p)
    return live


def churn_write(src, ndirs, live, rate, secs, mrate, t0, tick, rng):
    """The writer: from monotonic time t0 for `secs` s, `rate` operations/s (checked against
    the clock every 1 ms; behind schedule it runs flat out, at most 10 ms of operations between
    looks at the clock) drawn from CHURN_MIX on the paths in `live` (updated in place), and
    marker i (a new file holding the time it was written) at t0 + i/mrate; markers count as
    creates. tick(t) is called once a second. Returns counts and the achieved rate."""
    O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    O_APP = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    os_open, os_write, os_close, os_rename, os_unlink = os.open, os.write, os.close, os.rename, os.unlink
    rnd = rng.random
    dirs = [os.path.join(src, f"c{i:03d}") + "/" for i in range(ndirs)]
    payloads = [rng.randbytes(rng.randint(0, 1023)) for _ in range(64)]
    tail = rng.randbytes(31)
    p_create, p_append, p_rename = CHURN_MIX
    n_markers = int(secs * mrate)
    step = max(1, rate // 100)
    counts = dict(create=0, append=0, rename=0, delete=0, markers=0)
    gone = collections.deque(maxlen=20)  # paths deleted or renamed away (absent at the end)
    seq = mi = done = 0
    t_end = t0 + secs
    next_tick = t0
    while now() < t0:
        time.sleep(0.0005)
    while True:
        t = now()
        if t >= t_end:
            break
        while mi < n_markers and t0 + mi / mrate <= t:
            data = b"%.6f\n" % now()
            fd = os_open(src + "/" + churn_marker(mi, ndirs), O_NEW, 0o644)
            os_write(fd, data)
            os_close(fd)
            mi += 1
            done += 1
        if t >= next_tick:
            tick(t)
            next_tick += 1.0
        k = min(int((t - t0) * rate) - done, step)
        for _ in range(k):
            r = rnd()
            n = len(live)
            if r < p_create or n == 0:
                seq += 1
                p = dirs[int(rnd() * ndirs)] + f"f{seq}"
                fd = os_open(p, O_NEW, 0o644)
                os_write(fd, payloads[seq & 63])
                os_close(fd)
                live.append(p)
                counts["create"] += 1
            elif r < p_append:
                fd = os_open(live[int(rnd() * n)], O_APP)
                os_write(fd, tail)
                os_close(fd)
                counts["append"] += 1
            elif r < p_rename:
                i = int(rnd() * n)
                seq += 1
                q = dirs[int(rnd() * ndirs)] + f"f{seq}"
                os_rename(live[i], q)
                gone.append(live[i])
                live[i] = q
                counts["rename"] += 1
            else:
                i = int(rnd() * n)
                p = live[i]
                os_unlink(p)
                live[i] = live[-1]
                live.pop()
                gone.append(p)
                counts["delete"] += 1
        if k > 0:
            done += k
        if k < step:
            time.sleep(0.001)
    t_stop = now()
    while mi < n_markers:  # behind schedule at the end: the remaining markers, late (they say when)
        fd = os_open(src + "/" + churn_marker(mi, ndirs), O_NEW, 0o644)
        os_write(fd, b"%.6f\n" % now())
        os_close(fd)
        mi += 1
        done += 1
    counts["markers"] = n_markers
    return dict(counts=counts, ops=done, secs=t_stop - t0, rate=done / (t_stop - t0), end=now(),
                gone=[os.path.relpath(p, src) for p in gone])


def churn_poll(dst, ndirs, t0, mrate, n_markers, hard_stop, stop, conn):
    """The poller (its own process, SCHED_FIFO if allowed): marker i is expected from
    t0 + i/mrate; each pass (every ~1 ms) checks every pending marker younger than 0.5 s, those
    younger than 5 s every 10th pass, older ones every 100th (the resolution stays ≤ 2 % of the
    lag), with faccessat on a descriptor of its DST directory; a marker
    has arrived when its DST file holds the whole timestamp line. Sends the lags (None: never
    arrived), the gaps between passes and the poller's own CPU time."""
    try:  # wake on time on a busy machine (SCHED_OTHER, even at nice -20, oversleeps by ms);
        # every pass sleeps 1 ms, and its CPU time is reported (*poller CPU-s*)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        pass
    dfds = [os.open(os.path.join(dst, f"c{d:03d}"), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            for d in range(ndirs)]
    where = [((i * 7919) % ndirs, churn_marker(i, ndirs).split("/")[1]) for i in range(n_markers)]
    access, F_OK, O_RD = os.access, os.F_OK, os.O_RDONLY | os.O_CLOEXEC
    lags = [None] * n_markers
    pending, nxt, passes, left = [], 0, 0, n_markers
    gaps, last = [], None
    while left:
        t = now()
        if last is not None:
            gaps.append(t - last)
        last = t
        passes += 1
        if t > hard_stop or (passes % 100 == 0 and stop.is_set()):
            break
        while nxt < n_markers and t0 + nxt / mrate <= t:
            pending.append(nxt)
            nxt += 1
        keep = []
        tier = 0.5 if passes % 10 else 5.0 if passes % 100 else math.inf  # oldest checked every 100th pass
        for i in pending:
            dfd, name = dfds[where[i][0]], where[i][1]
            if t - (t0 + i / mrate) > tier or not access(name, F_OK, dir_fd=dfd):
                keep.append(i)
                continue
            try:
                fd = os.open(name, O_RD, dir_fd=dfd)
            except FileNotFoundError:
                keep.append(i)
                continue
            try:
                data = os.read(fd, 64)
            finally:
                os.close(fd)
            if not data.endswith(b"\n"):  # still being written
                keep.append(i)
                continue
            lags[i] = now() - float(data)
            left -= 1
        pending = keep
        time.sleep(0.001)
    for fd in dfds:
        os.close(fd)
    gaps.sort()
    cpu = os.times()
    conn.send(dict(lags=lags, gap_p99=pct(gaps, 0.99), gap_max=gaps[-1] if gaps else None, cpu=cpu.user + cpu.system))
    conn.close()


def churn_poller(*args):
    """churn_poll in the child process; an exception is sent back, not printed."""
    conn = args[-1]
    try:
        churn_poll(*args)
    except Exception as e:  # noqa: BLE001  (reported by the parent as a BenchError)
        conn.send(dict(error=f"{type(e).__name__}: {e}"))


def pct(xs, q):
    """Nearest-rank percentile of an ascending list (None if empty)."""
    if not xs:
        return None
    return xs[max(0, min(len(xs) - 1, math.ceil(q * len(xs)) - 1))]


def daemon_counts(ctx, d):
    """(handler runs, inotify overflows) so far. Our clsync: clsync_handler_runs_total (every
    result) and clsync_monitor_overflows_total from `clsync metrics`; lsyncd: (None, lines of
    its log that mention an overflow)."""
    if d.tool not in ("rsync", "mirror"):
        return None, d.log_text().lower().count(b"overflow")
    p = subprocess.run([ctx.bin, "metrics", "--socket", os.path.join(d.work, "ctl.sock")],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"clsync metrics failed ({p.returncode}): {p.stderr[:200]}")
    total = collections.Counter()
    for line in p.stdout.splitlines():
        if not line.startswith("#") and "{" in line:
            total[line.split("{", 1)[0]] += float(line.rsplit(None, 1)[1])
    return total["clsync_handler_runs_total"], total["clsync_monitor_overflows_total"]


STOCK_QUEUE = 16384  # fs.inotify.max_queued_events' default
QUEUE_SYSCTL = "/proc/sys/fs/inotify/max_queued_events"


def wait_inotify_queue(timeout):
    """fs.inotify.max_queued_events, after waiting up to `timeout` s for it to be at least the
    stock value: a test elsewhere on the machine may lower it for a moment, and the kernel gives
    each new inotify instance the value of that moment."""
    deadline = now() + timeout
    while True:
        q = read_int(QUEUE_SYSCTL)
        if q >= STOCK_QUEUE or now() >= deadline:
            return q
        time.sleep(0.1)


def churn_run(ctx, tool, rate):
    """One window: fresh trees, a ready daemon, `churn_secs` of writing at `rate`, then wait
    for DST to equal SRC. Returns the measurements."""
    s = ctx.s
    ndirs, secs, mrate = s["churn_dirs"], s["churn_secs"], s["churn_markers"]
    n_markers = int(secs * mrate)
    src, dst = ctx.fresh("churn-src"), ctx.fresh("churn-dst")
    live = churn_tree(src, ndirs, s["churn_per_dir"], ctx.rng)
    os.sync()
    # The daemon's inotify queue gets the stock size even where something else left the
    # sysctl lowered: raised only while the daemon starts (it keeps the value of its
    # inotify_init), then put back.
    queue = wait_inotify_queue(getattr(ctx, "queue_wait", 10.0))
    ctx.queue_wait = 10.0 if queue >= STOCK_QUEUE else 0.0  # still low after 10 s: left so; do not wait again
    raised = None
    if queue < STOCK_QUEUE:
        try:
            raised = Sysctl(QUEUE_SYSCTL, STOCK_QUEUE)
        except OSError:  # not root: the daemon gets the small queue; its overflows are counted
            pass
    d = poller = None
    try:
        dump = ctx.args.churn_dump if tool in ("rsync", "mirror") else None
        level = os.environ.get("CLSYNC_LOG")
        try:
            if dump:  # inherited by the daemon started now, put back at once
                os.environ["CLSYNC_LOG"] = "debug"
            d = ctx.daemon(tool, src, dst, delay="100ms", peer_delay=0.1)
            d.wait_ready(s["timeout"])
        finally:
            if dump:
                if level is None:
                    os.environ.pop("CLSYNC_LOG", None)
                else:
                    os.environ["CLSYNC_LOG"] = level
            if raised is not None:
                raised.restore()
        time.sleep(0.5)
        rss0 = proc_mem(d.pid)[0]
        (runs0, ovf0), calls0 = daemon_counts(ctx, d), d.calls()
        (c0, cc0), q0, load = d.cpu(), proc_runq(d.pid), loadavg().split()[0]
        t0 = now() + 0.2
        mp = multiprocessing.get_context("fork")
        stop = mp.Event()
        rx, tx = mp.Pipe(duplex=False)
        poller = mp.Process(target=churn_poller, args=(dst, ndirs, t0, mrate, n_markers,
                                                      t0 + secs + s["timeout"] + 5, stop, tx), daemon=True)
        poller.start()
        tx.close()
        rss = []
        w = churn_write(src, ndirs, live, rate, secs, mrate, t0,
                        lambda t: rss.append((t - t0, proc_mem(d.pid)[0])), ctx.rng)
        present = [churn_marker(n_markers - 1, ndirs)] + [os.path.relpath(p, src) for p in ctx.rng.sample(live, 20)]
        r = wait_consistent(src, dst, w["end"], s["timeout"], Gate(src, dst, present, w["gone"]))
        stop.set()
        if not rx.poll(15):
            raise BenchError(f"churn {tool} {rate}/s: the marker poller sent nothing")
        res = rx.recv()
        if "error" in res:
            raise BenchError(f"churn {tool} {rate}/s: marker poller: {res['error']}")
        time.sleep(0.2)  # the last handler run is reaped (its CPU is in cutime)
        (c1, cc1), q1, t1 = d.cpu(), proc_runq(d.pid), now()
        rss_end = proc_mem(d.pid)[0]
        (runs1, ovf1), calls1 = daemon_counts(ctx, d), d.calls()
        if dump:  # the daemon's log and every marker's lag, on the wall clock of the log
            os.makedirs(dump, exist_ok=True)
            stem = os.path.join(dump, f"{tool}-{rate}")
            shutil.copyfile(d.log_path, stem + ".log")
            with open(stem + ".json", "w") as fh:
                json.dump(dict(t0_wall=t0 + time.time() - now(), mrate=mrate, lags=res["lags"]), fh)
    finally:
        if poller is not None:  # started by us: ended by its handle, never left polling
            stop.set()
            poller.join(5)
            if poller.is_alive():
                poller.kill()
                poller.join()
        if d is not None:
            d.stop()
        rmtree(src)
        rmtree(dst)
    lags = res["lags"]
    got = sorted(x for x in lags if x is not None)
    fifth = max(1, len(lags) // 5)
    first, last = [x for x in lags[:fifth] if x is not None], [x for x in lags[-fifth:] if x is not None]
    warm = next((v for t, v in rss if t >= s["churn_warmup"]), rss[-1][1] if rss else rss0)
    k = w["ops"] / 1000
    return dict(w=w, consistent=r["t"], diffs=r.get("diffs"), check=r.get("check"),
                n=len(lags), arrived=len(got), p50=pct(got, 0.5), p99=pct(got, 0.99), max=got[-1] if got else None,
                first=med(first), last=med(last), gap_p99=res["gap_p99"], gap_max=res["gap_max"],
                poll_cpu=res["cpu"], cpu=(c1 - c0) / k, hcpu=(cc1 - cc0) / k, load=load,
                runq=None if None in (q0, q1) else (q1 - q0) / (t1 - t0),
                runs=None if runs0 is None else (runs1 - runs0) / w["secs"], calls=(calls1 - calls0) / w["secs"],
                overflows=int(ovf1 - ovf0), queue=queue, raised=raised is not None,
                rss0=rss0, rss_warm=warm, rss_max=max([v for _, v in rss] + [rss_end]), rss_end=rss_end)


def w_churn(ctx):
    """9. Sustained churn: create/append/rename/delete across 1,000 dirs at fixed rates, delay 100ms."""
    s = ctx.s
    W = "9 churn"
    modes = ctx.args.churn_modes.split(",") if ctx.args.churn_modes else ctx.modes()
    tools = [m for m in ctx.modes() if m in modes] + [p for p in ctx.peers() if p in PEERS["churn"]]
    lim = 0.1 + 0.1  # delay + 100 ms
    res = {}
    for rate in s["churn_rates"]:
        for tool in tools:
            res[tool, rate] = churn_run(ctx, tool, rate)
    lines = ["| tool | ops/s asked | achieved | markers arrived | lag p50 | p99 | max | median lag, first → last fifth "
             "| DST consistent after writer stopped | daemon CPU-s / 1k ops | handler CPU-s / 1k ops | handler runs/s "
             "(metrics) | rsync calls/s (wrapper) | RSS start / after warm-up / max / end MB | daemon run-queue wait s/s | load (1 min) | inotify overflows "
             "(max_queued_events) | poll gap p99 / max | poller CPU-s |",
             "|" + "---|" * 19]
    for rate in s["churn_rates"]:
        for tool in tools:
            m = res[tool, rate]
            w = m["w"]
            cons = (f"{m['consistent']:.2f} s" if m["consistent"] is not None
                    else f"**no**: {m['diffs']} diffs after {s['timeout']:g} s")
            lines.append(
                f"| {tool} | {rate:,} | {w['rate']:,.0f} | {m['arrived']}/{m['n']} | {fmt(m['p50'], 'ms')} | "
                f"{fmt(m['p99'], 'ms')} | {fmt(m['max'], 'ms')} | {fmt(m['first'], 'ms')} → {fmt(m['last'], 'ms')} | "
                f"{cons} | {m['cpu']:.3f} | {m['hcpu']:.3f} | {'–' if m['runs'] is None else round(m['runs'], 1)} | "
                f"{m['calls']:.1f} | {m['rss0']:.1f} / {m['rss_warm']:.1f} / {m['rss_max']:.1f} / {m['rss_end']:.1f} | "
                f"{'–' if m['runq'] is None else round(m['runq'], 2)} | {m['load']} | {m['overflows']} ({m['queue']}) | "
                f"{fmt(m['gap_p99'], 'ms')} / {fmt(m['gap_max'], 'ms')} | {'–' if m['poll_cpu'] is None else round(m['poll_cpu'], 2)} |")
            rl = f"{rate:,} ops/s" if w["rate"] >= 0.98 * rate else f"{w['rate']:,.0f} ops/s ({rate:,} asked)"
            ok_dst = m["consistent"] is not None
            mine = tool in ("rsync", "mirror")
            c = w["counts"]
            note = (f"p50 {fmt(m['p50'], 'ms')}, max {fmt(m['max'], 'ms')}, median first → last fifth "
                    f"{fmt(m['first'], 'ms')} → {fmt(m['last'], 'ms')}; markers {m['arrived']}/{m['n']} (poll gap p99 "
                    f"{fmt(m['gap_p99'], 'ms')}, poller {'–' if m['poll_cpu'] is None else round(m['poll_cpu'], 2)} CPU-s); "
                    f"writer {w['rate']:,.0f} ops/s ({c['create'] + c['markers']:,} creates, {c['append']:,} appends, "
                    f"{c['rename']:,} renames, {c['delete']:,} deletes); inotify overflows {m['overflows']}"
                    + ("" if m["queue"] >= STOCK_QUEUE else
                       f" (max_queued_events raised from {m['queue']} to {STOCK_QUEUE} for the daemon's start)"
                       if m["raised"] else f" (its queue: max_queued_events = {m['queue']}, could not raise it)")
                    + "; DST "
                    + (f"consistent {m['consistent']:.2f} s after the writer stopped" if ok_dst
                       else f"NOT consistent ({m['diffs']} diffs after {s['timeout']:g} s)"))
            row(ctx, W, tool, f"p99 lag, {rl}", m["p99"], None, "≤ delay + 100 ms = 200 ms" if mine else None,
                (ok_dst and m["arrived"] == m["n"] and m["p99"] <= lim) if mine else None, note, unit="ms")
            runs = f"{m['runs']:.1f} handler runs/s (metrics), " if m["runs"] is not None else ""
            row(ctx, W, tool, f"CPU-s per 1k ops, {rl}", m["cpu"] + m["hcpu"], None, "reported" if mine else None,
                None, f"daemon {m['cpu']:.3f} + handler {m['hcpu']:.3f}; {runs}{m['calls']:.1f} rsync calls/s; "
                f"the daemon's threads waited {'–' if m['runq'] is None else round(m['runq'], 2)} s/s for a CPU "
                f"(load {m['load']})")
            row(ctx, W, tool, f"RSS max, {rl}", m["rss_max"], None, "≤ 1.2× after warm-up" if mine else None,
                m["rss_max"] <= 1.2 * m["rss_warm"] if mine else None,
                f"start {m['rss0']:.1f}, after {s['churn_warmup']:g} s {m['rss_warm']:.1f}, end {m['rss_end']:.1f} MB",
                unit="MB")
    low = sorted({m["queue"] for m in res.values() if m["queue"] < STOCK_QUEUE})
    if low:
        raised = all(m["raised"] for m in res.values() if m["queue"] < STOCK_QUEUE)
        ctx.notes.append(f"Churn: fs.inotify.max_queued_events was {', '.join(map(str, low))}, not the stock "
                         f"{STOCK_QUEUE}, 10 s before some daemons started (something else on the machine lowered "
                         "it); " + (f"it was set to {STOCK_QUEUE} while each of them started and then put back."
                                    if raised else "it could not be raised (not root): their queues were that small."))
    ctx.details.append((
        "9. Sustained churn",
        f"{s['churn_dirs']:,} directories holding {s['churn_per_dir']} files each; our daemon with delay 100ms "
        "(lsyncd: delay = 0.1). For each rate, a fresh tree and a fresh daemon; once it is ready (+0.5 s), a Python "
        f"writer runs for {s['churn_secs']:g} s: create 25 % (0–1023 bytes), append 31 bytes 35 %, rename to a "
        "new name in a random directory 15 %, delete 25 %, and a marker file (a new file holding its write time) "
        f"{s['churn_markers']} times a second in every directory in turn, counted as creates. A poller process "
        "(SCHED_FIFO) checks each pending marker's DST path every ~1 ms (markers older than 0.5 s every ~10 ms, "
        "older than 5 s every ~100 ms) "
        "and records the lag when the file holds the whole line; *poll gap* is its achieved resolution, *poller "
        "CPU-s* what it cost. Lag = arrival − the time written in the marker. CPU: utime+stime of the "
        "daemon (every thread; mirror's copies are in-process) and its reaped children's cutime+cstime (rsync), "
        "from the writer's start until DST is consistent, per 1,000 operations done. RSS: VmRSS before the writer, "
        f"every second while it runs (the value at {s['churn_warmup']:g} s is the warm-up reference) and once "
        "consistent. Handler runs from `clsync metrics` (clsync_handler_runs_total); rsync calls from the wrapper. "
        "*Run-queue wait*: seconds per second the daemon's threads were runnable without a CPU (schedstat, "
        "summed over threads): well above 0 means the machine, not the daemon, set the pace. *inotify overflows*: "
        "clsync_monitor_overflows_total (lsyncd: log lines naming an overflow) over the window; each is a "
        "rescan and a full sync. Before each daemon starts, the workload waits (up to 10 s; not again once it waited "
        "in vain) for "
        f"fs.inotify.max_queued_events ≥ {STOCK_QUEUE} (tests elsewhere lower it for a moment), else sets it "
        f"to {STOCK_QUEUE} until the daemon is ready and puts the old value (shown in brackets) back.",
        lines))


FUNCS = dict(initial=w_initial, latency=w_latency, burst=w_burst, deletes=w_deletes, rename=w_rename,
             overflow=w_overflow, scale=w_scale, idle=w_idle, jobs=w_jobs, churn=w_churn)


# ---------------------------------------------------------------- report

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def machine(ctx):
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    fs = sh(f"stat -f -c %T {os.path.dirname(ctx.tmp)}")
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    return (f"{sh('nproc')} CPUs ({cpu}), {mem} RAM, "
            f"kernel {sh('uname -r')}, temp dir {os.path.dirname(ctx.tmp)} on {fs}, "
            f"{' '.join(sh(f'{RSYNC} --version | head -1').split())}")


def loadavg():
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def report(ctx, elapsed, desc):
    commit = sh(f"git -C {REPO} rev-parse --short HEAD") + (" (dirty)" if sh(f"git -C {REPO} status --porcelain -- src Cargo.toml Cargo.lock") else "")
    head = ["| workload | tool | metric | median | reference | ratio | target | status | runs / notes |",
            "|---|---|---|---|---|---|---|---|---|"]
    table = "\n".join(head + ["| " + " | ".join(str(c) for c in r) + " |" for r in ctx.rows])
    out = [
        "# clsync benchmark results", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {commit}",
        f"- machine: {desc}",
        f"- load average (1/5/15 min) at start: {ctx.load0}; at end: {loadavg()} "
        "(other work on the machine shows up as spread between runs: compare within one run)",
        f"- command: `python3 bench/bench.py {' '.join(sys.argv[1:])}` (runs per figure: {ctx.args.runs}); "
        f"suite took {elapsed:.0f} s",
        "",
        "Times are medians. *ratio* is median / reference. Consistency = `rsync -anci --delete SRC/ DST/` prints "
        "nothing; times end at the start of the first passing check (a cheap gate is polled every "
        "20 ms before it: sampled paths, including the last ones in rsync's order, match, and for our daemon in "
        "workloads 1 and 6 its readiness line has been logged), the check's own cost is not subtracted from anything and is listed where it matters.",
        "", table, ""]
    for title, intro, lines in ctx.details:
        out += [f"## {title}", "", intro, ""] + lines + [""]
    if ctx.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in ctx.notes] + [""]
    return table, "\n".join(out)


def build(args):
    if args.bin:
        return os.path.abspath(args.bin)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    print(f"building release binary (target dir {target}) ...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    return os.path.join(target, "release", "clsync")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run, small sizes (CI smoke; does not write RESULTS.md)")
    ap.add_argument("--only", help=f"comma-separated workloads: {','.join(WORKLOADS)}")
    ap.add_argument("--runs", type=int, help="runs per figure (default 3; --quick: 1)")
    ap.add_argument("--peers", action="store_true", help="also run lsyncd and Debian's C clsync (workloads 1-3; jobs, churn: lsyncd only)")
    ap.add_argument("--bin", help="use this clsync binary instead of building")
    ap.add_argument("--rsync", help="the rsync for the daemons and the references (default: PATH's)")
    ap.add_argument("--tmpdir", default="/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(), help="parent of the one temp dir (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    ap.add_argument("--no-sandbox", action="store_true", help="run the daemon's jobs with sandbox = false (what the Landlock sandbox costs)")
    ap.add_argument("--churn-rates", help="churn: comma-separated rates in operations/s instead of the default ones")
    ap.add_argument("--churn-modes", help="churn: comma-separated modes of ours to run (rsync, mirror; default both)")
    ap.add_argument("--churn-secs", type=float, help="churn: seconds of writing per window instead of 60 (--quick: 7)")
    ap.add_argument("--churn-dump", metavar="DIR", help="churn: keep each window's daemon log (debug level) and marker "
                    "lags in DIR (diagnosis: the log level costs the daemon a little)")
    args = ap.parse_args()
    if args.rsync:
        global RSYNC
        RSYNC = os.path.abspath(args.rsync)
    args.runs = args.runs or (1 if args.quick else 3)
    only = args.only.split(",") if args.only else WORKLOADS
    for w in only:
        if w not in FUNCS:
            ap.error(f"unknown workload {w!r}; choose from {','.join(WORKLOADS)}")
    if args.peers:
        need = sorted({PEER_BIN[p] for w in only for p in PEERS.get(w, ())})
        missing = [p for p in need if not os.access(p, os.X_OK)]
        if missing:
            ap.error(f"--peers needs {' and '.join(missing)} (apt-get install -y lsyncd clsync)")
    if os.geteuid() != 0 and any(w in only for w in ("overflow", "scale")):
        print("warning: overflow/scale change /proc/sys/fs/inotify values and need root", file=sys.stderr)
    args.bin = build(args)
    ctx = Ctx(args, dict(QUICK if args.quick else FULL))
    if args.churn_rates:
        ctx.s["churn_rates"] = tuple(int(r) for r in args.churn_rates.split(","))
    if args.churn_secs:
        ctx.s["churn_secs"] = args.churn_secs
        ctx.s["churn_warmup"] = min(ctx.s["churn_warmup"], args.churn_secs / 2)
    ctx.load0 = loadavg()
    desc = machine(ctx)
    t0 = now()
    failed = []
    try:
        for w in only:
            print(f"== {w}", file=sys.stderr, flush=True)
            tw = now()
            try:
                FUNCS[w](ctx)
            except BenchError as e:
                failed.append(w)
                ctx.rows.append([w, "", "ERROR", str(e).splitlines()[0][:120], "", "", "", "**ERROR**", ""])
            finally:
                ctx.stop_all()
            print(f"   {w} took {now() - tw:.1f} s", file=sys.stderr, flush=True)
    finally:
        ctx.stop_all()
        rmtree(ctx.tmp)
    table, text = report(ctx, now() - t0, desc)
    print(table)
    for n in ctx.notes:  # also when RESULTS.md is not written
        print(f"note: {n}", file=sys.stderr)
    print(f"\nsuite took {now() - t0:.1f} s", file=sys.stderr)
    if not (args.quick or args.no_write or args.only):
        with open(os.path.join(HERE, "RESULTS.md"), "w") as fh:
            fh.write(text)
        print(f"wrote {os.path.join(HERE, 'RESULTS.md')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
