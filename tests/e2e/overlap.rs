//! Runs in flight side by side (`workers = 2`): a batch due while a slow run is in flight
//! starts at once with the paths that run does not touch, the rest waits for it; a failed
//! run's paths are retried with what waited. Nothing is lost, nothing overtakes. An
//! attribute change of a directory in flight holds back that directory, not what is below.
//! A run that ends after a newer one leaves no directory as it saw it, the root included.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::harness::*;

/// How long a run holding `./slow` sleeps before rsync starts.
const SLOW: Duration = Duration::from_secs(3);

/// An rsync wrapper that sleeps [`SLOW`] when its `--files-from` list names `slow` (a line
/// such as `./slow`), and (with `fail_fast`) fails once, before doing anything, the first
/// time it names `./fast`.
fn wrapper(env: &Env, slow: &str, fail_fast: bool) -> PathBuf {
    let failed = env.p("fast-failed");
    let fail = if fail_fast {
        format!(
            "if grep -qx ./fast \"$l.txt\" && [ ! -e '{f}' ]; then : > '{f}'; exit 12; fi\n",
            f = failed.display()
        )
    } else {
        String::new()
    };
    env.script(
        "rsync-slow.sh",
        &format!(
            "{PROBES_PASS}l=$(mktemp '{dir}/list.XXXXXX')\ncat > \"$l\"\ntr '\\0' '\\n' < \"$l\" > \"$l.txt\"\n\
             {fail}if grep -qx '{slow}' \"$l.txt\"; then sleep {secs}; fi\nexec rsync \"$@\" < \"$l\"",
            dir = env.root.display(),
            secs = SLOW.as_secs(),
        ),
    )
}

/// Waits up to `within` for `p` to hold `content`; returns how long it took.
fn arrives(p: &Path, content: &str, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if std::fs::read_to_string(p).is_ok_and(|c| c == content) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Starts a job whose wrapper is [`wrapper`], waits for the initial sync, then puts `slow`
/// in flight. Returns (env, daemon, src, dst).
fn slow_run_in_flight(fail_fast: bool) -> (Env, Daemon, PathBuf, PathBuf) {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "t");
    let rsync = wrapper(&env, "./slow", fail_fast);
    env.job(
        "j",
        &src,
        &dst,
        Mode::Rsync,
        &format!(
            "workers = 2\nsandbox = false\nretry_delay = \"100ms\"\n[rsync]\npath = {}",
            toml_path(&rsync)
        ),
    );
    let mut d = env.spawn();
    d.assert_synced(&src, &dst, &[]);
    write(&src.join("slow"), "one\n");
    // The batch with `slow` is taken after the delay (100 ms) and sleeps in its run.
    std::thread::sleep(Duration::from_millis(500));
    (env, d, src, dst)
}

/// `slow` and `fast` change while `slow`'s run sleeps: `fast` starts on the free worker and
/// arrives long before that run ends; `slow`'s new content follows it.
#[test]
fn free_paths_start_beside_a_run_in_flight() {
    let (_env, mut d, src, dst) = slow_run_in_flight(false);
    append(&src.join("slow"), "two\n");
    write(&src.join("fast"), "fast\n");
    let took = arrives(&dst.join("fast"), "fast\n", SLOW);
    assert!(
        took.is_some_and(|t| t < SLOW / 2),
        "fast waited for the slow run ({took:?})\n{}",
        d.log_tail()
    );
    assert!(
        std::fs::read_to_string(dst.join("slow")).is_err(),
        "the slow run is still in flight: slow is not there yet"
    );
    d.assert_synced(&src, &dst, &[]);
    assert!(d.stop().success());
}

