//! The destination's filesystem fills up: the job fails and retries (the log says so), and
//! once space is freed (the tmpfs remounted bigger, or a filler file deleted) the destination
//! converges without anything else happening.

use std::fs;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::util::*;
use crate::{MODES, report, serial};

/// How the space comes back.
#[derive(Clone, Copy, Debug)]
enum Free {
    /// `mount -o remount,size=64m`.
    Remount,
    /// Delete a filler file that took most of the filesystem.
    DeleteFiller,
}

fn run(mode: Mode, free: Free) {
    let env = Env::new();
    let src = env.dir("src");
    populate(&src, "full");
    let (size, filler_mib, payload_mib) = match free {
        Free::Remount => ("2m", 0, 3),
        Free::DeleteFiller => ("4m", 3, 2),
    };
    let Some(fs_) = Tmpfs::mount(&env.p("small"), size) else {
        eprintln!("FAULT destination-full: skipped (cannot mount a tmpfs here)");
        return;
    };
    let filler = fs_.path.join("filler");
    if filler_mib > 0 {
        fs::write(&filler, vec![b'f'; filler_mib << 20]).unwrap();
    }
    let dst = fs_.path.join("dst");
    env.job("j", &src, &dst, mode, "");
    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &[]);

    // More than fits: distinct content per file, so nothing can be shared or skipped.
    for i in 0..payload_mib * 4 {
        let data: Vec<u8> = (0..256 * 1024u32)
            .map(|k| (k.wrapping_mul(31).wrapping_add(i as u32 * 7)) as u8)
            .collect();
        fs::write(src.join(format!("big-{i}.bin")), data).unwrap();
    }
    // The job fails, and retries: at least two failed attempts in the log.
    wait_log(
        &mut d,
        "two failed attempts",
        Duration::from_secs(30),
        |log| count_in(log, &["failed (attempt"]) >= 2,
    );
    let failures = log_lines(&d, &["failed (attempt"]);
    assert!(
        !tree_diff(&src, &dst, &[]).is_empty(),
        "the payload cannot fit, yet the destination equals the source"
    );
    // Clear the fault.
    let cleared = Instant::now();
    match free {
        Free::Remount => fs_.remount("64m"),
        Free::DeleteFiller => fs::remove_file(&filler).unwrap(),
    }
    d.assert_synced_within(&src, &dst, &[], Duration::from_secs(90));
    let took = cleared.elapsed();
    // Nothing half-written left behind (the tree comparison covers dst; the filesystem's
    // only other entry is the filler, if it is still there).
    let extra: Vec<_> = fs::read_dir(&fs_.path)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "dst" && n != "filler")
        .collect();
    assert!(extra.is_empty(), "stray entries next to dst: {extra:?}");
    eprintln!(
        "  destination-full [{}] ({free:?}): {} failed attempts before space was freed, first: {}",
        mode.as_str(),
        failures.len(),
        failures[0]
            .split_once("WARN ")
            .map_or(failures[0].as_str(), |x| x.1)
    );
    report(
        &format!("destination-full-{}", format!("{free:?}").to_lowercase()),
        Some(mode),
        took,
    );
    assert!(d.stop().success());
    drop(d);
    drop(fs_);
}

#[test]
fn destination_full_then_freed() {
    let _s = serial();
    if !is_root() {
        eprintln!("FAULT destination-full: skipped (needs root to mount a tmpfs)");
        return;
    }
    for mode in MODES {
        for free in [Free::Remount, Free::DeleteFiller] {
            run(mode, free);
        }
    }
}
