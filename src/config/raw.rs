//! The configuration files as written, before defaults are applied and values are checked.
//!
//! Every field is optional here so that `[defaults]` and job files share one shape, and every
//! value keeps its span for `file:line:column` diagnostics. Files are read key by key from
//! toml's spanned document tree rather than with one `Deserialize` call, so that one bad key
//! does not hide the others: every unknown key and every mistyped value is reported.

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostic, SourceFile};

/// A job file (`jobs.d/NAME.toml`), and the `[defaults]` table of `clsync.toml`.
#[derive(Debug, Default, Clone)]
pub struct RawJob {
    pub source: Option<Spanned<String>>,
    pub destination: Option<Spanned<String>>,
    pub destinations: Option<Spanned<Vec<Spanned<String>>>>,
    pub mode: Option<Spanned<String>>,
    pub enabled: Option<Spanned<bool>>,
    pub delay: Option<Spanned<toml::Value>>,
    pub exclude: Option<Spanned<Vec<Spanned<String>>>>,
    pub rules: Option<Spanned<Vec<Spanned<String>>>>,
    pub rules_file: Option<Spanned<String>>,
    pub exclude_from: Option<Spanned<String>>,
    /// `true`, `false`, `"startup"` or `"running"`.
    pub delete: Option<Spanned<toml::Value>>,
    pub initial_sync: Option<Spanned<bool>>,
    pub workers: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<toml::Value>>,
    pub verify_interval: Option<Spanned<toml::Value>>,
    pub loop_guard: Option<Spanned<bool>>,
    pub retries: Option<Spanned<i64>>,
    pub retry_delay: Option<Spanned<toml::Value>>,
    pub retry_max_delay: Option<Spanned<toml::Value>>,
    pub user: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub ignore_exit_codes: Option<Spanned<Vec<Spanned<i64>>>>,
    /// `true`, `false` or `"auto"`.
    pub sandbox: Option<Spanned<toml::Value>>,
    pub sandbox_read: Option<Spanned<Vec<Spanned<String>>>>,
    pub sandbox_write: Option<Spanned<Vec<Spanned<String>>>>,
    pub big_file: Option<RawBigFile>,
    pub rsync: Option<RawRsync>,
    pub ssh: Option<RawSsh>,
    pub command: Option<RawCommand>,
    pub rclone: Option<RawRclone>,
}

/// `[big_file]`: files at or above `threshold` wait `delay` instead of the job's delay.
#[derive(Debug, Default, Clone)]
pub struct RawBigFile {
    pub threshold: Option<Spanned<toml::Value>>,
    pub delay: Option<Spanned<toml::Value>>,
}

