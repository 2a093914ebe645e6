//! `clsync check`: exit status and `file:line:column: message` diagnostics.

use super::harness::*;
use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;

struct Conf {
    env: Env,
    src: PathBuf,
    dst: PathBuf,
}

impl Conf {
    fn new() -> Conf {
        let env = Env::new();
        let src = env.dir("src");
        let dst = env.p("dst");
        Conf { env, src, dst }
    }

    /// A job file whose first two lines are source and destination, then `rest`.
    fn job(&self, name: &str, rest: &str) -> PathBuf {
        self.env.write_job(name, &self.text(rest))
    }

    fn text(&self, rest: &str) -> String {
        format!(
            "source = {}\ndestination = {}\n{rest}",
            toml_path(&self.src),
            toml_path(&self.dst)
        )
    }

    fn check(&self) -> CheckOutput {
        run_check(
            &self.env.root,
            &[OsStr::new("--config-dir"), self.env.conf.as_os_str()],
        )
    }
}

/// 1-based column of `needle` in `line`.
fn col(line: &str, needle: &str) -> u32 {
    line.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {line:?}")) as u32
        + 1
}

/// Every column of `needle` in `line` (a diagnostic may point anywhere inside a value).
fn span(line: &str, needle: &str) -> std::ops::Range<u32> {
    let start = col(line, needle);
    start..start + needle.len() as u32
}

fn cols_with(extra: &[u32], span: std::ops::Range<u32>) -> Vec<u32> {
    extra.iter().copied().chain(span).collect()
}

/// Asserts a non-zero exit and a diagnostic for `file` at `line`, with a column among `cols`
/// (empty: any column), whose message contains every string of `words` (case-insensitive).
fn expect_diag(out: &CheckOutput, file: &str, line: u32, cols: &[u32], words: &[&str]) {
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "check must exit non-zero\n{}",
        out.describe()
    );
    let diags = out.errors_in(file);
    let ok = diags.iter().any(|d| {
        d.line == line
            && (cols.is_empty() || cols.contains(&d.column))
            && !d.message.trim().is_empty()
            && words
                .iter()
                .all(|w| d.message.to_lowercase().contains(&w.to_lowercase()))
    });
    assert!(
        ok,
        "expected `{file}:{line}:<col in {cols:?}>: ...` mentioning {words:?}; got {diags:#?}\n{}",
        out.describe()
    );
}

fn expect_ok(out: &CheckOutput) {
    assert_eq!(out.code, Some(0), "check must exit 0\n{}", out.describe());
}

#[test]
fn check_valid_config_dir_exits_0() {
    let c = Conf::new();
    c.env.write_main_config(
        "[defaults]\ndelay = \"200ms\"\nexclude = [\"*.tmp\"]\nworkers = 2\n\n[defaults.rsync]\npath = \"rsync\"\nargs = []\n\n[defaults.big_file]\nthreshold = \"128MiB\"\n",
    );
    c.job(
        "web",
        "mode = \"rsync\"\nenabled = true\ndelay = \"1s\"\nexclude = [\"*.tmp\", \"/cache/\", \"build/\"]\nrules = [\"-d^skip$\", \"+*\"]\ninitial_sync = true\nworkers = 2\n\n[big_file]\nthreshold = \"128MiB\"\ndelay = \"30m\"\n\n[rsync]\npath = \"rsync\"\nargs = [\"--checksum\"]\n",
    );
    fs::write(c.env.conf.join("legacy.rules"), "-d^skip$\n+*\n").unwrap();
    let (s2, d2) = (c.env.dir("src2"), c.env.p("dst2"));
    c.env.write_job(
        "mirror",
        &format!(
            "source = {}\ndestination = {}\nmode = \"mirror\"\ndelay = \"0s\"\nrules_file = \"legacy.rules\"\ninitial_sync = false\n",
            toml_path(&s2),
            toml_path(&d2)
        ),
    );
    // Minimal job: only the required keys.
    c.env.write_job(
        "minimal",
        &format!(
            "source = {}\ndestination = \"rel-dst\"\n",
            toml_path(&c.src)
        ),
    );
    // Not jobs: must not be read.
    fs::write(
        c.env.conf.join("jobs.d/web.toml.dpkg-old"),
        "garbage = = =\n",
    )
    .unwrap();
    fs::write(c.env.conf.join("jobs.d/web.toml~"), "dealy = 1\n").unwrap();
    fs::write(c.env.conf.join("jobs.d/README"), "not toml [\n").unwrap();
    let out = c.check();
    expect_ok(&out);
    assert!(
        out.errors().is_empty(),
        "a valid config printed diagnostics\n{}",
        out.describe()
    );
}

