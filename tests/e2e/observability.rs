//! Logging targets and metrics, against the real daemon: journald and syslog are datagram
//! sockets that the test binds in its temp dir (`CLSYNC_JOURNAL_SOCKET`,
//! `CLSYNC_SYSLOG_SOCKET`); metrics are read the three ways they are served (`clsync
//! metrics`, the metrics file, HTTP) and checked with `promtool check metrics` (Debian's
//! `prometheus` package; required when `CI` is set).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ctl::*;
use super::harness::*;

type Entry = HashMap<String, String>;

/// Parses one journald native-protocol datagram: `KEY=value\n` fields, and `KEY\n` + 64-bit
/// little-endian length + bytes + `\n` for values that may hold newlines.
fn parse_entry(b: &[u8]) -> Entry {
    let mut out = Entry::new();
    let mut i = 0;
    while i < b.len() {
        let Some(nl) = b[i..].iter().position(|&c| c == b'\n') else {
            panic!(
                "field without a newline in {:?}",
                String::from_utf8_lossy(b)
            );
        };
        let line = &b[i..i + nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            out.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            i += nl + 1;
        } else {
            let start = i + nl + 1;
            let len = u64::from_le_bytes(b[start..start + 8].try_into().unwrap()) as usize;
            let value = &b[start + 8..start + 8 + len];
            assert_eq!(
                b[start + 8 + len],
                b'\n',
                "binary field not ended by a newline"
            );
            out.insert(
                String::from_utf8_lossy(line).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            );
            i = start + 8 + len + 1;
        }
    }
    out
}

