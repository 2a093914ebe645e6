//! When a job runs its handler: the collection `delay`, `workers`, `[big_file]`,
//! `verify_interval` and the retry policy of failed runs.

use std::time::Duration;

use super::context::{Checked, Context, NoValue};
use super::mode::ModeName;
use super::values;
use crate::config::DEFAULT_DELAY;
use crate::config::diag::Diagnostic;
use crate::config::model::{BigFile, RetryOptions};
use crate::config::units::off_if_zero;

/// How long a big file waits when `[big_file]` gives a threshold but no delay.
const DEFAULT_BIG_FILE_DELAY: Duration = Duration::from_secs(30 * 60);

/// The shortest first retry wait: a handler that fails at once must not spin.
const MIN_RETRY_DELAY: Duration = Duration::from_millis(10);

pub(super) fn delay(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<Duration> {
    match cx.pick(|r| r.delay.as_ref()) {
        None => Ok(DEFAULT_DELAY),
        Some(a) => values::duration(&a, diags),
    }
}

/// `workers`. Its default is 2, and in mode "mirror" the number of cores (at least 2, at
/// most 64): a mirror run walks a tree with that many threads, and copying on every core is
/// what makes an initial sync fast. The other modes keep 2: there it is only how many
/// handler runs (rsync processes) may be in flight at once, and the machine's size says
/// nothing about what the destination or the network can take.
pub(super) fn workers(
    cx: &Context<'_>,
    mode: Checked<ModeName>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<usize> {
    match cx.pick(|r| r.workers.as_ref()) {
        None if mode == Ok(ModeName::Mirror) => Ok(cores().clamp(2, 64)),
        None => Ok(2),
        Some(a) => values::ranged(
            &a,
            |n| (1..=64).contains(&n).then_some(n as usize),
            |n| format!("workers must be between 1 and 64, not {n}"),
            diags,
        ),
    }
}

/// The cores this process may run on (its CPU affinity and quota), 1 when unknown.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `verify_interval`; zero means never.
pub(super) fn verify_interval(
    cx: &Context<'_>,
    diags: &mut Vec<Diagnostic>,
) -> Checked<Option<Duration>> {
    match cx.pick(|r| r.verify_interval.as_ref()) {
        None => Ok(None),
        Some(a) => values::duration(&a, diags).map(off_if_zero),
    }
}

/// `[big_file]`: a threshold (zero: off) and its delay.
pub(super) fn big_file(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<Option<BigFile>> {
    let threshold = cx.pick(|r| r.big_file.as_ref()?.threshold.as_ref());
    let delay = cx.pick(|r| r.big_file.as_ref()?.delay.as_ref());
    let threshold = match (threshold, &delay) {
        (None, None) => return Ok(None),
        (None, Some(a)) => {
            diags.push(a.err("big_file.delay needs big_file.threshold"));
            return Err(NoValue);
        }
        (Some(t), _) => values::size(&t, diags),
    };
    let delay = match delay {
        Some(a) => values::duration(&a, diags),
        None => Ok(DEFAULT_BIG_FILE_DELAY),
    };
    match off_if_zero(threshold?) {
        None => Ok(None),
        Some(threshold) => Ok(Some(BigFile {
            threshold,
            delay: delay?,
        })),
    }
}

/// `retries`, `retry_delay`, `retry_max_delay`.
pub(super) fn retry(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<RetryOptions> {
    let dflt = RetryOptions::default();
    let retries = match cx.pick(|r| r.retries.as_ref()) {
        None => Ok(dflt.retries),
        Some(a) => values::ranged(
            &a,
            |n| u32::try_from(n).ok().filter(|n| *n <= 1_000_000),
            |n| format!("retries must be 0 (never give up) to 1000000, not {n}"),
            diags,
        ),
    };
    let delay = match cx.pick(|r| r.retry_delay.as_ref()) {
        None => Ok(dflt.delay),
        Some(a) => values::duration(&a, diags).map(|t| t.max(MIN_RETRY_DELAY)),
    };
    let max_delay = match cx.pick(|r| r.retry_max_delay.as_ref()) {
        None => Ok(dflt.max_delay),
        Some(a) => values::duration(&a, diags),
    };
    let delay = delay?;
    Ok(RetryOptions {
        retries: retries?,
        delay,
        max_delay: max_delay?.max(delay),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::load_dir;
    use crate::config::test_support::write;

    /// `workers` defaults to the cores in mode "mirror" (at least 2), to 2 elsewhere, and
    /// a value written is taken as it is in every mode.
    #[test]
    fn workers_default_to_the_cores_in_mirror_mode_only() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("src")).unwrap();
        let jobs = [
            ("a", "mode = \"mirror\"\n"),
            ("b", "mode = \"rsync\"\n"),
            ("c", ""),
            ("d", "mode = \"mirror\"\nworkers = 1\n"),
            ("e", "mode = \"rsync\"\nworkers = 5\n"),
        ];
        for (name, extra) in jobs {
            let text = format!("source = \"src\"\ndestination = \"dst-{name}\"\n{extra}");
            write(t.path(), &format!("jobs.d/{name}.toml"), &text);
        }
        let l = load_dir(t.path());
        assert!(!l.has_errors(), "{:?}", l.diagnostics);
        let workers: Vec<usize> = l.jobs.iter().map(|j| j.workers).collect();
        assert_eq!(workers, [super::cores().clamp(2, 64), 2, 2, 1, 5]);
    }
}
