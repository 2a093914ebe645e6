//! The parallel walk (`workers` > 1): the same destination as one thread leaves (deletes,
//! replacements, directory modes and times set after their children), helper threads
//! really walk, concurrent runs share the helpers, and a timeout stops every thread with
//! nothing half-written left and retries converging.

use std::sync::atomic::Ordering;

use super::*;

/// A fixture whose handler walks with `workers` threads.
fn with_workers(workers: usize) -> Fixture {
    let f = Fixture::new();
    let h = MirrorHandler::new(
        f.src.path().to_path_buf(),
        f.dst.path().to_path_buf(),
        Arc::new(Filter::allow_all()),
    )
    .with_workers(workers);
    Fixture { h, ..f }
}

/// `depth` levels of `fanout` directories below `root`, each with a few files and a
/// symlink, some read-only, every directory with its own old mtime (set after its
/// content, deepest first, so that a directory fixed before its children are done shows).
fn build_wide_tree(root: &Path, depth: usize, fanout: usize) -> usize {
    let mut dirs = vec![PathBuf::new()];
    let mut level = vec![PathBuf::new()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for parent in &level {
            for i in 0..fanout {
                let d = parent.join(format!("d{i}"));
                fs::create_dir(root.join(&d)).unwrap();
                for j in 0..3 {
                    fs::write(root.join(&d).join(format!("f{j}")), format!("{d:?}/{j}")).unwrap();
                }
                std::os::unix::fs::symlink("f0", root.join(&d).join("link")).unwrap();
                next.push(d);
            }
        }
        dirs.extend(next.iter().cloned());
        level = next;
    }
    for (n, d) in dirs.iter().enumerate().rev() {
        let path = root.join(d);
        if n % 7 == 3 {
            set_mode(&path, 0o555);
        }
        set_mtime(&path, 1_000_000_000 + n as i64);
    }
    dirs.len()
}

/// Unwritable directories are left as they were made: their mode stops `TempDir`'s removal.
fn make_removable(root: &Path) {
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("u+rwx")
        .arg(root)
        .status();
}

/// A full sync of a deep and wide tree by 4 threads, into an empty destination and then
/// over one that differs everywhere (extraneous files and trees at every depth, a file
/// where a directory is and the reverse, changed content and modes): each time what
/// `rsync -a --delete` leaves, directory times included, with helper threads walking.
#[test]
fn parallel_full_sync_equals_rsync() {
    let f = with_workers(4);
    let dirs = build_wide_tree(f.src.path(), 4, 4);
    fs::create_dir(f.s("mixed")).unwrap();
    build_mixed_tree(&f.s("mixed"));
    f.full();
    let walked = f.h.0.helper_work.load(Ordering::Relaxed);
    assert!(walked > 0, "no directory was walked by a helper thread");
    assert!(walked < dirs, "the calling thread walked nothing");
    assert_eq!(f.h.0.spare_helpers.load(Ordering::Relaxed), 3);

    make_removable(f.src.path());
    make_removable(f.dst.path());
    // Differences at every depth.
    fs::remove_dir_all(f.s("d1/d2")).unwrap();
    fs::remove_file(f.s("d3/d0/d1/f2")).unwrap();
    fs::remove_dir_all(f.s("d2/d3/d3")).unwrap();
    fs::write(f.s("d2/d3/d3"), b"a file where a tree was").unwrap();
    fs::remove_file(f.s("d0/d0/f1")).unwrap();
    fs::create_dir_all(f.s("d0/d0/f1/new/tree")).unwrap();
    fs::write(f.s("d0/d0/f1/new/tree/leaf"), b"leaf").unwrap();
    fs::write(f.s("d3/d3/d3/d3/f0"), b"changed, same size?").unwrap();
    set_mode(&f.s("d1/d1/f1"), 0o600);
    for (n, d) in ["d0/d0/f1/new/tree", "d0/d0/f1/new", "d0/d0/f1", "d0/d0"]
        .iter()
        .enumerate()
    {
        set_mtime(&f.s(d), 1_500_000_000 + n as i64);
    }
    for junk in ["junk", "d1/junk", "d2/d2/junk", "d3/d3/d3/junk"] {
        fs::create_dir_all(f.d(junk).join("x/y")).unwrap();
        fs::write(f.d(junk).join("x/y/z"), b"z").unwrap();
        fs::write(f.d(&format!("{junk}-file")), b"junk").unwrap();
    }
    // A destination directory that is read-only must still receive its entries.
    set_mode(&f.d("d3/d3"), 0o555);
    let before = f.h.0.helper_work.load(Ordering::Relaxed);
    f.full();
    assert!(f.h.0.helper_work.load(Ordering::Relaxed) > before);
    assert!(!f.d("junk").exists() && !f.d("d3/d3/d3/junk-file").exists());
    make_removable(f.src.path());
    make_removable(f.dst.path());
}

