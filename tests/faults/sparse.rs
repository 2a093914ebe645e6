//! A 4 GiB sparse file (`truncate -s 4G`) that keeps growing: appended to three times, each
//! time the destination catches up; the times are reported.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::util::*;
use crate::{MODES, report, serial};

const SIZE: u64 = 4 << 30;
const APPEND: usize = 1 << 20;
/// Deadline for one copy of the whole file.
const COPY_DEADLINE: Duration = Duration::from_secs(300);

/// The last `n` bytes of `p`.
fn tail(p: &Path, n: u64) -> Vec<u8> {
    let Ok(mut f) = fs::File::open(p) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(n)));
    let mut out = Vec::new();
    let _ = f.read_to_end(&mut out);
    out
}

/// Cheap equality for a huge file: size, mtime and the last 2 MiB (every append lands
/// there). The whole trees are compared once at the end.
fn same_big(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    ma.len() == mb.len()
        && ma.mtime() == mb.mtime()
        && ma.mtime_nsec() == mb.mtime_nsec()
        && tail(a, 2 * APPEND as u64) == tail(b, 2 * APPEND as u64)
}

fn run(mode: Mode) {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "sparse");
    let big = src.join("disk.img");
    fs::File::create(&big).unwrap().set_len(SIZE).unwrap();
    env.job("j", &src, &dst, mode, "");
    let start = Instant::now();
    let mut d = env.start(&["j"]);
    let dbig = dst.join("disk.img");
    wait_for(&mut d, "the initial copy of 4 GiB", COPY_DEADLINE, || {
        same_big(&big, &dbig)
    });
    let initial = start.elapsed();
    let mut appends = Vec::new();
    let mut last = Duration::ZERO;
    for round in 0..3u8 {
        let mut f = fs::OpenOptions::new().append(true).open(&big).unwrap();
        let data: Vec<u8> = (0..APPEND).map(|k| (k as u8) ^ (round * 85 + 1)).collect();
        f.write_all(&data).unwrap();
        drop(f);
        last = wait_for(
            &mut d,
            &format!("append {round} to arrive"),
            COPY_DEADLINE,
            || same_big(&big, &dbig),
        );
        appends.push(format!("{:.1}s", last.as_secs_f64()));
    }
    // The whole trees, checksummed.
    d.assert_synced_within(&src, &dst, &[], Duration::from_secs(120));
    let used = fs::metadata(&dbig).map(|m| m.blocks() * 512).unwrap_or(0);
    eprintln!(
        "  sparse-4g [{}]: initial copy {:.1}s, appends of 1 MiB arrived in {}; destination file uses {} MiB on disk (source: {} MiB)",
        mode.as_str(),
        initial.as_secs_f64(),
        appends.join(", "),
        used >> 20,
        (fs::metadata(&big).unwrap().blocks() * 512) >> 20
    );
    report("sparse-4g-growing", Some(mode), last);
    assert!(d.stop().success());
}

#[test]
fn sparse_4g_file_growing() {
    let _s = serial();
    for mode in MODES {
        run(mode);
    }
}
