//! [`RsyncTarget`]: what every rsync call of a job shares — the source, the destination,
//! the job's rsync options and filter — and what the receiving rsync has shown it accepts
//! (`--delete-missing-args`), learned from the runs. The rsync handler and the command modes
//! that run rsync each own one; neither owns the other's handler.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::debug;

use super::excludes;
use crate::config::{Destination, HandlerOptions};
use crate::fs::Lookup;
use crate::handler::deletions::DeletionPass;
use crate::handler::receiver::{self, MissingArgs, Receiver};
use crate::handler::{HandlerError, Outcome};
use crate::model::Batch;
use crate::rules::Filter;

/// A job's rsync and its receiver. See the module documentation.
pub(crate) struct RsyncTarget {
    pub(crate) source: PathBuf,
    pub(crate) destination: Destination,
    pub(crate) options: HandlerOptions,
    pub(crate) filter: Arc<Filter>,
    /// Whether the receiving rsync takes `--delete-missing-args`.
    receiver: Receiver,
}

/// True when some entry of `batch` is missing at the source.
fn has_missing(source: &Path, batch: &Batch) -> bool {
    let mut look = Lookup::new(source);
    batch.entries.iter().any(|e| {
        look.lstat(&e.rel)
            .is_err_and(|err| err.kind() == std::io::ErrorKind::NotFound)
    })
}

impl RsyncTarget {
    /// A local destination with nothing in it (or none yet): a full sync there has
    /// nothing to delete, and `--delete` would only make rsync list each directory it
    /// creates (a tree of 100k directories: about 6% more CPU). Remote: not known.
    pub(crate) fn destination_is_empty(&self) -> bool {
        let Destination::Local(dst) = &self.destination else {
            return false;
        };
        match Lookup::new(dst).list(Path::new("")) {
            Ok(entries) => entries.is_empty(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    }

    /// A local destination or one over ssh: not an rsync daemon's (`host::module`,
    /// `rsync://`), which may cap how many connections it takes at once.
    pub(crate) fn is_shell_or_local(&self) -> bool {
        match &self.destination {
            Destination::Local(_) => true,
            Destination::Remote(d) => crate::config::split_remote(d).is_some(),
        }
    }

    pub(crate) fn new(
        source: PathBuf,
        destination: Destination,
        options: HandlerOptions,
        filter: Arc<Filter>,
    ) -> RsyncTarget {
        let remote = matches!(destination, Destination::Remote(_));
        // Looked up in PATH once, not at every run (a program not found, or found only where
        // it may not be executed, stays a bare name: it may be installed later, and the run's
        // error names it).
        let mut options = options;
        if let Some(found) = crate::program::locate(&options.path) {
            options.path = found;
        }
        RsyncTarget {
            receiver: Receiver::new(&options.path, remote),
            source,
            destination,
            options,
            filter,
        }
    }

    /// The job's rsync and what its receiver accepts, for the status.
    pub(crate) fn report(&self) -> receiver::Report {
        self.receiver.report()
    }

    /// The NUL-separated anchored excludes for what the regex rules deny in the directories
    /// rsync will recurse into for `batch` (empty without rules).
    pub(crate) fn batch_rule_excludes(&self, batch: &Batch) -> Vec<u8> {
        excludes::batch_rule_excludes(&self.source, &self.filter, batch)
    }

    /// The anchored rule excludes for a deletion pass: the parents' entries, one level.
    pub(crate) fn deletion_rule_excludes(&self, pass: &DeletionPass) -> Vec<u8> {
        excludes::deletion_rule_excludes(&self.source, &self.filter, pass)
    }

    /// What the receiver has shown it accepts.
    pub(crate) fn missing_args(&self) -> MissingArgs {
        self.receiver.missing_args()
    }

    /// Learns from a failed run whether the receiver rejects missing entries; true (and
    /// logged once) when it does.
    pub(crate) fn learn_rejection(&self, e: &HandlerError) -> bool {
        let Some(version) = receiver::rejects_missing_args(e) else {
            return false;
        };
        self.learn_rejected(version);
        true
    }

    /// True when `e`, from a batch that would show whether an unknown receiver takes
    /// missing entries (`learning`), may be its refusal with the words lost: over ssh the
    /// receiver's messages can vanish when the connection closes, leaving a bare exit 2. The
    /// caller then tries the batch the other way once, and [`Self::learn_rejected`] if that
    /// works.
    pub(crate) fn may_be_silent_rejection(&self, learning: bool, e: &HandlerError) -> bool {
        learning && matches!(e, HandlerError::Exit { code: 2, .. })
    }

    /// Records a receiver that rejects missing entries (`version` if it said), logged once.
    pub(crate) fn learn_rejected(&self, mut version: Option<String>) {
        if version.is_none()
            && self.receiver.missing_args() != MissingArgs::Rejected
            && let Destination::Remote(d) = &self.destination
        {
            // The receiver's last words may not reach us over ssh.
            version = crate::handler::remote::remote_version(&self.options, d);
        }
        if self.receiver.learn(MissingArgs::Rejected, version) {
            tracing::warn!("{}", self.receiver.report().describe());
        }
    }

    /// Learns that the receiver took a batch with a missing entry.
    pub(crate) fn learn_accepted(&self) {
        if self.receiver.learn(MissingArgs::Accepted, None) {
            debug!("{}", self.receiver.report().describe());
        }
    }

    /// `batch` as one run (`whole`, with `--delete-missing-args`) or, for a receiver that
    /// rejects missing entries, as a deletion run and a run of what exists (`split`): run
    /// whole until the receiver is known to reject, and learn from how the run ends which
    /// it is. Both the rsync handler and the command modes that run rsync go through here.
    pub(crate) fn whole_or_split(
        &self,
        batch: &Batch,
        whole: impl FnOnce() -> Result<Outcome, HandlerError>,
        split: impl FnOnce() -> Result<Outcome, HandlerError>,
    ) -> Result<Outcome, HandlerError> {
        if self.missing_args() == MissingArgs::Rejected {
            return split();
        }
        let learning = self.would_learn(batch);
        match whole() {
            // The receiver refused the list before transferring anything.
            Err(e) if self.learn_rejection(&e) => split(),
            Err(e) if self.may_be_silent_rejection(learning, &e) => match split() {
                Ok(outcome) => {
                    self.learn_rejected(None);
                    Ok(outcome)
                }
                Err(_) => Err(e),
            },
            Ok(outcome) => {
                if learning {
                    self.learn_accepted();
                }
                Ok(outcome)
            }
            Err(e) => Err(e),
        }
    }

    /// True while the receiver is not known and `batch` would show what it does.
    pub(crate) fn would_learn(&self, batch: &Batch) -> bool {
        !batch.is_full()
            && self.receiver.missing_args() == MissingArgs::Unknown
            && has_missing(&self.source, batch)
    }
}