/// The run of `fast` started beside the slow one fails: its paths go back to the queue,
/// with `slow`'s held change, and both arrive.
#[test]
fn a_failed_run_beside_another_loses_nothing() {
    let (env, mut d, src, dst) = slow_run_in_flight(true);
    append(&src.join("slow"), "two\n");
    write(&src.join("fast"), "fast\n");
    d.assert_synced(&src, &dst, &[]);
    assert!(env.p("fast-failed").exists(), "the run of fast failed once");
    assert!(
        d.log().contains("status 12"),
        "the failure is reported\n{}",
        d.log_tail()
    );
    assert!(d.stop().success());
}

/// A `chmod` of a directory is a run of its attributes alone: a file written below it
/// meanwhile starts on the free worker instead of waiting for that run, and the
/// directory's mode arrives too.
#[test]
fn a_directory_attribute_run_holds_back_nothing_below_it() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    std::fs::create_dir(src.join("d")).unwrap();
    write(&src.join("d/old"), "old\n");
    let rsync = wrapper(&env, "./d", false);
    env.job(
        "j",
        &src,
        &dst,
        Mode::Rsync,
        &format!(
            "workers = 2\nsandbox = false\n[rsync]\npath = {}",
            toml_path(&rsync)
        ),
    );
    let mut d = env.spawn();
    d.assert_synced(&src, &dst, &[]);
    std::fs::set_permissions(src.join("d"), std::fs::Permissions::from_mode(0o750)).unwrap();
    // The batch of `d`'s attributes is taken after the delay (100 ms) and sleeps in its run.
    std::thread::sleep(Duration::from_millis(500));
    write(&src.join("d/fast"), "fast\n");
    let took = arrives(&dst.join("d/fast"), "fast\n", SLOW);
    assert!(
        took.is_some_and(|t| t < SLOW / 2),
        "d/fast waited for the run of d's attributes ({took:?})\n{}",
        d.log_tail()
    );
    d.assert_synced(&src, &dst, &[]);
    let mode = std::fs::metadata(dst.join("d"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750, "d's mode arrived");
    assert!(d.stop().success());
}

/// A command (mode `direct`) that copies each path it is given and then sets the times of
/// its parent directory as they were when the run started, as rsync does with the
/// directories above its paths; it sleeps [`SLOW`] when given `slow`. Unlike rsync, a run
/// sets no directory but the parents of its paths: the root only for a path in the root.
fn parent_setting_command(env: &Env) -> PathBuf {
    env.script(
        "copy-set-parents.sh",
        &format!(
            r#"dst="$CLSYNC_DESTINATION"
n=$#
refs=$(mktemp -d '{root}/refs.XXXXXX')
i=0
for p; do
  i=$((i+1)); [ $i -lt $n ] || break
  [ "$p" = . ] || touch -r "./$(dirname -- "$p")" "$refs/$i"
done
case " $* " in *" slow "*) sleep {secs};; esac
i=0
for p; do
  i=$((i+1)); [ $i -lt $n ] || break
  if [ "$p" = . ] || [ -d "./$p" ]; then rsync -a "./$p/" "$dst/$p/"
  elif [ -e "./$p" ]; then cp -p -- "./$p" "$dst/$p"
  else rm -rf -- "$dst/$p"; fi
done
i=0
for p; do
  i=$((i+1)); [ $i -lt $n ] || break
  [ "$p" = . ] || touch -r "$refs/$i" "$dst/$(dirname -- "$p")"
done
rm -rf "$refs""#,
            root = env.root.display(),
            secs = SLOW.as_secs(),
        ),
    )
}

/// Job `j`: mode `direct` running `command`, `delay` 100 ms, two workers.
fn direct_job(env: &Env, src: &Path, dst: &Path, command: &Path) {
    env.write_job(
        "j",
        &format!(
            "source = {}\ndestination = {}\nmode = \"direct\"\ndelay = \"100ms\"\nworkers = 2\n\
             [command]\npath = {}\n",
            toml_path(src),
            toml_path(dst),
            toml_path(command)
        ),
    );
}

