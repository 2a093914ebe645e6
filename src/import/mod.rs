//! `clsync import`: turns the configuration of another sync daemon into a configuration
//! directory of this one.
//!
//! The contract, for every source format:
//!
//! - The original is only read. An lsyncd file is evaluated in a sandboxed Lua that runs
//!   nothing and reads only files beside it ([`lsyncd`]); a C clsync command line and its
//!   key file are parsed ([`clsync`]). No process is started, nothing outside DIR is written.
//! - The result is a configuration directory: one `DIR/jobs.d/NAME.toml` per job and, when
//!   daemon-wide settings carry something, `DIR/clsync.toml`. Values are written with TOML's
//!   own escaping ([`doc`]); the directory is one that `clsync check --config-dir DIR`
//!   accepts.
//! - What has no equivalent is written as a comment where it belongs and reported on stderr
//!   as a warning that names the original's line (or argument); a job that cannot be
//!   expressed at all is refused, with the reason, and not written.
//! - Existing files are not overwritten unless `--force`; when one exists, nothing is
//!   written ([`output`]).
//! - Exit status ([`Outcome::exit_code`]): 0 when everything was carried over, 5 when files
//!   were written but something is only a comment or was refused, 1 when nothing could be
//!   imported, 3 when the files could not be written.

pub mod clsync;
pub mod doc;
pub mod lsyncd;
pub mod names;
pub mod output;
mod paths;
pub mod report;
pub mod words;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

pub use doc::Doc;
pub use report::{Finding, Findings, Severity};

/// Everything was carried over.
pub const EXIT_COMPLETE: u8 = 0;
/// Nothing could be imported (the original cannot be read or evaluated, or every job in it
/// was refused); nothing was written.
pub const EXIT_NOT_IMPORTED: u8 = 1;
/// The files could not be written (one exists already, or an I/O error).
pub const EXIT_WRITE: u8 = 3;
/// Files were written, but something is only a comment in them, or some job was refused.
pub const EXIT_PARTIAL: u8 = 5;

const ABOUT: &str = "Convert an lsyncd or C clsync configuration into job files";

const LONG_ABOUT: &str = "\
Convert the configuration of lsyncd, or the command line and configuration file of the \
C clsync (0.4), into a configuration directory of this clsync: DIR/jobs.d/NAME.toml for \
every job and, when daemon settings carry over, DIR/clsync.toml. Review the files, run \
`clsync check --config-dir DIR`, then copy them to /etc/clsync.\n\n\
`clsync import lsyncd FILE` evaluates FILE, an lsyncd 2.x Lua configuration, in a \
sandbox: no os or io library, no modules, no processes; `dofile` and `excludeFrom` may \
read only files in FILE's directory or below it. Each sync{} based on default.rsync, \
default.rsyncssh or default.direct becomes a job (mode rsync, rsync over ssh, mirror); \
settings{} becomes clsync.toml. A sync{} that runs its own Lua actions (onCreate, action, \
...) cannot be carried over and is refused with its line. Jobs are named after \
sync{name=...}, else after their target.\n\n\
`clsync import clsync ARGS...` reads a C clsync command line (the words after `clsync` in \
an ExecStart= line or CLSYNC_ARGS, as separate arguments or as one quoted string) and \
the blocks of its configuration file (-H, -K, config-block-inherits): mode, watch and \
destination directories, rules file, delays, big-file threshold, exit codes, retries, \
threading, lists directory. Modes rsyncdirect and rsyncshell become rsync and \
rsync-shell; so and rsyncso (loaded libraries) are refused.\n\n\
Whatever has no equivalent is written as a comment in the job file and reported on \
stderr as a warning naming the line or argument of the original. Relative paths are \
resolved against the current directory, as the original programs did.\n\n\
Exit status: 0 everything was carried over; 5 files were written, but some settings are \
only comments or some jobs were refused (see the warnings); 1 nothing could be imported; \
2 usage error; 3 the files could not be written (one exists and --force was not given, \
or an I/O error).\n\n\
Examples:\n  \
clsync import lsyncd /etc/lsyncd/lsyncd.conf.lua --out /tmp/imported\n  \
clsync import clsync --out /tmp/imported -- -M rsyncdirect -W /var/www -D /mnt/backup\n  \
clsync import clsync --out /tmp/imported 'ExecStart=/usr/bin/clsync -K www'";

