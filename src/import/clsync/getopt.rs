//! The C clsync 0.4.5's command line, parsed as its `getopt_long` does.
//!
//! The option table is the one `clsync --help` of Debian's 0.4.5 prints: long names, their
//! short letters, and whether they take an argument. Options without "argument" there take
//! an optional one: `--name=VALUE`, or attached to the letter (`-d1`); `-d 1` makes `1` a
//! word of its own. As GNU getopt permutes, words that are not options are the sync
//! handler's arguments, before those after `--`. Long names may be abbreviated to any
//! unambiguous prefix.

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    Required,
    Optional,
}

/// The option table, one option a string in getopt's own notation: the long name, then `,`
/// and the short letter when there is one, then `:` when the option requires an argument or
/// `::` when its argument is optional.
const TABLE: &[&str] = &[
    "watch-dir,W:",
    "sync-handler,S:",
    "rules-file,R:",
    "destination-dir,D:",
    "mode,M:",
    "socket,s:",
    "socket-auth:",
    "socket-mod:",
    "socket-own:",
    "status-file:",
    "background,b::",
    "config-file,H:",
    "config-block,K:",
    "config-block-inherits:",
    "custom-signals:",
    "pid-file,z:",
    "uid,u:",
    "gid,g:",
    "privileged-uid:",
    "privileged-gid:",
    "sync-handler-uid:",
    "sync-handler-gid:",
    "chroot:",
    "pivot-root:",
    "detach-network:",
    "detach-ipc:",
    "detach-miscellanea::",
    "splitting:",
    "check-execvp-arguments::",
    "add-permitted-hook-files:",
    "forget-privthread-info::",
    "permit-mprotect::",
    "shm-mprotect::",
    "mountpoints:",
    "preserve-capabilities,C:",
    "inherit-capabilities::",
    "threading,p:",
    "retries,r:",
    "ignore-failures::",
    "exit-on-sync-skipping::",
    "output,Y:",
    "one-file-system::",
    "exclude-mount-points,X::",
    "max-iterations:",
    "standby-file:",
    "modification-signature:",
    "timeout-sync,k:",
    "delay-sync,w:",
    "delay-collect,t:",
    "delay-collect-bigfile,T:",
    "threshold-bigfile,B:",
    "cancel-syscalls:",
    "lists-dir,L:",
    "have-recursive-sync::",
    "synclist-simplify::",
    "rsync-inclimit:",
    "rsync-prefer-include::",
    "ignore-exitcode,x:",
    "dont-unlink-lists,U::",
    "fts-experimental-optimization::",
    "full-initialsync,F::",
    "only-initialsync::",
    "skip-initialsync::",
    "exit-on-no-events::",
    "exit-hook:",
    "pre-exit-hook:",
    "sync-on-quit::",
    "verbose,v::",
    "debug,d::",
    "dump-dir:",
    "quiet,q::",
    "monitor:",
    "label,l:",
    "help,h::",
    "version,V::",
];

/// One option of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    pub short: Option<char>,
    pub arg: Arg,
}

/// The options of the C program, in its table's order.
pub fn specs() -> impl Iterator<Item = Spec> {
    TABLE.iter().map(|entry| spec(entry))
}

/// An entry of [`TABLE`] read.
fn spec(entry: &'static str) -> Spec {
    let (head, arg) = match entry.strip_suffix("::") {
        Some(head) => (head, Arg::Optional),
        None => (
            entry.strip_suffix(':').expect("a table entry ends in ':'"),
            Arg::Required,
        ),
    };
    let (name, short) = match head.split_once(',') {
        Some((name, letter)) => (name, letter.chars().next()),
        None => (head, None),
    };
    Spec { name, short, arg }
}

/// One option given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The long name.
    pub name: &'static str,
    /// Its value; `None` for a flag given without one.
    pub value: Option<String>,
    /// As written, for messages (`-t5`, `--delay-collect 5`).
    pub written: String,
}

/// A parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CommandLine {
    pub options: Vec<Given>,
    /// The sync handler's arguments: words that are not options, then the words after `--`.
    /// `None` when there are none.
    pub handler_args: Option<Vec<String>>,
    /// Words that became handler arguments although they came before `--` (`-d 1`).
    pub stray: Vec<String>,
}

