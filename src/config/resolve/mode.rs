//! `mode`: how the job syncs. The name is read first, since other keys depend on it (a
//! mirror needs a local destination and no `user`; the command modes take `[command]`);
//! the command modes become a [`Mode`] once their `[command]` is resolved, mode rclone once
//! its `[rclone]` is.

use super::context::{Checked, Context, NoValue};
use crate::config::command::{self, CommandKind};
use crate::config::diag::Diagnostic;
use crate::config::model::Mode;

/// The mode as named in the file, before `[command]` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::config) enum ModeName {
    Rsync,
    Mirror,
    Command(CommandKind),
    Rclone,
}

impl ModeName {
    pub fn command_kind(self) -> Option<CommandKind> {
        match self {
            ModeName::Command(k) => Some(k),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModeName::Rsync => "rsync",
            ModeName::Mirror => "mirror",
            ModeName::Command(k) => k.as_str(),
            ModeName::Rclone => "rclone",
        }
    }
}

/// The job's mode name (`rsync` when not set).
pub(super) fn name(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<ModeName> {
    let Some(a) = cx.pick(|r| r.mode.as_ref()) else {
        return Ok(ModeName::Rsync);
    };
    match a.get().as_str() {
        "rsync" => Ok(ModeName::Rsync),
        "mirror" => Ok(ModeName::Mirror),
        "rclone" => Ok(ModeName::Rclone),
        other => match CommandKind::ALL.iter().find(|k| k.as_str() == other) {
            Some(k) => Ok(ModeName::Command(*k)),
            None => {
                diags.push(a.err(format!(
                    "unknown mode {other:?}: expected \"rsync\", \"mirror\", \"rclone\", \"direct\", \"shell\", \"simple\" or \"rsync-shell\""
                )));
                Err(NoValue)
            }
        },
    }
}

/// The mode, with the `[command]` options of a command mode (checked in any mode) and the
/// `[rclone]` options of mode rclone.
pub(super) fn complete(
    cx: &Context<'_>,
    name: Checked<ModeName>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Mode> {
    let command = command::options(cx, name, diags);
    let rclone = super::rclone::options(cx, name, diags);
    match name? {
        ModeName::Rsync => Ok(Mode::Rsync),
        ModeName::Mirror => Ok(Mode::Mirror),
        ModeName::Command(_) => command?.map(Mode::Command).ok_or(NoValue),
        ModeName::Rclone => rclone?.map(Mode::Rclone).ok_or(NoValue),
    }
}