/// A recursive batch entry below the root (a new tree) is walked in parallel too, and a
/// batch that may not delete keeps extraneous entries in directories helpers walked.
#[test]
fn parallel_walk_of_an_entry_and_without_deletes() {
    let f = with_workers(3);
    fs::create_dir(f.s("top")).unwrap();
    build_wide_tree(&f.s("top"), 3, 4);
    f.run(entries(&[("top", true)]));
    f.check();
    assert!(f.h.0.helper_work.load(Ordering::Relaxed) > 0);

    make_removable(f.src.path());
    make_removable(f.dst.path());
    fs::write(f.d("top/d1/d1/kept"), b"extraneous").unwrap();
    fs::write(f.s("top/d2/d2/d2/f0"), b"new content").unwrap();
    let mut b = entries(&[("top", true)]);
    b.deletes = false;
    f.run(b);
    assert_eq!(fs::read(f.d("top/d1/d1/kept")).unwrap(), b"extraneous");
    assert_eq!(fs::read(f.d("top/d2/d2/d2/f0")).unwrap(), b"new content");
    // Without it (and the directory's time it changed), the rest is equal.
    fs::remove_file(f.d("top/d1/d1/kept")).unwrap();
    let mtime = FileTime::from_last_modification_time(&fs::metadata(f.s("top/d1/d1")).unwrap());
    filetime::set_file_mtime(f.d("top/d1/d1"), mtime).unwrap();
    f.check();
    make_removable(f.src.path());
    make_removable(f.dst.path());
}

/// Runs in flight at once share the engine's helpers (never more than `workers - 1` in
/// use), all are given back, and each run is right whatever it got.
#[test]
fn concurrent_runs_share_the_helpers() {
    let f = with_workers(3);
    for side in ["left", "right"] {
        fs::create_dir(f.s(side)).unwrap();
        build_wide_tree(&f.s(side), 3, 4);
    }
    let h = &f.h;
    std::thread::scope(|s| {
        for side in ["left", "right"] {
            s.spawn(move || h.run(&entries(&[(side, true)])).unwrap());
        }
    });
    f.check();
    assert_eq!(f.h.0.spare_helpers.load(Ordering::Relaxed), 2);
    make_removable(f.src.path());
    make_removable(f.dst.path());
}

/// With 4 threads, a tiny timeout stops every thread: the first run leaves work undone,
/// no run leaves a temporary file, every stopped run made progress, what was installed is
/// not copied again, and the retries converge on the source.
#[test]
fn parallel_timeout_stops_every_thread_and_retries_converge() {
    timeout_converges(4);
}

