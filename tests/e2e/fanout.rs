//! `destinations = [...]`: one job file, several targets, each with its own retry state.

use std::fs;

use super::harness::*;

#[test]
fn one_target_down_does_not_hold_back_the_other() {
    let env = Env::new();
    let src = env.dir("src");
    let (da, db) = (env.p("dst-a"), env.p("dst-b"));
    populate(&src, "f");
    // Target b is "down" while the flag file exists.
    let flag = env.p("b-is-down");
    write(&flag, "");
    let rsync = env.script(
        "rsync-b-down.sh",
        &format!(
            "case \"$*\" in *dst-b/*) [ -e '{}' ] && {{ echo 'b is down' >&2; exit 12; }};; esac\nexec rsync \"$@\"",
            flag.display()
        ),
    );
    env.write_job(
        "web",
        &format!(
            "source = {}\ndestinations = [{}, {}]\ndelay = \"100ms\"\n[rsync]\npath = {}\n",
            toml_path(&src),
            toml_path(&da),
            toml_path(&db),
            toml_path(&rsync)
        ),
    );
    let mut d = env.start(&["web@1"]);
    d.assert_synced(&src, &da, &[]);
    for i in 0..5 {
        write(&src.join(format!("while-b-down-{i}")), "x");
        d.assert_synced(&src, &da, &[]);
    }
    assert!(!db.join("while-b-down-0").exists());
    assert!(d.log().contains("b is down"), "{}", d.log_tail());
    // b comes back: it catches up with everything, the changes made while it was down too.
    fs::remove_file(&flag).unwrap();
    let took = d.assert_synced_within(&src, &db, &[], std::time::Duration::from_secs(90));
    eprintln!(
        "target b caught up {:.2}s after it came back",
        took.as_secs_f64()
    );
    d.assert_synced(&src, &da, &[]);
    assert!(d.stop().success());
}
