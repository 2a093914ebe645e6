//! No Landlock here (FreeBSD, macOS): a [`Policy`]'s rules are empty and entering them
//! restricts nothing; [`support`] tells jobs so.

use std::path::PathBuf;

use super::{Policy, State};

/// No Landlock here.
pub fn support() -> State {
    State::Unsupported
}

#[derive(Debug, thiserror::Error)]
#[error("no Landlock on this system")]
pub struct Error;

pub struct Rules;

impl Policy {
    /// Nothing to make without Landlock (jobs are told so by [`support`]).
    pub fn rules(&self, _: &[PathBuf]) -> Result<Rules, Error> {
        Ok(Rules)
    }
}

impl Rules {
    pub fn enter(self) -> Result<(), Error> {
        Ok(())
    }
}
