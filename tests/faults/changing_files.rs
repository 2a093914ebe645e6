//! Files rewritten in place (truncate, then write) without pause for about 2 s while the daemon
//! copies them: rsync and the mirror read half-written files. Once the writer stops, the
//! destination converges to the last version of every file.

use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::util::*;
use crate::{MODES, report, serial};

const FILES: usize = 16;
const SIZE: usize = 1 << 20;

fn run(mode: Mode) {
    let env = Env::new();
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "busy");
    let busy = src.join("busy");
    fs::create_dir(&busy).unwrap();
    for i in 0..FILES {
        fs::write(busy.join(format!("f{i:02}.bin")), vec![0u8; SIZE]).unwrap();
    }
    env.job("j", &src, &dst, mode, "");
    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (busy, stop) = (busy.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let i = (n as usize) % FILES;
                // Every version differs everywhere; written in 64 KiB pieces so that a
                // reader sees the file grow.
                let mut f = fs::File::create(busy.join(format!("f{i:02}.bin"))).unwrap();
                let piece: Vec<u8> = (0..64 * 1024)
                    .map(|k| (k as u64 ^ n.wrapping_mul(0x9e37)) as u8)
                    .collect();
                for _ in 0..SIZE / piece.len() {
                    f.write_all(&piece).unwrap();
                }
                n += 1;
            }
            n
        })
    };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        d.assert_running();
        std::thread::sleep(POLL);
    }
    stop.store(true, Ordering::SeqCst);
    let rewrites = writer.join().unwrap();
    let cleared = Instant::now();
    d.assert_synced_within(&src, &dst, &[], Duration::from_secs(60));
    let took = cleared.elapsed();
    let log = d.log();
    eprintln!(
        "  files-changing-while-read [{}]: {rewrites} rewrites of 1 MiB files in 2 s; {} failed attempts meanwhile",
        mode.as_str(),
        count_in(&log, &["failed (attempt"])
    );
    // And the daemon keeps working afterwards.
    write(&busy.join("after.txt"), "after the storm");
    d.assert_synced(&src, &dst, &[]);
    report("files-changing-while-read", Some(mode), took);
    assert!(d.stop().success());
}

#[test]
fn files_changing_while_read() {
    let _s = serial();
    for mode in MODES {
        run(mode);
    }
}