/// Receives every datagram sent to a socket of the test's, on a thread of its own: a
/// daemon whose log socket is full would block (Linux queues few datagrams per socket).
struct Collector {
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn bind(path: &Path) -> Collector {
        let sock = UnixDatagram::bind(path).unwrap();
        sock.set_read_timeout(Some(POLL)).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while !st.load(Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    g.lock().unwrap().push(buf[..n].to_vec());
                }
            }
        });
        Collector {
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn all(&self) -> Vec<Vec<u8>> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until a datagram parses to something `pred` accepts (returned), or panics after
    /// 30 s with the daemon's stderr.
    fn wait<T>(
        &self,
        parse: impl Fn(&[u8]) -> Option<T>,
        pred: impl Fn(&T) -> bool,
        d: &mut Daemon,
        what: &str,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(x) = self.all().iter().filter_map(|b| parse(b)).find(|x| pred(x)) {
                return x;
            }
            if Instant::now() > deadline {
                panic!(
                    "no datagram with {what} within 30 s ({} received)\n{}",
                    self.all().len(),
                    d.log_tail()
                );
            }
            d.assert_running();
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_args(env: &Env) -> Vec<&OsStr> {
    vec![
        OsStr::new("run"),
        OsStr::new("--config-dir"),
        env.conf.as_os_str(),
    ]
}

/// Without `log_target`, a daemon whose stderr is the journal stream (`JOURNAL_STREAM`
/// names its device and inode, as systemd sets it) logs to journald: entries carry the job
/// as `CLSYNC_JOB`, the event as `CLSYNC_EVENT` and the batch id as `CLSYNC_BATCH`, and
/// nothing goes to stderr.
#[test]
fn journald_entries_carry_job_event_and_batch() {
    let env = Env::new();
    env.write_main_config(&format!("{DAEMON_TOML}log_level = \"debug\"\n"));
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "j");
    env.job("www", &src, &dst, Mode::Rsync, "");
    let sock_path = env.p("journal.sock");
    let journal = Collector::bind(&sock_path);
    // The harness sends stderr to root/daemon.log (truncated, same inode): that file is
    // "the journal stream".
    let log = env.root.join("daemon.log");
    std::fs::write(&log, "").unwrap();
    let m = std::fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", m.dev(), m.ino());
    let mut d = env.spawn_with(
        &run_args(&env),
        &[
            ("JOURNAL_STREAM", OsStr::new(&stream)),
            ("CLSYNC_JOURNAL_SOCKET", sock_path.as_os_str()),
        ],
    );
    let parse = |b: &[u8]| (!b.is_empty()).then(|| parse_entry(b));
    let has = |e: &Entry, k: &str, v: &str| e.get(k).is_some_and(|x| x == v);
    let initial = journal.wait(
        parse,
        |e| has(e, "CLSYNC_JOB", "www") && has(e, "CLSYNC_EVENT", "initial-sync-done"),
        &mut d,
        "CLSYNC_JOB=www CLSYNC_EVENT=initial-sync-done",
    );
    d.release_start_guard();
    assert!(
        initial["MESSAGE"].contains("job{name=www}: initial sync done"),
        "{initial:?}"
    );
    assert_eq!(initial["PRIORITY"], "6", "info is priority 6: {initial:?}");
    assert_eq!(initial["SYSLOG_IDENTIFIER"], "clsync");
    assert_eq!(initial["SYSLOG_FACILITY"], "3", "daemon by default");
    let first_batch: u64 = initial["CLSYNC_BATCH"].parse().expect("numeric batch id");
    // Daemon-wide lines have no job.
    let started = journal.wait(
        parse,
        |e| e["MESSAGE"].contains("started 1 job(s)"),
        &mut d,
        "\"started 1 job(s)\"",
    );
    assert!(!started.contains_key("CLSYNC_JOB"), "{started:?}");

    write(&src.join("new.txt"), "new\n");
    d.assert_synced(&src, &dst, &[]);
    let synced = journal.wait(
        parse,
        |e| has(e, "CLSYNC_JOB", "www") && has(e, "CLSYNC_EVENT", "synced"),
        &mut d,
        "CLSYNC_JOB=www CLSYNC_EVENT=synced",
    );
    assert_eq!(synced["PRIORITY"], "7", "debug is priority 7: {synced:?}");
    let batch: u64 = synced["CLSYNC_BATCH"].parse().unwrap();
    assert!(batch > first_batch, "{synced:?}");
    assert!(synced["CLSYNC_PATHS"].parse::<u64>().unwrap() >= 1);
    let seen: Vec<Entry> = journal.all().iter().filter_map(|b| parse(b)).collect();
    let started_sync = seen.iter().find(|e| {
        has(e, "CLSYNC_EVENT", "sync-started") && has(e, "CLSYNC_BATCH", &batch.to_string())
    });
    assert!(
        started_sync.is_some_and(|e| has(e, "CLSYNC_JOB", "www")),
        "no sync-started entry for batch {batch}: {seen:#?}"
    );
    assert!(d.stop().success());
    let stderr = d.log();
    assert!(
        !stderr.contains("initial sync done"),
        "journald logging also wrote to stderr:\n{stderr}"
    );
}

/// `log_target = "syslog"`: RFC 3164 lines on the syslog socket, with the configured
/// facility, the `clsync[PID]` tag and the job.
#[test]
fn syslog_lines_carry_facility_tag_and_job() {
    let env = Env::new();
    env.write_main_config(&format!(
        "{DAEMON_TOML}log_target = \"syslog\"\nsyslog_facility = \"local3\"\n"
    ));
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "s");
    env.job("www", &src, &dst, Mode::Mirror, "");
    let sock_path = env.p("log.sock");
    let syslog = Collector::bind(&sock_path);
    let mut d = env.spawn_with(
        &run_args(&env),
        &[("CLSYNC_SYSLOG_SOCKET", sock_path.as_os_str())],
    );
    let parse = |b: &[u8]| Some(String::from_utf8_lossy(b).into_owned());
    let line = syslog.wait(
        parse,
        |l| l.contains("job{name=www}: initial sync done"),
        &mut d,
        "the initial sync of www",
    );
    d.release_start_guard();
    // local3 (19) * 8 + info (6).
    let rest = line
        .strip_prefix("<158>")
        .unwrap_or_else(|| panic!("{line:?}"));
    // "Mmm dd hh:mm:ss clsync[PID]: ..."
    let (stamp, rest) = rest.split_at(15);
    assert_eq!(stamp.as_bytes()[3], b' ', "{line:?}");
    assert_eq!(&stamp[9..10], ":", "{line:?}");
    let tag = format!(" clsync[{}]: ", d.pid());
    assert!(rest.starts_with(&tag), "{line:?}");
    assert!(!line.ends_with('\n'), "{line:?}");
    write(&src.join("new.txt"), "new\n");
    d.assert_synced(&src, &dst, &[]);
    assert!(d.stop().success());
    assert!(
        !d.log().contains("initial sync done"),
        "syslog logging also wrote to stderr:\n{}",
        d.log()
    );
}