/// The threads of one run stop together: a thread that has changed nothing itself stops
/// at the deadline once another has made progress, and every thread stops once one has.
#[test]
fn threads_of_a_run_share_progress_and_stop() {
    let f = Fixture::new();
    let h = with_timeout(&f, Duration::from_secs(3600)).with_workers(2);
    let mut a = Run::new(&h.0).unwrap();
    let mut b = a.seed().unwrap().run(&h.0);
    assert_eq!(a.deadline, b.deadline, "a helper has the run's deadline");

    // Progress made by `a` before the deadline lets `b` stop at it.
    a.progressed = true;
    assert!(!a.expired(), "deadline not reached");
    b.deadline = Some(Instant::now());
    assert!(b.expired(), "the run made progress (on another thread)");
    assert!(a.expired(), "another thread of the run stopped");

    // A run that has changed nothing is never stopped, on any thread.
    let mut c = Run::new(&h.0).unwrap();
    c.deadline = Some(Instant::now());
    let mut d = c.seed().unwrap().run(&h.0);
    assert!(!c.expired() && !d.expired());
    d.progressed = true;
    assert!(d.expired());
    assert!(c.expired());
}

/// A large batch's entries are cut where no entry is an ancestor of the next: a recursive
/// entry with what it covers, a directory with the paths below it, stay in one group.
#[test]
fn large_batches_split_where_no_path_is_shared() {
    let batch = entries(&[
        ("a", false),
        ("a/x", false),
        ("a/y/z", true),
        ("b", true),
        ("b/c", false),
        ("bc", false),
        ("d/e", false),
        ("d/f", false),
    ]);
    let groups: Vec<Vec<&str>> =
        crate::handler::mirror::parallel::independent_groups(&batch.entries)
            .iter()
            .map(|g| g.iter().map(|e| e.rel.to_str().unwrap()).collect())
            .collect();
    assert_eq!(
        groups,
        [
            vec!["a", "a/x", "a/y/z"],
            vec!["b", "b/c"],
            vec!["bc"],
            vec!["d/e"],
            vec!["d/f"]
        ]
    );
}

/// A batch of many entries (changed, new, vanished files in many directories, new
/// trees, a directory become a file with an entry below it, a file become a directory)
/// synced by 4 threads: what `rsync -a --delete` leaves, with helpers taking groups.
#[test]
fn large_batch_synced_by_several_threads() {
    let f = with_workers(4);
    build_wide_tree(f.src.path(), 3, 4);
    f.full();
    make_removable(f.src.path());
    make_removable(f.dst.path());
    let mut list: Vec<(String, bool)> = Vec::new();
    for a in 0..4 {
        for b in 0..4 {
            let d = format!("d{a}/d{b}");
            fs::write(f.s(&format!("{d}/f0")), format!("changed {d}")).unwrap();
            fs::write(f.s(&format!("{d}/new")), b"new").unwrap();
            fs::remove_file(f.s(&format!("{d}/f1"))).unwrap();
            for rel in ["f0", "new", "f1"] {
                list.push((format!("{d}/{rel}"), false));
            }
            fs::create_dir_all(f.s(&format!("{d}/tree/x"))).unwrap();
            fs::write(f.s(&format!("{d}/tree/x/leaf")), b"leaf").unwrap();
            list.push((format!("{d}/tree"), true));
        }
    }
    // A directory become a file, with an entry below it; a file become a directory.
    fs::remove_dir_all(f.s("d3/d3/d3")).unwrap();
    fs::write(f.s("d3/d3/d3"), b"now a file").unwrap();
    list.push(("d3/d3/d3".into(), false));
    list.push(("d3/d3/d3/f0".into(), false));
    fs::remove_file(f.s("d2/d2/d2/f2")).unwrap();
    fs::create_dir(f.s("d2/d2/d2/f2")).unwrap();
    fs::write(f.s("d2/d2/d2/f2/inner"), b"inner").unwrap();
    list.push(("d2/d2/d2/f2".into(), true));
    let refs: Vec<(&str, bool)> = list.iter().map(|(p, r)| (p.as_str(), *r)).collect();
    assert!(refs.len() >= crate::handler::mirror::parallel::SPLIT_ENTRIES);
    let before = f.h.0.helper_work.load(Ordering::Relaxed);
    f.run(entries(&refs));
    f.check();
    assert!(
        f.h.0.helper_work.load(Ordering::Relaxed) > before,
        "no helper synced"
    );
    make_removable(f.src.path());
    make_removable(f.dst.path());
}