#[test]
fn check_parse_error_has_line() {
    let c = Conf::new();
    c.job("web", "enabled = tru\nworkers = 2\n");
    expect_diag(&c.check(), "web.toml", 3, &[], &[]);
}

#[test]
fn check_parse_error_unterminated_table_header() {
    let c = Conf::new();
    c.job("web", "delay = \"1s\"\n\n[rsync\nargs = []\n");
    expect_diag(&c.check(), "web.toml", 5, &[], &[]);
}

#[test]
fn check_unknown_key_at_line_and_column() {
    let c = Conf::new();
    c.job("web", "dealy = \"1s\"\n");
    expect_diag(&c.check(), "web.toml", 3, &[1], &["dealy"]);
    // Indented, inside a table.
    let c = Conf::new();
    c.job(
        "web",
        "delay = \"1s\"\n\n[rsync]\npath = \"rsync\"\n  paht = \"x\"\n",
    );
    expect_diag(&c.check(), "web.toml", 7, &[3], &["paht"]);
}

#[test]
fn check_bad_duration() {
    let c = Conf::new();
    let line = "delay = \"fast\"";
    c.job("web", &format!("{line}\n"));
    expect_diag(
        &c.check(),
        "web.toml",
        3,
        &[1, col(line, "\""), col(line, "fast")],
        &[],
    );
    let c = Conf::new();
    let line = "delay = \"5 parsecs\"";
    c.job("web", &format!("mode = \"rsync\"\n[big_file]\n{line}\n"));
    expect_diag(
        &c.check(),
        "web.toml",
        5,
        &[1, col(line, "\""), col(line, "5")],
        &[],
    );
}

#[test]
fn check_bad_size() {
    let c = Conf::new();
    let line = "threshold = \"lots\"";
    c.job("web", &format!("[big_file]\n{line}\n"));
    expect_diag(
        &c.check(),
        "web.toml",
        4,
        &[1, col(line, "\""), col(line, "lots")],
        &[],
    );
}

#[test]
fn check_wrong_type() {
    let c = Conf::new();
    let line = "workers = \"two\"";
    c.job("web", &format!("{line}\n"));
    expect_diag(
        &c.check(),
        "web.toml",
        3,
        &[1, col(line, "\""), col(line, "two")],
        &[],
    );
    let c = Conf::new();
    let line = "initial_sync = \"yes\"";
    c.job("web", &format!("enabled = true\n{line}\n"));
    expect_diag(
        &c.check(),
        "web.toml",
        4,
        &[1, col(line, "\""), col(line, "yes")],
        &[],
    );
}

#[test]
fn check_bad_mode() {
    let c = Conf::new();
    let line = "mode = \"ftp\"";
    c.job("web", &format!("{line}\n"));
    expect_diag(
        &c.check(),
        "web.toml",
        3,
        &[1, col(line, "\""), col(line, "ftp")],
        &[],
    );
}

#[test]
fn check_bad_exclude_glob() {
    let c = Conf::new();
    let line = "exclude = [\"*.tmp\", \"a[b\"]";
    c.job("web", &format!("{line}\n"));
    expect_diag(
        &c.check(),
        "web.toml",
        3,
        &cols_with(&[1, col(line, "[")], span(line, "\"a[b\"")),
        &[],
    );
}