/// `promtool check metrics` accepts `text` (skipped without promtool, unless `CI` is set).
fn promtool_check(text: &str, what: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("promtool is needed in CI (.ci/run installs it): {e}")
        }
        Err(_) => {
            eprintln!("note: no promtool, {what} not checked by it");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics rejects {what} ({}): {}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn http_get(addr: &str, path: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(c, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.0 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// The value of sample `name` with labels `labels` (in order), if present.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    clsync::metrics::samples(text)
        .into_iter()
        .find(|(n, l, _)| {
            n == name
                && l.len() == labels.len()
                && l.iter()
                    .zip(labels)
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2)
        })
        .map(|(_, _, v)| v)
}

/// The three ways to read the metrics: (`clsync metrics`, HTTP, the file).
fn scrape(env: &Env, http: &str) -> [String; 3] {
    let out = cli_conf(env, "metrics", &[]);
    assert_eq!(out.code, Some(0), "clsync metrics: {}", out.stderr);
    let file = std::fs::read_to_string(env.conf.join("run/clsync.prom")).unwrap_or_default();
    [out.stdout, http_get(http, "/metrics"), file]
}

/// Polls the three until `pred` holds for each; returns them.
fn wait_metrics(
    d: &mut Daemon,
    env: &Env,
    http: &str,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> [String; 3] {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let all = scrape(env, http);
        if all.iter().all(|t| pred(t)) {
            return all;
        }
        d.assert_running();
        if Instant::now() > deadline {
            panic!(
                "metrics never showed {what}:\n--- clsync metrics ---\n{}\n--- http ---\n{}\n--- file ---\n{}\n{}",
                all[0],
                all[1],
                all[2],
                d.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// The metrics, read all three ways, parse with promtool, describe the job, and move when
/// a sync and reloads happen; the file is only rewritten when something changed and is
/// removed at exit.
#[test]
fn metrics_served_three_ways_parse_and_move() {
    let env = Env::new();
    env.write_main_config(&format!(
        "{DAEMON_TOML}metrics_file = \"run/clsync.prom\"\nmetrics_file_interval = \"200ms\"\nmetrics_listen = \"127.0.0.1:0\"\n"
    ));
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "m");
    env.job("www", &src, &dst, Mode::Rsync, "");
    let mut d = start_sup(&env, &["www"]);
    let http = d
        .log()
        .lines()
        .find_map(|l| {
            let at = l.find("metrics: http://")? + "metrics: http://".len();
            Some(l[at..].trim_end_matches("/metrics").to_string())
        })
        .unwrap_or_else(|| panic!("no metrics address in the log\n{}", d.log_tail()));
    let www = [("job", "www")];
    let before = wait_metrics(&mut d, &env, &http, "the initial sync", |t| {
        value(t, "clsync_syncs_total", &www) >= Some(1.0)
    });
    for (text, what) in before.iter().zip(["clsync metrics", "HTTP", "the file"]) {
        promtool_check(text, what);
        for family in [
            "clsync_build_info",
            "process_resident_memory_bytes",
            "clsync_reloads_total",
            "clsync_job_state",
            "clsync_sync_failures_total",
            "clsync_handler_runs_total",
            "clsync_sync_duration_seconds",
            "clsync_queued_paths",
            "clsync_watched_directories",
            "clsync_unwatched_directories",
            "clsync_monitor_overflows_total",
            "clsync_rescans_total",
            "clsync_retries_total",
            "clsync_last_success_timestamp_seconds",
            "clsync_verify_repaired_paths_total",
            "clsync_bytes_copied_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{what}: no {family}\n{text}"
            );
        }
        assert_eq!(
            value(
                text,
                "clsync_job_state",
                &[("job", "www"), ("state", "watching")]
            ),
            Some(1.0),
            "{what}\n{text}"
        );
        assert!(value(text, "clsync_watched_directories", &www) >= Some(5.0));
        assert!(value(text, "process_resident_memory_bytes", &[]) > Some(0.0));
        assert!(value(text, "clsync_last_success_timestamp_seconds", &www) > Some(1.7e9));
    }
    // rsync's own transfers are not counted.
    assert_eq!(
        value(&before[0], "clsync_bytes_copied_total", &www),
        Some(0.0)
    );
    let syncs = value(&before[0], "clsync_syncs_total", &www).unwrap();
    let paths = value(&before[0], "clsync_synced_paths_total", &www).unwrap();
    let runs = value(&before[0], "clsync_sync_duration_seconds_count", &www).unwrap();

    for i in 0..3 {
        write(&src.join(format!("more/{i}.txt")), "more\n");
    }
    d.assert_synced(&src, &dst, &[]);
    let after = wait_metrics(&mut d, &env, &http, "the new sync", |t| {
        value(t, "clsync_syncs_total", &www) > Some(syncs)
            && value(t, "clsync_synced_paths_total", &www) > Some(paths)
            && value(t, "clsync_sync_duration_seconds_count", &www) > Some(runs)
            && value(
                t,
                "clsync_handler_runs_total",
                &[("job", "www"), ("result", "ok")],
            ) > Some(runs - 1.0)
    });
    promtool_check(&after[2], "the file after a sync");

    // Reloads by result: one that changes nothing, one refused.
    assert_eq!(cli_conf(&env, "reload", &[]).code, Some(0));
    env.write_job("broken", "source = 1\n");
    assert_ne!(cli_conf(&env, "reload", &[]).code, Some(0));
    std::fs::remove_file(env.conf.join("jobs.d/broken.toml")).unwrap();
    wait_metrics(&mut d, &env, &http, "one ok and one failed reload", |t| {
        value(t, "clsync_reloads_total", &[("result", "ok")]) == Some(1.0)
            && value(t, "clsync_reloads_total", &[("result", "failed")]) == Some(1.0)
    });

    // Idle: the file stays as it is (each rewrite is a new inode: temporary file + rename).
    let file = env.conf.join("run/clsync.prom");
    let ino = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut last, mut since) = (ino(&file), Instant::now());
    while since.elapsed() < Duration::from_secs(1) {
        assert!(
            Instant::now() < deadline,
            "the metrics file keeps being rewritten while nothing happens"
        );
        std::thread::sleep(POLL);
        let now = ino(&file);
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    assert!(d.stop().success());
    assert!(!file.exists(), "the metrics file outlived the daemon");
}

/// `clsync_bytes_copied_total` counts the bytes of file content the mirror writes: exactly
/// the sizes of the files it copies, at the initial sync and for a live change, and nothing
/// for a file that is already up to date.
#[test]
fn mirror_bytes_copied_metric_counts_file_contents() {
    let env = Env::new();
    env.write_main_config(DAEMON_TOML);
    let (src, dst) = (env.dir("src"), env.p("dst"));
    write(&src.join("a.bin"), &"a".repeat(1000));
    write(&src.join("sub/b.bin"), &"b".repeat(2345));
    write(&src.join("empty"), "");
    std::os::unix::fs::symlink("a.bin", src.join("link")).unwrap();
    env.job("m", &src, &dst, Mode::Mirror, "");
    let mut d = start_sup(&env, &["m"]);
    let m = [("job", "m")];
    let bytes = |env: &Env| {
        let out = cli_conf(env, "metrics", &[]);
        assert_eq!(out.code, Some(0), "clsync metrics: {}", out.stderr);
        (
            value(&out.stdout, "clsync_bytes_copied_total", &m),
            out.stdout,
        )
    };
    let (initial, text) = bytes(&env);
    promtool_check(&text, "clsync metrics of a mirror job");
    assert_eq!(initial, Some(3345.0), "{text}");

    // A new file of a known size: its bytes, no more (the others are up to date).
    write(&src.join("sub/c.bin"), &"c".repeat(100_000));
    d.assert_synced(&src, &dst, &[]);
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let (now, text) = bytes(&env);
        if now == Some(103_345.0) {
            break;
        }
        assert!(
            Instant::now() < deadline && now < Some(103_345.0),
            "clsync_bytes_copied_total is {now:?}, not 103345\n{text}\n{}",
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    assert!(d.stop().success());
}
