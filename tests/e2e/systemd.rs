//! systemd integration: the daemon speaks sd_notify on $NOTIFY_SOCKET (READY=1 once every
//! job finished its initial sync, RELOADING=1 then READY=1 around a reload, STOPPING=1 at
//! the end). A datagram socket in the test's temp dir plays systemd.

use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use super::harness::*;

/// Collects sd_notify messages until `want` has been seen (or the deadline passes).
fn wait_for(sock: &UnixDatagram, seen: &mut Vec<String>, want: &str, d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        if seen.iter().any(|m| m.lines().any(|l| l == want)) {
            return;
        }
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    panic!(
        "no {want:?} from the daemon; got {seen:#?}\n--- log ---\n{}",
        d.log_tail()
    );
}

#[test]
fn notify_ready_reloading_stopping() {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    populate(&src, "s");
    env.job("web", &src, &dst, Mode::Rsync, "");
    env.write_main_config(&format!(
        "[daemon]\nsocket = {}\n",
        toml_path(&env.p("ctl.sock"))
    ));
    let path = env.p("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut d = env.spawn_with(
        &[
            OsStr::new("run"),
            OsStr::new("--config-dir"),
            env.conf.as_os_str(),
        ],
        &[("NOTIFY_SOCKET", path.as_os_str())],
    );
    let mut seen = Vec::new();
    wait_for(&sock, &mut seen, "READY=1", &d);
    // READY comes only after the initial sync: the destination is complete by then.
    assert_eq!(
        tree_diff(&src, &dst, &[]),
        "",
        "READY=1 before the initial sync finished: {seen:?}\n{}",
        d.log()
    );
    d.wait_watching(&["web"]);

    seen.clear();
    d.signal(libc::SIGHUP);
    wait_for(&sock, &mut seen, "RELOADING=1", &d);
    let reloading = seen
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap();
    assert!(
        seen[reloading]
            .lines()
            .any(|l| l.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 comes with MONOTONIC_USEC: {seen:?}"
    );
    wait_for(&sock, &mut seen, "READY=1", &d);

    seen.clear();
    d.signal(libc::SIGTERM);
    wait_for(&sock, &mut seen, "STOPPING=1", &d);
    assert!(d.stop().success());
}

#[test]
fn unit_file_reloads_with_sighup_and_waits_for_readiness() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/clsync.service"),
    )
    .unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/bin/clsync run --config-dir /etc/clsync $CLSYNC_ARGS",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
}