/// `[ssh]`: how rsync (and the remote move of renames) reach a remote destination.
#[derive(Debug, Default, Clone)]
pub struct RawSsh {
    pub command: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub identity_file: Option<Spanned<String>>,
    pub options: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[rsync]`: which rsync to run and extra arguments for it.
#[derive(Debug, Default, Clone)]
pub struct RawRsync {
    pub path: Option<Spanned<String>>,
    pub args: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[rclone]`: the rclone program, its configuration file and extra arguments.
#[derive(Debug, Default, Clone)]
pub struct RawRclone {
    /// Where the table's name is (`[rclone]`), for "not in this mode" errors.
    pub span: std::ops::Range<usize>,
    pub path: Option<Spanned<String>>,
    pub config: Option<Spanned<String>>,
    pub args: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[command]`: the external handler of the command modes (direct, shell, simple,
/// rsync-shell).
#[derive(Debug, Default, Clone)]
pub struct RawCommand {
    /// Where the table's name is (`[command]`), for "not in this mode" errors.
    pub span: std::ops::Range<usize>,
    pub path: Option<Spanned<String>>,
    pub args: Option<Spanned<Vec<Spanned<String>>>>,
    pub lists_dir: Option<Spanned<String>>,
    pub keep_lists: Option<Spanned<bool>>,
}

/// `clsync.toml`.
#[derive(Debug, Default, Clone)]
pub struct RawMain {
    pub daemon: Option<RawDaemon>,
    pub defaults: Option<RawJob>,
}

/// `[daemon]` in `clsync.toml`: settings of the daemon itself, not of any job.
#[derive(Debug, Default, Clone)]
pub struct RawDaemon {
    pub log_level: Option<Spanned<String>>,
    pub socket: Option<Spanned<String>>,
    pub pid_file: Option<Spanned<String>>,
    pub status_file: Option<Spanned<String>>,
    pub status_file_mode: Option<Spanned<String>>,
    pub log_target: Option<Spanned<String>>,
    pub syslog_facility: Option<Spanned<String>>,
    pub metrics_file: Option<Spanned<String>>,
    pub metrics_file_interval: Option<Spanned<String>>,
    pub metrics_listen: Option<Spanned<String>>,
}

/// The keys of a job file, in the order the documentation lists them.
pub const JOB_KEYS: &[&str] = &[
    "source",
    "destination",
    "destinations",
    "mode",
    "enabled",
    "delay",
    "exclude",
    "rules",
    "rules_file",
    "exclude_from",
    "delete",
    "initial_sync",
    "workers",
    "timeout",
    "retries",
    "retry_delay",
    "retry_max_delay",
    "verify_interval",
    "loop_guard",
    "user",
    "group",
    "ignore_exit_codes",
    "sandbox",
    "sandbox_read",
    "sandbox_write",
    "big_file",
    "rsync",
    "ssh",
    "command",
    "rclone",
];
const BIG_FILE_KEYS: &[&str] = &["threshold", "delay"];
const RSYNC_KEYS: &[&str] = &["path", "args"];
const SSH_KEYS: &[&str] = &["command", "port", "identity_file", "options"];
const COMMAND_KEYS: &[&str] = &["path", "args", "lists_dir", "keep_lists"];
const RCLONE_KEYS: &[&str] = &["path", "config", "args"];
const MAIN_KEYS: &[&str] = &["daemon", "defaults"];
const DAEMON_KEYS: &[&str] = &[
    "log_level",
    "socket",
    "pid_file",
    "status_file",
    "status_file_mode",
    "log_target",
    "syslog_facility",
    "metrics_file",
    "metrics_file_interval",
    "metrics_listen",
];

/// Reads one file's tables and values, pushing a diagnostic for every problem.
struct Reader<'a> {
    file: &'a SourceFile,
    diags: &'a mut Vec<Diagnostic>,
}

type Entry<'i> = (
    &'i Spanned<std::borrow::Cow<'i, str>>,
    &'i Spanned<DeValue<'i>>,
);

impl Reader<'_> {
    fn value<T: DeserializeOwned>(&mut self, v: &Spanned<DeValue<'_>>) -> Option<T> {
        match T::deserialize(v.clone().into_deserializer()) {
            Ok(t) => Some(t),
            Err(e) => {
                let at = e.span().unwrap_or(v.span());
                self.diags
                    .push(self.file.error(at, e.message().trim().to_string()));
                None
            }
        }
    }

    fn table<'v, 'i>(&mut self, name: &str, v: &'v Spanned<DeValue<'i>>) -> Option<Vec<Entry<'v>>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t.iter().collect()),
            other => {
                self.diags.push(self.file.error(
                    v.span(),
                    format!("`{name}` must be a table, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn unknown(&mut self, key: &Spanned<std::borrow::Cow<'_, str>>, known: &[&str]) {
        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        let hint = known
            .iter()
            .filter(|k| edit_distance(k, key.get_ref()) <= 2)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .next()
            .unwrap_or_default();
        self.diags.push(self.file.error(
            key.span(),
            format!(
                "unknown field `{}`, expected one of {}{hint}",
                key.get_ref(),
                list.join(", ")
            ),
        ));
    }

    fn job(&mut self, entries: Vec<Entry<'_>>) -> RawJob {
        let mut r = RawJob::default();
        for (k, v) in entries {
            match k.get_ref().as_ref() {
                "source" => r.source = self.value(v),
                "destination" => r.destination = self.value(v),
                "destinations" => r.destinations = self.value(v),
                "mode" => r.mode = self.value(v),
                "enabled" => r.enabled = self.value(v),
                "delay" => r.delay = self.value(v),
                "exclude" => r.exclude = self.value(v),
                "rules" => r.rules = self.value(v),
                "rules_file" => r.rules_file = self.value(v),
                "exclude_from" => r.exclude_from = self.value(v),
                "delete" => r.delete = self.value(v),
                "initial_sync" => r.initial_sync = self.value(v),
                "workers" => r.workers = self.value(v),
                "timeout" => r.timeout = self.value(v),
                "verify_interval" => r.verify_interval = self.value(v),
                "loop_guard" => r.loop_guard = self.value(v),
                "retries" => r.retries = self.value(v),
                "retry_delay" => r.retry_delay = self.value(v),
                "retry_max_delay" => r.retry_max_delay = self.value(v),
                "user" => r.user = self.value(v),
                "group" => r.group = self.value(v),
                "ignore_exit_codes" => r.ignore_exit_codes = self.value(v),
                "sandbox" => r.sandbox = self.value(v),
                "sandbox_read" => r.sandbox_read = self.value(v),
                "sandbox_write" => r.sandbox_write = self.value(v),
                "big_file" => r.big_file = self.table("big_file", v).map(|t| self.big_file(t)),
                "rsync" => r.rsync = self.table("rsync", v).map(|t| self.rsync(t)),
                "ssh" => r.ssh = self.table("ssh", v).map(|t| self.ssh(t)),
                "command" => {
                    r.command = self.table("command", v).map(|t| self.command(k.span(), t))
                }
                "rclone" => r.rclone = self.table("rclone", v).map(|t| self.rclone(k.span(), t)),
                _ => self.unknown(k, JOB_KEYS),
            }
        }
        r
    }

    fn big_file(&mut self, table: Vec<Entry<'_>>) -> RawBigFile {
        let mut b = RawBigFile::default();
        for (k, v) in table {
            match k.get_ref().as_ref() {
                "threshold" => b.threshold = self.value(v),
                "delay" => b.delay = self.value(v),
                _ => self.unknown(k, BIG_FILE_KEYS),
            }
        }
        b
    }

    fn rsync(&mut self, table: Vec<Entry<'_>>) -> RawRsync {
        let mut b = RawRsync::default();
        for (k, v) in table {
            match k.get_ref().as_ref() {
                "path" => b.path = self.value(v),
                "args" => b.args = self.value(v),
                _ => self.unknown(k, RSYNC_KEYS),
            }
        }
        b
    }

    fn ssh(&mut self, table: Vec<Entry<'_>>) -> RawSsh {
        let mut b = RawSsh::default();
        for (k, v) in table {
            match k.get_ref().as_ref() {
                "command" => b.command = self.value(v),
                "port" => b.port = self.value(v),
                "identity_file" => b.identity_file = self.value(v),
                "options" => b.options = self.value(v),
                _ => self.unknown(k, SSH_KEYS),
            }
        }
        b
    }

    /// `[rclone]`; `span` is where its name is written.
    fn rclone(&mut self, span: std::ops::Range<usize>, table: Vec<Entry<'_>>) -> RawRclone {
        let mut c = RawRclone {
            span,
            ..RawRclone::default()
        };
        for (k, v) in table {
            match k.get_ref().as_ref() {
                "path" => c.path = self.value(v),
                "config" => c.config = self.value(v),
                "args" => c.args = self.value(v),
                _ => self.unknown(k, RCLONE_KEYS),
            }
        }
        c
    }

    /// `[command]`; `span` is where its name is written.
    fn command(&mut self, span: std::ops::Range<usize>, table: Vec<Entry<'_>>) -> RawCommand {
        let mut c = RawCommand {
            span,
            ..RawCommand::default()
        };
        for (k, v) in table {
            match k.get_ref().as_ref() {
                "path" => c.path = self.value(v),
                "args" => c.args = self.value(v),
                "lists_dir" => c.lists_dir = self.value(v),
                "keep_lists" => c.keep_lists = self.value(v),
                _ => self.unknown(k, COMMAND_KEYS),
            }
        }
        c
    }
}

fn parse_doc<'i>(file: &'i SourceFile, diags: &mut Vec<Diagnostic>) -> Option<DeTable<'i>> {
    match DeTable::parse(&file.text) {
        Ok(t) => Some(t.into_inner()),
        Err(e) => {
            let start = e.span().map_or(0, |s| s.start);
            diags.push(file.error(start..start, e.message().trim().to_string()));
            None
        }
    }
}

/// Reads a job file. `None` when it is not even valid TOML.
pub fn read_job(file: &SourceFile, diags: &mut Vec<Diagnostic>) -> Option<RawJob> {
    let doc = parse_doc(file, diags)?;
    let mut r = Reader { file, diags };
    Some(r.job(doc.iter().collect()))
}

/// Reads `clsync.toml`. `None` when it is not even valid TOML.
pub fn read_main(file: &SourceFile, diags: &mut Vec<Diagnostic>) -> Option<RawMain> {
    let doc = parse_doc(file, diags)?;
    let mut r = Reader { file, diags };
    let mut m = RawMain::default();
    for (k, v) in doc.iter() {
        match k.get_ref().as_ref() {
            "daemon" => {
                if let Some(t) = r.table("daemon", v) {
                    let mut d = RawDaemon::default();
                    for (k, v) in t {
                        match k.get_ref().as_ref() {
                            "log_level" => d.log_level = r.value(v),
                            "socket" => d.socket = r.value(v),
                            "pid_file" => d.pid_file = r.value(v),
                            "status_file" => d.status_file = r.value(v),
                            "status_file_mode" => d.status_file_mode = r.value(v),
                            "log_target" => d.log_target = r.value(v),
                            "syslog_facility" => d.syslog_facility = r.value(v),
                            "metrics_file" => d.metrics_file = r.value(v),
                            "metrics_file_interval" => d.metrics_file_interval = r.value(v),
                            "metrics_listen" => d.metrics_listen = r.value(v),
                            _ => r.unknown(k, DAEMON_KEYS),
                        }
                    }
                    m.daemon = Some(d);
                }
            }
            "defaults" => {
                if let Some(t) = r.table("defaults", v) {
                    m.defaults = Some(r.job(t));
                }
            }
            _ => r.unknown(k, MAIN_KEYS),
        }
    }
    Some(m)
}

/// Levenshtein distance, for "did you mean" hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_bad_key_and_value_is_reported() {
        let f = SourceFile::new(
            Path::new("j.toml"),
            "dealy = \"1s\"\nenabled = \"yes\"\nworkers = 2\nnope = 1\n[rsync]\npaht = \"x\"\n"
                .into(),
        );
        let mut d = Vec::new();
        let r = read_job(&f, &mut d).unwrap();
        let msgs: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:#?}");
        assert!(
            msgs[0].starts_with("j.toml:1:1: unknown field `dealy`")
                && msgs[0].contains("did you mean `delay`")
        );
        assert!(msgs[1].starts_with("j.toml:2:11: "), "{}", msgs[1]);
        assert!(msgs[2].starts_with("j.toml:4:1: unknown field `nope`"));
        assert!(msgs[3].starts_with("j.toml:6:1: unknown field `paht`"));
        assert_eq!(r.workers.map(|w| *w.get_ref()), Some(2));
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("delay", "dealy"), 2);
        assert_eq!(edit_distance("mode", "mode"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}

#[cfg(test)]
mod schema_tests {
    //! The checked-in JSON Schema must describe exactly the keys the parser accepts.

    use crate::config::load_dir;
    use std::fs;
    use std::path::Path;

    fn example(schema: &serde_json::Value) -> String {
        let mut top = String::new();
        let mut tables = String::new();
        let props = schema["properties"].as_object().unwrap();
        for (key, spec) in props {
            if key == "destinations" || key == "rclone" {
                // Exclusive with `destination`, and mode rclone's own table (an error in
                // the example's mode): checked by their own tests.
                continue;
            }
            if let Some(sub) = spec.get("properties").and_then(|p| p.as_object()) {
                tables.push_str(&format!("[{key}]\n"));
                for (k, s) in sub {
                    tables.push_str(&format!("{k} = {}\n", value_for(k, s)));
                }
            } else {
                top.push_str(&format!("{key} = {}\n", value_for(key, spec)));
            }
        }
        top + &tables
    }

    fn value_for(key: &str, spec: &serde_json::Value) -> &'static str {
        match key {
            "source" => "\"src\"",
            "destination" => "\"dst\"",
            "mode" => "\"shell\"",
            "lists_dir" => "\"lists\"",
            "delay" | "timeout" | "verify_interval" | "retry_delay" | "retry_max_delay" => "\"2s\"",
            "threshold" => "\"1MiB\"",
            "rules" => "[\"-d^x$\"]",
            "rules_file" => "\"r.rules\"",
            "exclude_from" => "\"x.excl\"",
            "delete" => "\"startup\"",
            "path" => "\"rsync\"",
            "user" | "group" => "\"root\"",
            "sandbox" => "\"auto\"",
            _ => match spec["type"].as_str() {
                Some("string") => "\"x\"",
                Some("boolean") => "true",
                Some("integer") => "1",
                Some("array") => "[]",
                _ => panic!("no example value for {key}"),
            },
        }
    }

    #[test]
    fn schema_matches_the_parser() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/job.schema.json"),
        )
        .unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        fs::write(t.path().join("r.rules"), "+*\n").unwrap();
        fs::write(t.path().join("x.excl"), "*.tmp\n").unwrap();
        fs::create_dir(t.path().join("jobs.d")).unwrap();
        let job = example(&schema);
        fs::write(t.path().join("jobs.d/all.toml"), &job).unwrap();
        // Mode rclone's table, in a job of that mode.
        let mut rclone =
            String::from("source = \"src\"\ndestination = \"r:x\"\nmode = \"rclone\"\n[rclone]\n");
        for (k, s) in schema["properties"]["rclone"]["properties"]
            .as_object()
            .unwrap()
        {
            rclone.push_str(&format!("{k} = {}\n", value_for(k, s)));
        }
        fs::write(t.path().join("jobs.d/rclone.toml"), &rclone).unwrap();
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{job}\n{rclone}\n{:#?}", l.diagnostics);
        fs::remove_file(t.path().join("jobs.d/rclone.toml")).unwrap();
        // A key the schema does not list is rejected, and the parser's own list of keys
        // (from its "expected one of" message) is the schema's.
        fs::write(t.path().join("jobs.d/all.toml"), "surprise = 1\n").unwrap();
        let l = load_dir(t.path());
        let msg = &l.errors().next().expect("unknown key rejected").message;
        let mut parser_keys: Vec<&str> = msg
            .split("expected one of ")
            .nth(1)
            .expect("serde lists the fields")
            .split(", ")
            .map(|k| k.trim_matches('`'))
            .collect();
        parser_keys.sort();
        let mut schema_keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        schema_keys.sort();
        assert_eq!(parser_keys, schema_keys);
    }
}