#[test]
fn check_bad_rule_regex() {
    let c = Conf::new();
    let line = "rules = [\"+*\", \"-f(unclosed\"]";
    c.job("web", &format!("{line}\n"));
    expect_diag(
        &c.check(),
        "web.toml",
        3,
        &cols_with(&[1, col(line, "[")], span(line, "\"-f(unclosed\"")),
        &[],
    );
}

#[test]
fn check_destination_inside_source() {
    let c = Conf::new();
    let dst = c.src.join("sub/dst");
    let line = format!("destination = {}", toml_path(&dst));
    c.env.write_job(
        "web",
        &format!("source = {}\n{line}\ndelay = \"1s\"\n", toml_path(&c.src)),
    );
    expect_diag(
        &c.check(),
        "web.toml",
        2,
        &[1, col(&line, "\""), col(&line, "/")],
        &[],
    );
}

#[test]
fn check_source_not_a_directory() {
    let c = Conf::new();
    let file = c.env.p("a-file");
    fs::write(&file, "x").unwrap();
    let line = format!("source = {}", toml_path(&file));
    c.env.write_job(
        "web",
        &format!("{line}\ndestination = {}\n", toml_path(&c.dst)),
    );
    expect_diag(
        &c.check(),
        "web.toml",
        1,
        &[1, col(&line, "\""), col(&line, "/")],
        &[],
    );
}

#[test]
fn check_missing_source_is_not_an_error() {
    let c = Conf::new();
    c.env.write_job(
        "web",
        &format!(
            "source = {}\ndestination = {}\n",
            toml_path(&c.env.p("does-not-exist")),
            toml_path(&c.dst)
        ),
    );
    expect_ok(&c.check());
}

#[test]
fn check_missing_required_key() {
    let c = Conf::new();
    c.env.write_job(
        "web",
        &format!("source = {}\ndelay = \"1s\"\n", toml_path(&c.src)),
    );
    let out = c.check();
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "missing destination accepted\n{}",
        out.describe()
    );
    assert!(
        !out.errors_in("web.toml").is_empty(),
        "no file:line:col diagnostic\n{}",
        out.describe()
    );
}

#[test]
fn check_reports_errors_in_several_files() {
    let c = Conf::new();
    c.job("alpha", "dealy = \"1s\"\n");
    c.job("beta", "delay = \"1s\"\nmode = \"ftp\"\n");
    c.job("gamma", "delay = \"1s\"\n"); // valid
    c.job("delta", "mode = \"rsync\"\n"); // inherits the bad default delay
    c.env.write_main_config("[defaults]\ndelay = \"soon\"\n");
    let out = c.check();
    expect_diag(&out, "alpha.toml", 3, &[1], &["dealy"]);
    expect_diag(&out, "beta.toml", 4, &[], &[]);
    expect_diag(&out, "clsync.toml", 2, &[], &[]);
    assert!(
        out.errors_in("gamma.toml").is_empty(),
        "valid file reported\n{}",
        out.describe()
    );
}

/// A bad value in `[defaults]` is an error even when every job overrides it.
#[test]
fn check_bad_default_reported_even_if_overridden() {
    let c = Conf::new();
    c.job("web", "delay = \"1s\"\n");
    c.env.write_main_config("[defaults]\ndelay = \"soon\"\n");
    expect_diag(&c.check(), "clsync.toml", 2, &[], &[]);
}

#[test]
fn check_reports_every_error_in_one_file() {
    let c = Conf::new();
    c.job("web", "delay = \"fast\"\ndealy = \"1s\"\nmode = \"ftp\"\n");
    let out = c.check();
    expect_diag(&out, "web.toml", 3, &[], &[]);
    expect_diag(&out, "web.toml", 4, &[1], &["dealy"]);
    expect_diag(&out, "web.toml", 5, &[], &[]);
}

