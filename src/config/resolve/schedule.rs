//! When a job runs its handler: the collection `delay`, `workers`, `[big_file]`,
//! `verify_interval` and the retry policy of failed runs.

use std::time::Duration;

use super::context::{Checked, Context, NoValue};
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

pub(super) fn workers(cx: &Context<'_>, diags: &mut Vec<Diagnostic>) -> Checked<usize> {
    match cx.pick(|r| r.workers.as_ref()) {
        None => Ok(2),
        Some(a) => values::ranged(
            &a,
            |n| (1..=64).contains(&n).then_some(n as usize),
            |n| format!("workers must be between 1 and 64, not {n}"),
            diags,
        ),
    }
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
