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

/// (long name, short letter, argument).
pub const OPTIONS: &[(&str, Option<char>, Arg)] = &[
    ("watch-dir", Some('W'), Arg::Required),
    ("sync-handler", Some('S'), Arg::Required),
    ("rules-file", Some('R'), Arg::Required),
    ("destination-dir", Some('D'), Arg::Required),
    ("mode", Some('M'), Arg::Required),
    ("socket", Some('s'), Arg::Required),
    ("socket-auth", None, Arg::Required),
    ("socket-mod", None, Arg::Required),
    ("socket-own", None, Arg::Required),
    ("status-file", None, Arg::Required),
    ("background", Some('b'), Arg::Optional),
    ("config-file", Some('H'), Arg::Required),
    ("config-block", Some('K'), Arg::Required),
    ("config-block-inherits", None, Arg::Required),
    ("custom-signals", None, Arg::Required),
    ("pid-file", Some('z'), Arg::Required),
    ("uid", Some('u'), Arg::Required),
    ("gid", Some('g'), Arg::Required),
    ("privileged-uid", None, Arg::Required),
    ("privileged-gid", None, Arg::Required),
    ("sync-handler-uid", None, Arg::Required),
    ("sync-handler-gid", None, Arg::Required),
    ("chroot", None, Arg::Required),
    ("pivot-root", None, Arg::Required),
    ("detach-network", None, Arg::Required),
    ("detach-ipc", None, Arg::Required),
    ("detach-miscellanea", None, Arg::Optional),
    ("splitting", None, Arg::Required),
    ("check-execvp-arguments", None, Arg::Optional),
    ("add-permitted-hook-files", None, Arg::Required),
    ("forget-privthread-info", None, Arg::Optional),
    ("permit-mprotect", None, Arg::Optional),
    ("shm-mprotect", None, Arg::Optional),
    ("mountpoints", None, Arg::Required),
    ("preserve-capabilities", Some('C'), Arg::Required),
    ("inherit-capabilities", None, Arg::Optional),
    ("threading", Some('p'), Arg::Required),
    ("retries", Some('r'), Arg::Required),
    ("ignore-failures", None, Arg::Optional),
    ("exit-on-sync-skipping", None, Arg::Optional),
    ("output", Some('Y'), Arg::Required),
    ("one-file-system", None, Arg::Optional),
    ("exclude-mount-points", Some('X'), Arg::Optional),
    ("max-iterations", None, Arg::Required),
    ("standby-file", None, Arg::Required),
    ("modification-signature", None, Arg::Required),
    ("timeout-sync", Some('k'), Arg::Required),
    ("delay-sync", Some('w'), Arg::Required),
    ("delay-collect", Some('t'), Arg::Required),
    ("delay-collect-bigfile", Some('T'), Arg::Required),
    ("threshold-bigfile", Some('B'), Arg::Required),
    ("cancel-syscalls", None, Arg::Required),
    ("lists-dir", Some('L'), Arg::Required),
    ("have-recursive-sync", None, Arg::Optional),
    ("synclist-simplify", None, Arg::Optional),
    ("rsync-inclimit", None, Arg::Required),
    ("rsync-prefer-include", None, Arg::Optional),
    ("ignore-exitcode", Some('x'), Arg::Required),
    ("dont-unlink-lists", Some('U'), Arg::Optional),
    ("fts-experimental-optimization", None, Arg::Optional),
    ("full-initialsync", Some('F'), Arg::Optional),
    ("only-initialsync", None, Arg::Optional),
    ("skip-initialsync", None, Arg::Optional),
    ("exit-on-no-events", None, Arg::Optional),
    ("exit-hook", None, Arg::Required),
    ("pre-exit-hook", None, Arg::Required),
    ("sync-on-quit", None, Arg::Optional),
    ("verbose", Some('v'), Arg::Optional),
    ("debug", Some('d'), Arg::Optional),
    ("dump-dir", None, Arg::Required),
    ("quiet", Some('q'), Arg::Optional),
    ("monitor", None, Arg::Required),
    ("label", Some('l'), Arg::Required),
    ("help", Some('h'), Arg::Optional),
    ("version", Some('V'), Arg::Optional),
];

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
    if let Some((n, _, _)) = OPTIONS.iter().find(|(n, _, _)| *n == name) {
        return Ok(n);
    }
    let matches: Vec<&str> = OPTIONS
        .iter()
        .filter(|(n, _, _)| n.starts_with(name))
        .map(|(n, _, _)| *n)
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
    OPTIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, a)| *a)
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
        let (name, _, arg) = OPTIONS
            .iter()
            .find(|(_, s, _)| *s == Some(c))
            .ok_or(format!("invalid option -- '{c}'"))?;
        let rest: String = letters[j..].iter().collect();
        let value = if !rest.is_empty() {
            j = letters.len();
            Some(rest)
        } else if *arg == Arg::Required {
            Some(next_word(words, next, || {
                format!("option requires an argument -- '{c}'")
            })?)
        } else {
            None
        };
        let written = match &value {
            Some(v) if *arg == Arg::Required && !w.ends_with(v.as_str()) => format!("-{c} {v}"),
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

    #[test]
    fn short_long_optional_and_permutation() {
        let cl = parse(&w(
            "-M rsyncdirect -w2 -t 5 --output=syslog -L /dev/shm/c -x 23 -d 1 --dest /mnt -- -aH x",
        ))
        .unwrap();
        let got: Vec<(&str, Option<&str>)> = cl
            .options
            .iter()
            .map(|g| (g.name, g.value.as_deref()))
            .collect();
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
    fn bundled_flags() {
        let cl = parse(&w("-b -U -Ftest -bU")).unwrap();
        let got: Vec<(&str, Option<&str>)> = cl
            .options
            .iter()
            .map(|g| (g.name, g.value.as_deref()))
            .collect();
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