/// `clsync import`: the command line (its definition lives here so that `main` only
/// dispatches).
#[derive(clap::Args, Debug)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct ImportArgs {
    /// The configuration directory to write: DIR/jobs.d/NAME.toml, DIR/clsync.toml.
    /// Created if missing.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "clsync-import",
        global = true
    )]
    pub out: PathBuf,
    /// Overwrite files that exist in DIR (without it, nothing is written when one exists).
    #[arg(long, global = true)]
    pub force: bool,
    #[command(subcommand)]
    pub from: ImportFrom,
}

/// What to import.
#[derive(clap::Subcommand, Debug)]
pub enum ImportFrom {
    /// Convert an lsyncd 2.x configuration file (Lua), evaluated in a sandbox.
    Lsyncd {
        /// The lsyncd configuration, e.g. /etc/lsyncd/lsyncd.conf.lua.
        file: PathBuf,
    },
    /// Convert a C clsync command line and the configuration file blocks it names.
    #[command(
        long_about = "Convert a C clsync (0.4) command line, and the blocks of the \
configuration file it reads (-H FILE, or the first of ~/.clsync.conf, \
/etc/clsync/clsync.conf, /etc/clsync.conf, /usr/local/etc/clsync/clsync.conf, \
/usr/local/etc/clsync.conf; -K BLOCK, default \"default\"; config-block-inherits), into \
one job. Give the options after `--` (e.g. `-- -M rsyncdirect -W /src -D /dst`), or the \
whole line as one argument (an ExecStart= line, a CLSYNC_ARGS='...' line, or just the \
options); words after the options' `--` are the sync handler's arguments."
    )]
    Clsync {
        /// The C clsync's arguments.
        #[arg(
            value_name = "ARGS",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<OsString>,
    },
}

/// What an import produced: the files' contents and everything worth telling.
#[derive(Debug, Default)]
pub struct Imported {
    /// One document per job; names are made unique when written.
    pub jobs: Vec<Job>,
    /// `clsync.toml`: the `[daemon]` table and comments (written only when not empty).
    pub main: Doc,
    pub findings: Findings,
}

/// One job to write.
#[derive(Debug)]
pub struct Job {
    /// The wanted name (the file stem); [`names::make_unique`] may add a suffix.
    pub name: String,
    pub doc: Doc,
}

/// How an import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    Partial,
    NotImported,
    WriteFailed,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Complete => EXIT_COMPLETE,
            Outcome::Partial => EXIT_PARTIAL,
            Outcome::NotImported => EXIT_NOT_IMPORTED,
            Outcome::WriteFailed => EXIT_WRITE,
        }
    }
}

/// Runs `clsync import`: converts, reports on stderr, writes, lists the files on stdout.
pub fn run(args: ImportArgs) -> ExitCode {
    let imported = match &args.from {
        ImportFrom::Lsyncd { file } => lsyncd::import(file),
        ImportFrom::Clsync { args } => clsync::import(args),
    };
    ExitCode::from(finish(imported, &args.out, args.force).exit_code())
}

/// Reports the findings, then writes the files when there is a job to write.
pub fn finish(mut imported: Imported, out: &std::path::Path, force: bool) -> Outcome {
    names::make_unique(&mut imported.jobs);
    for f in imported.findings.iter() {
        eprintln!("clsync import: {f}");
    }
    if imported.jobs.is_empty() {
        eprintln!("clsync import: nothing to write: no job could be imported");
        return Outcome::NotImported;
    }
    match output::write(out, &imported, force) {
        Ok(files) => {
            for f in &files {
                println!("{}", f.display());
            }
            println!(
                "Review the files, then: clsync check --config-dir {}",
                out.display()
            );
        }
        Err(e) => {
            eprintln!("clsync import: {e}");
            return Outcome::WriteFailed;
        }
    }
    if imported.findings.lost_something() {
        eprintln!(
            "clsync import: not everything was carried over: see the warnings above and the comments in the files"
        );
        Outcome::Partial
    } else {
        Outcome::Complete
    }
}
