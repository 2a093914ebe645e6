//! The options of `[ssh] options` that name files ssh reads or writes (identities,
//! certificates, configuration, known-hosts files), so that the sandbox lets ssh reach them.

use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct Named {
    pub identities: Vec<PathBuf>,
    pub read: Vec<PathBuf>,
    pub known_hosts: Vec<PathBuf>,
}

impl Named {
    /// `-i F`, `-F F`, `-o Key=V` / `-oKey=V` / `-o "Key V"` with Key IdentityFile,
    /// CertificateFile, UserKnownHostsFile, GlobalKnownHostsFile.
    pub fn scan(&mut self, args: &[String], home: Option<&Path>) {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.get(..2) {
                Some(f @ ("-i" | "-F" | "-o")) => (f, &a[2..]),
                _ => continue,
            };
            let value = if inline.is_empty() {
                match it.next() {
                    Some(v) => v.as_str(),
                    None => break,
                }
            } else {
                inline
            };
            match flag {
                "-i" => self.identities.extend(expand(value, home)),
                "-F" => self.read.extend(expand(value, home)),
                _ => self.option(value, home),
            }
        }
    }

    fn option(&mut self, kv: &str, home: Option<&Path>) {
        let Some((k, v)) = kv
            .split_once('=')
            .or_else(|| kv.split_once(char::is_whitespace))
        else {
            return;
        };
        let files = v.split_whitespace().filter_map(|f| expand(f, home));
        match k.trim().to_ascii_lowercase().as_str() {
            "identityfile" => self.identities.extend(files),
            "certificatefile" | "globalknownhostsfile" => self.read.extend(files),
            "userknownhostsfile" => self.known_hosts.extend(files),
            _ => {}
        }
    }
}

/// `~/x` in the user's home; only absolute results count (`none` does not).
fn expand(f: &str, home: Option<&Path>) -> Option<PathBuf> {
    let p = match (f.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(f),
    };
    p.is_absolute().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_options_that_name_files() {
        let mut n = Named::default();
        let args = [
            "-i",
            "/k/id",
            "-oUserKnownHostsFile=~/kh /k/kh2",
            "-o",
            "IdentityFile /k/id2",
            "-F",
            "/k/cfg",
            "-o",
            "ConnectTimeout=5",
            "-oGlobalKnownHostsFile=none",
        ]
        .map(String::from);
        n.scan(&args, Some(Path::new("/home/u")));
        assert_eq!(n.identities, [PathBuf::from("/k/id"), "/k/id2".into()]);
        assert_eq!(
            n.known_hosts,
            [PathBuf::from("/home/u/kh"), "/k/kh2".into()]
        );
        assert_eq!(n.read, [PathBuf::from("/k/cfg")]);
    }
}