/// The option named `name`, exactly or by an unambiguous prefix.
pub fn long(name: &str) -> Result<&'static str, String> {
    if let Some(s) = specs().find(|s| s.name == name) {
        return Ok(s.name);
    }
    let matches: Vec<&str> = specs()
        .filter(|s| s.name.starts_with(name))
        .map(|s| s.name)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("unrecognized option '--{name}'")),
        many => Err(format!(
            "option '--{name}' is ambiguous; possibilities: {}",
            many.iter()
                .map(|m| format!("--{m}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

fn arg_of(name: &str) -> Arg {
    specs()
        .find(|s| s.name == name)
        .map(|s| s.arg)
        .unwrap_or(Arg::Optional)
}

/// Parses `words` as the C clsync's `getopt_long` would.
pub fn parse(words: &[String]) -> Result<CommandLine, String> {
    let mut cl = CommandLine::default();
    let mut handler: Vec<String> = Vec::new();
    let mut after: Option<Vec<String>> = None;
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if w == "--" {
            after = Some(words[i..].to_vec());
            break;
        }
        if let Some(body) = w.strip_prefix("--") {
            cl.options.push(long_option(w, body, words, &mut i)?);
        } else if w.len() > 1 && w.starts_with('-') {
            short_options(w, words, &mut i, &mut cl.options)?;
        } else {
            cl.stray.push(w.clone());
            handler.push(w.clone());
        }
    }
    if let Some(a) = after {
        handler.extend(a);
        cl.handler_args = Some(handler);
    } else if !handler.is_empty() {
        cl.handler_args = Some(handler);
    }
    Ok(cl)
}

/// The long option `w` (`--` + `body`); a required value not given inline is the next
/// word, `words[*next]`, which it then consumes.
fn long_option(w: &str, body: &str, words: &[String], next: &mut usize) -> Result<Given, String> {
    let (n, inline) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (body, None),
    };
    let name = long(n)?;
    let value = match (arg_of(name), inline) {
        (_, Some(v)) => Some(v),
        (Arg::Required, None) => Some(next_word(words, next, || {
            format!("option '--{name}' requires an argument")
        })?),
        (Arg::Optional, None) => None,
    };
    let written = match &value {
        Some(v) if !w.contains('=') => format!("{w} {v}"),
        _ => w.to_string(),
    };
    Ok(Given {
        name,
        value,
        written,
    })
}

/// The short options bundled in `w` (`-bU`, `-t5`, `-t 5`) into `out`; an option with a
/// value takes the rest of the word, or (a required one) the next word.
fn short_options(
    w: &str,
    words: &[String],
    next: &mut usize,
    out: &mut Vec<Given>,
) -> Result<(), String> {
    let letters: Vec<char> = w[1..].chars().collect();
    let mut j = 0;
    while j < letters.len() {
        let c = letters[j];
        j += 1;
        let Spec { name, arg, .. } = specs()
            .find(|s| s.short == Some(c))
            .ok_or(format!("invalid option -- '{c}'"))?;
        let rest: String = letters[j..].iter().collect();
        let value = if !rest.is_empty() {
            j = letters.len();
            Some(rest)
        } else if arg == Arg::Required {
            Some(next_word(words, next, || {
                format!("option requires an argument -- '{c}'")
            })?)
        } else {
            None
        };
        let written = match &value {
            Some(v) if arg == Arg::Required && !w.ends_with(v.as_str()) => format!("-{c} {v}"),
            Some(v) => format!("-{c}{v}"),
            None => format!("-{c}"),
        };
        out.push(Given {
            name,
            value,
            written,
        });
    }
    Ok(())
}

/// `words[*next]` as an option's value, consumed; `missing()` when there is none.
fn next_word(
    words: &[String],
    next: &mut usize,
    missing: impl FnOnce() -> String,
) -> Result<String, String> {
    let v = words.get(*next).ok_or_else(missing)?;
    *next += 1;
    Ok(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn names_and_values(cl: &CommandLine) -> Vec<(&str, Option<&str>)> {
        cl.options
            .iter()
            .map(|g| (g.name, g.value.as_deref()))
            .collect()
    }

    #[test]
    fn short_long_optional_and_permutation() {
        let cl = parse(&w(
            "-M rsyncdirect -w2 -t 5 --output=syslog -L /dev/shm/c -x 23 -d 1 --dest /mnt -- -aH x",
        ))
        .unwrap();
        let got = names_and_values(&cl);
        assert_eq!(
            got,
            [
                ("mode", Some("rsyncdirect")),
                ("delay-sync", Some("2")),
                ("delay-collect", Some("5")),
                ("output", Some("syslog")),
                ("lists-dir", Some("/dev/shm/c")),
                ("ignore-exitcode", Some("23")),
                ("debug", None),
                ("destination-dir", Some("/mnt")),
            ]
        );
        assert_eq!(cl.stray, ["1"]);
        assert_eq!(cl.handler_args.unwrap(), ["1", "-aH", "x"]);
    }

    #[test]
    fn errors_like_getopt() {
        assert!(
            parse(&w("-c 1.2.3.4"))
                .unwrap_err()
                .contains("invalid option -- 'c'")
        );
        assert!(parse(&w("--delay 1")).unwrap_err().contains("ambiguous"));
        assert!(
            parse(&w("-W"))
                .unwrap_err()
                .contains("requires an argument")
        );
        assert_eq!(long("exit-on-sync-skip").unwrap(), "exit-on-sync-skipping");
    }

    #[test]
    fn table_notation() {
        assert_eq!(
            spec("watch-dir,W:"),
            Spec {
                name: "watch-dir",
                short: Some('W'),
                arg: Arg::Required
            }
        );
        assert_eq!(
            spec("synclist-simplify::"),
            Spec {
                name: "synclist-simplify",
                short: None,
                arg: Arg::Optional
            }
        );
        assert_eq!(specs().count(), TABLE.len());
    }

    #[test]
    fn bundled_flags() {
        let cl = parse(&w("-b -U -Ftest -bU")).unwrap();
        let got = names_and_values(&cl);
        assert_eq!(
            got,
            [
                ("background", None),
                ("dont-unlink-lists", None),
                ("full-initialsync", Some("test")),
                // getopt: the rest of the word is an optional argument's value.
                ("background", Some("U")),
            ]
        );
    }
}
