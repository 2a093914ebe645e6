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
    let a_name = target_name("web", &da.to_string_lossy());
    let mut d = env.start(&[a_name.as_str()]);
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

/// A target's identity is its destination: editing one target's destination restarts that
/// target only, and removing the first target leaves the others running under their names.
#[test]
fn reload_touches_only_the_edited_target() {
    use super::ctl::*;
    use serde_json::json;
    use std::path::Path;
    let env = sup_env("");
    let src = env.dir("src");
    populate(&src, "f");
    let (da, db, dc, dc2) = (
        env.p("dst-a"),
        env.p("dst-b"),
        env.p("dst-c"),
        env.p("dst-c2"),
    );
    let job = |targets: &[&Path]| {
        let list: Vec<String> = targets.iter().map(|t| toml_path(t)).collect();
        env.write_job(
            "web",
            &format!(
                "source = {}\ndestinations = [{}]\ndelay = \"100ms\"\n",
                toml_path(&src),
                list.join(", ")
            ),
        );
    };
    let name = |d: &Path| target_name("web", &d.to_string_lossy());
    let (na, nb, nc, nc2) = (name(&da), name(&db), name(&dc), name(&dc2));
    job(&[&da, &db, &dc]);
    let mut d = start_sup(&env, &[&na, &nb, &nc]);
    for t in [&da, &db, &dc] {
        d.assert_synced(&src, t, &[]);
    }

    job(&[&da, &db, &dc2]);
    d.signal(libc::SIGHUP);
    let v = wait_status(&mut d, &env, "the edited target watching", |v| {
        is_watching(v, &nc2) && v["last_reload"]["added"] == json!([nc2])
    });
    assert_eq!(v["last_reload"]["removed"], json!([nc]), "{v:#}");
    assert_eq!(v["last_reload"]["changed"], json!([]), "{v:#}");
    for n in [&na, &nb] {
        assert_eq!(u64_of(&v, n, "initial_syncs"), 1, "{n} restarted\n{v:#}");
    }

    job(&[&db, &dc2]);
    d.signal(libc::SIGHUP);
    let v = wait_status(&mut d, &env, "the first target removed", |v| {
        v["last_reload"]["removed"] == json!([na])
    });
    assert_eq!(v["last_reload"]["added"], json!([]), "{v:#}");
    assert_eq!(v["last_reload"]["changed"], json!([]), "{v:#}");
    assert!(is_watching(&v, &nb), "{v:#}");
    assert_eq!(u64_of(&v, &nb, "initial_syncs"), 1, "{nb} restarted\n{v:#}");
    write(&src.join("after-reloads"), "x");
    for t in [&db, &dc2] {
        d.assert_synced(&src, t, &[]);
    }
}