/// Outside rsync, a run that sets the root's times from an older view may finish after a
/// newer run set them right, while changes below a directory wait for it: the root is
/// synced again anyway, since the run that takes those changes need not set it.
#[test]
fn a_command_run_ending_after_a_newer_one_leaves_the_root_as_the_source() {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "t");
    let command = parent_setting_command(&env);
    direct_job(&env, &src, &dst, &command);
    let mut d = env.spawn();
    d.assert_synced(&src, &dst, &[]);
    // The slow run sets the root as it is now, when it ends.
    write(&src.join("slow"), "slow\n");
    append(&src.join("b/b1.txt"), "more\n");
    // Over a second: the root's times differ to rsync's eyes too (`assert_synced`).
    std::thread::sleep(Duration::from_millis(1100));
    // A newer run sets it as it is after `fast`, and ends first.
    write(&src.join("fast"), "fast\n");
    assert!(
        arrives(&dst.join("fast"), "fast\n", SLOW / 2).is_some(),
        "fast waited for the slow run\n{}",
        d.log_tail()
    );
    // A change below `b`, which the slow run holds: queued when it ends.
    append(&src.join("b/b1.txt"), "again\n");
    d.assert_synced(&src, &dst, &[]);
    // To the nanosecond, once the run of what waited (and of the root) is done too.
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let deadline = Instant::now() + SYNC_DEADLINE;
    while mtime(&dst) != mtime(&src) {
        assert!(
            Instant::now() < deadline,
            "the root's mtime: {:?} at the destination, {:?} at the source\n{}",
            mtime(&dst),
            mtime(&src),
            d.log_tail()
        );
        std::thread::sleep(POLL);
    }
    assert!(d.stop().success());
}

/// A command (mode `direct`) that syncs path by path: a directory's attributes with
/// `touch -r`, a file with `rsync -aIR` (which sets the directories above it when it ends,
/// as it saw them when it started), slowly.
fn per_path_command(env: &Env) -> PathBuf {
    env.script(
        "per-path.sh",
        r#"n=$#
i=0
for p; do
  i=$((i+1)); [ $i -lt $n ] || break
  if [ "$p" = . ]; then rsync -a ./ "$CLSYNC_DESTINATION"/
  elif [ -d "./$p" ] && [ -d "$CLSYNC_DESTINATION/$p" ]; then touch -r "./$p" "$CLSYNC_DESTINATION/$p"
  else rsync -a -I -R --bwlimit=2000 "./$p" "$CLSYNC_DESTINATION"/; fi
done"#,
    )
}

/// A directory's attribute run starts beside an older run below it and sets the directory
/// first; the older run sets it after, as it saw it, and ends first: both end in order.
/// rsync sets every directory of its list again when it ends, so the order runs end in is
/// the order they set directories; a command that works path by path does not, and the
/// directory is synced again after the attribute run.
#[test]
fn a_command_attribute_run_beside_an_older_run_below_it_keeps_the_directory_times() {
    use std::time::SystemTime;
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "t");
    write(&src.join("d/big"), &"x".repeat(4 << 20));
    write(&src.join("slow"), &"x".repeat(4 << 20));
    let command = per_path_command(&env);
    direct_job(&env, &src, &dst, &command);
    let mut d = env.spawn();
    d.assert_synced(&src, &dst, &[]);
    // The older run: `d/big`, two seconds.
    write(&src.join("d/big"), &"y".repeat(4 << 20));
    std::thread::sleep(Duration::from_millis(500));
    // The newer: `d`'s times (a node: it starts beside the older run), then `slow`, three
    // seconds.
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_300_000_000);
    let times = std::fs::FileTimes::new().set_accessed(t).set_modified(t);
    std::fs::File::open(src.join("d"))
        .unwrap()
        .set_times(times)
        .unwrap();
    write(&src.join("slow"), &"z".repeat(6 << 20));
    d.assert_synced(&src, &dst, &[]);
    assert!(d.stop().success());
}
