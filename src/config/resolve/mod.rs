//! Resolving a job: its file's values over `[defaults]` over built-in defaults, key by key,
//! each checked and turned into the typed [`JobConfig`].
//!
//! Every check pushes its diagnostic and resolution goes on, so that one load reports every
//! problem of a file; a part whose value is missing returns [`NoValue`], and a job is built
//! only when its file has no error. `[defaults]` is resolved on its own too ([`Role`]), so
//! that a bad default is reported even when every job overrides it.

mod context;
mod filter;
mod handler;
mod location;
mod mode;
mod rclone;
mod sandbox;
mod schedule;
mod values;

pub(super) use context::{At, Checked, Context, Defaults, NoValue, Role};
pub(super) use mode::ModeName;

use std::path::Path;

use super::diag::{Diagnostic, Severity};
use super::model::JobConfig;

/// The job `name` of file `path`, when the file has no error (and `cx` is a job file).
pub(super) fn job(
    cx: &Context<'_>,
    name: String,
    path: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Checked<JobConfig> {
    let before = diags.len();
    let enabled = cx.pick(|r| r.enabled.as_ref()).is_none_or(|a| *a.get());
    let mode_name = mode::name(cx, diags);
    let source = location::source(cx, diags);
    let destinations = location::destinations(cx, mode_name, source.as_deref().ok(), diags);
    let delay = schedule::delay(cx, diags);
    let filter = filter::job_filter(cx, diags);
    let initial_sync = cx
        .pick(|r| r.initial_sync.as_ref())
        .is_none_or(|a| *a.get());
    let delete = delete(cx, mode_name, diags);
    let workers = schedule::workers(cx, mode_name, diags);
    let big_file = schedule::big_file(cx, diags);
    let verify_interval = schedule::verify_interval(cx, diags);
    let retry = schedule::retry(cx, diags);
    let handler = handler::options(cx, mode_name, diags);
    let command_mode = mode_name.is_ok_and(|m| m.command_kind().is_some());
    // rclone reaches its remotes through files no policy can know (its configuration,
    // rewritten when a token is refreshed; its cache; a backend's own files).
    let unconfined = command_mode || mode_name == Ok(ModeName::Rclone);
    let sandbox = sandbox::sandbox(cx, unconfined, diags);
    let mode = mode::complete(cx, mode_name, diags);
    let loop_guard = cx.pick(|r| r.loop_guard.as_ref()).is_some_and(|a| *a.get());

    let failed = diags[before..]
        .iter()
        .any(|d| d.severity == Severity::Error);
    if failed || cx.role == Role::Defaults {
        return Err(NoValue);
    }
    let destinations = destinations?;
    Ok(JobConfig {
        name,
        file: path.to_path_buf(),
        enabled,
        source: source?,
        destination: destinations[0].clone(),
        fan_out: destinations,
        target_of: None,
        mode: mode?,
        delay: delay?,
        filter: filter?,
        initial_sync,
        delete: delete?,
        big_file: big_file?,
        workers: workers?,
        verify_interval: verify_interval?,
        retry: retry?,
        loop_guard,
        rsync: handler?,
        sandbox: sandbox?,
    })
}

/// `delete`: `true` (the default), `false`, `"startup"` or `"running"`. The rclone mode
/// removes what the source no longer has in every run: it takes only `true`.
fn delete(
    cx: &Context<'_>,
    mode_name: Checked<ModeName>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<super::Delete> {
    let Some(a) = cx.pick(|r| r.delete.as_ref()) else {
        return Ok(super::Delete::default());
    };
    let delete = super::Delete::parse(a.get()).map_err(|e| {
        diags.push(a.err(e));
        NoValue
    })?;
    if mode_name == Ok(ModeName::Rclone) && delete != super::Delete::Always {
        diags.push(a.err(format!(
            "delete = {} is not supported with mode \"rclone\": its runs always remove at the destination what the source no longer has",
            delete.as_str()
        )));
        return Err(NoValue);
    }
    Ok(delete)
}
