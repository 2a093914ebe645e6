//! File names that break naive argument building, shell use, rsync filters or UTF-8.

use super::harness::*;
use std::ffi::{OsStr, OsString};
use std::fs;

fn odd_names() -> Vec<OsString> {
    let mut v: Vec<OsString> = [
        "with space",
        " leading space",
        "trailing space ",
        "new\nline",
        "cr\rname",
        "tab\tname",
        "-n",
        "-leading-dash",
        "--rsh=evil",
        "--delete",
        "--files-from=x",
        "$(touch pwned)",
        "`touch pwned2`",
        "back\\slash",
        "trailing-backslash\\",
        "star*name",
        "q?mark",
        "[brackets]",
        "#hash",
        ";semicolon",
        "semi;colon",
        "quote'single",
        "quote\"double",
        "pipe|amp&gt>lt<",
        "unicodé ✓ 日本",
        "+ plus",
        "- minus",
        ".hidden",
        "..double-dot",
        "~tilde",
        "percent%s%n",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    // '/' cannot be in a name: reach the absolute path through an environment variable.
    v.push(OsString::from("$(touch $CLSYNC_TEST_PWNED)"));
    v.push(os(b"non-utf8-\xff\xfe-\xc3\x28"));
    v.push(os(b"latin1-caf\xe9"));
    v.push(OsString::from(format!("{}.txt", "n".repeat(251)))); // 255 bytes
    v
}

fn odd(mode: Mode) {
    let env = Env::new();
    let src = env.dir("src");
    let dst = env.p("dst");
    let pwned3 = env.p("pwned3");
    env.job("names", &src, &dst, mode, "");
    // Pre-existing odd names go through the initial sync.
    fs::write(src.join("$(touch pwned) initial"), "x").unwrap();
    fs::write(src.join(os(b"initial-\xff")), "x").unwrap();
    let mut d = env.spawn_with(
        &[
            OsStr::new("run"),
            OsStr::new("--config-dir"),
            env.conf.as_os_str(),
        ],
        &[("CLSYNC_TEST_PWNED", pwned3.as_os_str())],
    );
    d.wait_watching(&["names"]);
    d.assert_synced(&src, &dst, &[]);

    let names = odd_names();
    // Files at the root.
    for (i, n) in names.iter().enumerate() {
        fs::write(src.join(n), format!("file {i}\n")).unwrap();
    }
    // A directory with an odd name holding odd names, and odd names in a subdirectory.
    for dir in [
        OsString::from("dir with space"),
        OsString::from("-dir"),
        os(b"dir-\xff"),
    ] {
        fs::create_dir(src.join(&dir)).unwrap();
        for (i, n) in names.iter().enumerate().step_by(3) {
            fs::write(src.join(&dir).join(n), format!("nested {i}\n")).unwrap();
        }
    }
    d.assert_synced(&src, &dst, &[]);

    // Modify, rename and delete some of them live.
    for (i, n) in names.iter().enumerate() {
        match i % 3 {
            0 => fs::write(src.join(n), format!("changed {i}\n")).unwrap(),
            1 => fs::remove_file(src.join(n)).unwrap(),
            _ => {
                let mut to = n.clone();
                to.push(" renamed");
                if to.len() <= 255 {
                    fs::rename(src.join(n), src.join(to)).unwrap();
                }
            }
        }
    }
    fs::rename(src.join("-dir"), src.join("--rsh=evil-dir")).unwrap();
    fs::write(src.join("--rsh=evil-dir").join("after"), "after").unwrap();
    d.assert_synced(&src, &dst, &[]);

    // Nothing was executed by a shell.
    for name in ["pwned", "pwned2", "pwned3"] {
        let found = find_named(&env.root, OsStr::new(name));
        assert!(
            found.is_empty(),
            "a file name was run through a shell: {found:?}"
        );
        assert!(
            !std::path::Path::new(name).exists(),
            "{name} created in the test's cwd"
        );
    }
    assert!(!pwned3.exists());
    d.assert_running();
}

crate::both_modes! {
    odd_file_names => odd;
}
