//! The control socket (mode 0600) refuses other users: `clsync status` run as uid 65534 fails
//! with "Permission denied" and exit code 3, while the owner gets its status. The path to the
//! socket is made traversable for everyone, and a 0666 socket is shown to let the same user
//! in, so the refusal comes from the socket's own mode.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Instant;

use crate::harness::*;
use crate::util::*;
use crate::{report, serial};

#[test]
fn control_socket_refuses_other_users() {
    let _s = serial();
    if !is_root() {
        eprintln!("FAULT control-socket: skipped (needs root to run a client as uid 65534)");
        return;
    }
    let env = Env::new();
    chmod(&env.root, 0o755);
    chmod(&env.conf, 0o755);
    env.write_main_config(DAEMON_TOML);
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "sock");
    env.job("j", &src, &dst, Mode::Rsync, "");
    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &[]);
    let sock = socket(&env);
    let meta = fs::symlink_metadata(&sock).expect("the control socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");

    // The owner (root) is answered.
    let own = clsync_status(&sock, None);
    assert_eq!(own.code, Some(0), "{}", own.describe());
    let v: serde_json::Value = serde_json::from_str(&own.stdout).unwrap();
    assert_eq!(v["pid"], d.pid(), "{v:#}");

    // Another user is refused at connect().
    let other = clsync_status(&sock, Some(NOBODY));
    assert_eq!(other.code, Some(3), "non-owner: {}", other.describe());
    assert!(
        other.stderr.contains("Permission denied"),
        "non-owner: {}",
        other.describe()
    );
    assert!(other.stdout.trim().is_empty(), "{}", other.describe());

    // Control: with the socket opened up, the same user gets in (so the path is
    // traversable and the refusal above came from the mode).
    chmod(&sock, 0o666);
    let open = clsync_status(&sock, Some(NOBODY));
    chmod(&sock, 0o600);
    assert_eq!(
        open.code,
        Some(0),
        "a 0666 socket should let uid {NOBODY} in: {}",
        open.describe()
    );
    let again = clsync_status(&sock, Some(NOBODY));
    assert_eq!(again.code, Some(3), "{}", again.describe());

    // The refused attempts did not disturb the daemon.
    let cleared = Instant::now();
    let own = clsync_status(&sock, None);
    assert_eq!(own.code, Some(0), "{}", own.describe());
    write(&src.join("after.txt"), "x");
    d.assert_synced(&src, &dst, &[]);
    report("control-socket-non-owner", None, cleared.elapsed());
    assert!(d.stop().success());
}