#[test]
fn check_single_file_form() {
    let c = Conf::new();
    // Outside any config dir, absolute paths.
    let good = c.env.p("single-good.toml");
    fs::write(&good, c.text("delay = \"200ms\"\nmode = \"mirror\"\n")).unwrap();
    expect_ok(&run_check(&c.env.root, &[good.as_os_str()]));
    let bad = c.env.p("single-bad.toml");
    fs::write(&bad, c.text("delay = \"200ms\"\ndealy = \"1s\"\n")).unwrap();
    expect_diag(
        &run_check(&c.env.root, &[bad.as_os_str()]),
        "single-bad.toml",
        4,
        &[1],
        &["dealy"],
    );
}

#[test]
fn check_file_with_config_dir() {
    let c = Conf::new();
    c.env.write_main_config("[defaults]\ndelay = \"200ms\"\n");
    let good = c.job("good", "mode = \"rsync\"\n");
    let out = run_check(
        &c.env.root,
        &[
            OsStr::new("--config-dir"),
            c.env.conf.as_os_str(),
            good.as_os_str(),
        ],
    );
    expect_ok(&out);
    // Relative paths in FILE resolve against DIR: DIR/notadir is a regular file.
    fs::write(c.env.conf.join("notadir"), "x").unwrap();
    let rel = c
        .env
        .write_job("rel", "source = \"notadir\"\ndestination = \"dst\"\n");
    let out = run_check(
        &c.env.root,
        &[
            OsStr::new("--config-dir"),
            c.env.conf.as_os_str(),
            rel.as_os_str(),
        ],
    );
    expect_diag(&out, "rel.toml", 1, &[], &[]);
}

#[test]
fn check_defaults_errors_in_main_config() {
    let c = Conf::new();
    c.env
        .write_main_config("[defaults]\ndelay = \"1s\"\nmode = \"carrier-pigeon\"\n");
    c.job("web", "");
    expect_diag(&c.check(), "clsync.toml", 3, &[], &[]);
}

/// `--as`: a validator's temporary copy (Ansible names it `source` or `.xyz.toml`) is checked
/// as the job or main file it will become.
#[test]
fn check_a_copy_as_the_file_it_will_be() {
    let c = Conf::new();
    c.env.write_main_config("[defaults]\ndelay = \"200ms\"\n");
    let conf = c.env.conf.as_os_str();
    let copy = c.env.p("source");
    fs::write(&copy, c.text("mode = \"mirror\"\n")).unwrap();
    let check_as = |name: &str| {
        run_check(
            &c.env.root,
            &[
                OsStr::new("--config-dir"),
                conf,
                OsStr::new("--as"),
                OsStr::new(name),
                copy.as_os_str(),
            ],
        )
    };
    // Without --as, the copy's own name is not a job file's.
    expect_diag(
        &run_check(
            &c.env.root,
            &[OsStr::new("--config-dir"), conf, copy.as_os_str()],
        ),
        "source",
        1,
        &[],
        &["NAME.toml"],
    );
    expect_ok(&check_as("web.toml"));
    expect_diag(&check_as("web"), "source", 1, &[], &["NAME.toml"]);
    // The same copy, as the main configuration: job keys are unknown there.
    expect_diag(&check_as("clsync.toml"), "source", 1, &[1], &["source"]);
    fs::write(&copy, "[daemon]\nlog_level = \"info\"\n").unwrap();
    expect_ok(&check_as("clsync.toml"));
    fs::write(&copy, "[daemon]\nlog_levl = \"info\"\n").unwrap();
    expect_diag(&check_as("clsync.toml"), "source", 2, &[1], &["log_levl"]);
}

/// A report piped into a reader that stops early (`clsync status --json | head`) ends
/// quietly, as `cat` would, not with a panic about a broken pipe.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_clsync"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reader is gone (dropped above); the rest of the script has nowhere to go.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
