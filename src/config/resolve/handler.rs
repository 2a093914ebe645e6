//! How handler runs are made: `timeout`, `ignore_exit_codes`, `[rsync]`, `user` / `group`
//! and `[ssh]`, into [`HandlerOptions`].

use std::time::Duration;

use super::context::{Checked, Context, NoValue};
use super::mode::ModeName;
use super::values;
use crate::config::diag::Diagnostic;
use crate::config::identity::{LookupError, lookup_run_as};
use crate::config::model::{HandlerOptions, RunAs, SshOptions};
use crate::config::paths::{program_path, resolve};
use crate::config::units::off_if_zero;

/// rsync's "some files vanished before they could be transferred": not a failure for a live
/// tree, so ignored by default in rsync mode.
const RSYNC_VANISHED: i32 = 24;

pub(super) fn options(
    cx: &Context<'_>,
    mode: Checked<ModeName>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<HandlerOptions> {
    let not_rsync = mode.is_ok_and(|m| m.command_kind().is_some() || m == ModeName::Rclone);
    let timeout = timeout(cx, diags);
    let ignore_exit_codes = ignore_exit_codes(cx, not_rsync, diags);
    let path = cx
        .pick(|r| r.rsync.as_ref()?.path.as_ref())
        .map_or_else(|| "rsync".into(), |a| program_path(cx.dir, a.get()));
    let args = values::strings(cx.pick(|r| r.rsync.as_ref()?.args.as_ref()));
    let run_as = run_as(cx, mode, diags);
    let ssh = ssh(cx, diags);
    Ok(HandlerOptions {
        path,
        args,
        timeout: timeout?,
        ignore_exit_codes: ignore_exit_codes?,
        ssh: ssh?,
        run_as: run_as?,
    })
}

/// `timeout`; zero means none.
fn timeout(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<Option<Duration>> {
    match cx.pick(|r| r.timeout.as_ref()) {
        None => Ok(None),
        Some(a) => values::duration(&a, diags).map(off_if_zero),
    }
}

/// `ignore_exit_codes`: by default rsync's 24, which means nothing to another program
/// (`not_rsync`: a command mode or rclone).
fn ignore_exit_codes(
    cx: &Context<'_>,
    not_rsync: bool,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Vec<i32>> {
    let Some(a) = cx.pick(|r| r.ignore_exit_codes.as_ref()) else {
        return Ok(if not_rsync {
            vec![]
        } else {
            vec![RSYNC_VANISHED]
        });
    };
    let mut codes = Vec::new();
    let mut ok = true;
    for c in a.get() {
        match i32::try_from(*c.get_ref()) {
            Ok(v @ 1..=255) => codes.push(v),
            _ => {
                ok = false;
                diags.push(a.file.error(
                    c.span(),
                    format!("exit codes are 1 to 255, not {}", c.get_ref()),
                ));
            }
        }
    }
    if ok { Ok(codes) } else { Err(NoValue) }
}

/// `user` and `group`, looked up now; a mirror has no handler process to run as anyone.
fn run_as(
    cx: &Context<'_>,
    mode: Checked<ModeName>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Option<RunAs>> {
    let user = cx.pick(|r| r.user.as_ref());
    let group = cx.pick(|r| r.group.as_ref());
    let run_as = match (&user, &group) {
        (None, None) => Ok(None),
        (None, Some(g)) => {
            diags.push(g.err("`group` needs `user`"));
            Err(NoValue)
        }
        (Some(u), g) => match lookup_run_as(u.get(), g.as_ref().map(|g| g.get().as_str())) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                diags.push(match (e, g) {
                    (LookupError::Group(msg), Some(g)) => g.err(msg),
                    (LookupError::User(msg) | LookupError::Group(msg), _) => u.err(msg),
                });
                Err(NoValue)
            }
        },
    };
    if let (Some(u), Ok(ModeName::Mirror)) = (&user, mode) {
        diags.push(u.err(
            "`user` needs a handler process (mode rsync or a command mode); mirror copies inside the daemon",
        ));
    }
    run_as
}

/// `[ssh]`.
fn ssh(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<SshOptions> {
    let port = match cx.pick(|r| r.ssh.as_ref()?.port.as_ref()) {
        None => Ok(None),
        Some(a) => values::ranged(
            &a,
            |p| u16::try_from(p).ok().filter(|p| *p > 0).map(Some),
            |p| format!("ssh port must be 1 to 65535, not {p}"),
            diags,
        ),
    };
    Ok(SshOptions {
        command: cx
            .pick(|r| r.ssh.as_ref()?.command.as_ref())
            .map(|a| program_path(cx.dir, a.get())),
        port: port?,
        identity_file: cx
            .pick(|r| r.ssh.as_ref()?.identity_file.as_ref())
            .map(|a| resolve(cx.dir, a.get())),
        options: values::strings(cx.pick(|r| r.ssh.as_ref()?.options.as_ref())),
    })
}
