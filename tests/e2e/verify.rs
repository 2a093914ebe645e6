//! `verify_interval`: a periodic full sync repairs drift the monitor cannot see (changes
//! made at the destination), and reports how much it repaired.

use std::fs;

use super::ctl;
use super::harness::*;

#[test]
fn periodic_verification_repairs_destination_drift() {
    let env = Env::new();
    let sock = env.p("ctl.sock");
    env.write_main_config(&format!("[daemon]\nsocket = {}\n", toml_path(&sock)));
    let (src, dst) = (env.dir("src"), env.p("dst"));
    populate(&src, "v");
    env.job("j", &src, &dst, Mode::Rsync, "verify_interval = \"1s\"\n");
    let mut d = env.start(&["j"]);
    d.assert_synced(&src, &dst, &[]);
    // Drift behind the daemon's back: no event tells it about any of this.
    fs::remove_file(dst.join("a.txt")).unwrap();
    write(&dst.join("junk-at-destination"), "x");
    write(&dst.join("b/b1.txt"), "tampered!");
    let took = d.assert_synced_within(&src, &dst, &[], std::time::Duration::from_secs(20));
    eprintln!(
        "drift repaired {:.2}s after it was made",
        took.as_secs_f64()
    );
    // Status says what the verification repaired.
    let deadline = std::time::Instant::now() + SYNC_DEADLINE;
    loop {
        let st = ctl::status(&sock).unwrap_or_default();
        let repaired = st["jobs"][0]["last_verify"]["repaired"].as_u64();
        if repaired.is_some_and(|n| n >= 3) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no verification with repairs in status: {st}"
        );
        std::thread::sleep(POLL);
    }
    assert!(
        d.log().contains("verification repaired"),
        "{}",
        d.log_tail()
    );
    assert!(d.stop().success());
}
