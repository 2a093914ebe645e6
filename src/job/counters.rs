//! A job's counters for the metrics (`clsync metrics`): what its status does not already
//! count. They start at zero when the job starts (a restart by a reload included), as
//! Prometheus counters may.

use std::time::Duration;

use crate::handler::{HandlerError, Outcome};

/// Upper bounds (seconds) of the handler run duration histogram's buckets; `+Inf` follows.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A histogram of durations: counts per bucket (not cumulative), count and sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `buckets[i]`: observations in `(DURATION_BUCKETS[i-1], DURATION_BUCKETS[i]]`; the
    /// ones above the last bound are only in `count`.
    pub buckets: [u64; DURATION_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, secs: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }

    /// The cumulative counts of the buckets, as Prometheus lists them (`le` = bound).
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut total = 0;
        DURATION_BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .map(move |(b, n)| {
                total += n;
                (*b, total)
            })
    }
}

/// How a handler run ended, for `clsync_handler_runs_total{result=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    /// Succeeded.
    Ok,
    /// Succeeded with warnings (an ignored rsync exit code such as 24, "vanished files").
    Warning,
    /// Failed (retried).
    Failed,
    /// Stopped or killed by the job's `timeout` (retried).
    Timeout,
}

impl RunResult {
    pub const ALL: [RunResult; 4] = [
        RunResult::Ok,
        RunResult::Warning,
        RunResult::Failed,
        RunResult::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::Warning => "warning",
            RunResult::Failed => "failed",
            RunResult::Timeout => "timeout",
        }
    }

    pub fn of(result: &Result<Outcome, HandlerError>) -> RunResult {
        match result {
            Ok(o) if o.warnings.is_empty() => RunResult::Ok,
            Ok(_) => RunResult::Warning,
            Err(HandlerError::Timeout { .. }) => RunResult::Timeout,
            Err(_) => RunResult::Failed,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Paths of the batches synced successfully (a full sync counts as one).
    pub synced_paths: u64,
    /// Handler runs by [`RunResult`], in the order of [`RunResult::ALL`].
    pub runs: [u64; 4],
    /// Handler run durations, every run.
    pub duration: Histogram,
    /// Runs started while the job was retrying after a failure.
    pub retries: u64,
    /// Whole-tree rescans (after a monitor overflow or a read error).
    pub rescans: u64,
    /// Times the monitor lost events (an inotify queue overflow) and rescanned.
    pub overflows: u64,
    /// Periodic verifications (`verify_interval`) done.
    pub verifications: u64,
    /// Paths those verifications repaired (when the handler can tell: rsync).
    pub verify_repaired: u64,
    /// Bytes of file content the mirror engine wrote (read from its live tally when the
    /// status is taken; rsync's own transfers are not counted).
    pub copied_bytes: u64,
}

impl Counters {
    /// Counts a finished handler run of `paths` paths.
    pub fn record_run(
        &mut self,
        paths: usize,
        took: Duration,
        result: &Result<Outcome, HandlerError>,
    ) {
        let r = RunResult::of(result);
        self.runs[RunResult::ALL.iter().position(|x| *x == r).unwrap_or(0)] += 1;
        if result.is_ok() {
            self.synced_paths += paths as u64;
        }
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts a verification and what it repaired.
    pub fn record_verify(&mut self, repaired: Option<u64>) {
        self.verifications += 1;
        self.verify_repaired += repaired.unwrap_or(0);
    }

    pub fn runs(&self, r: RunResult) -> u64 {
        self.runs[RunResult::ALL.iter().position(|x| *x == r).unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        for s in [0.005, 0.01, 0.2, 3.0, 1000.0] {
            h.observe(s);
        }
        let c: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(c[0], (0.01, 2));
        assert_eq!(c[3], (0.25, 3));
        assert_eq!(c[7], (5.0, 4));
        assert_eq!(c.last(), Some(&(300.0, 4)));
        assert_eq!(h.count, 5);
        assert!((h.sum - 1003.215).abs() < 1e-9);
    }

    #[test]
    fn runs_by_result() {
        let mut c = Counters::default();
        c.record_run(3, Duration::from_millis(5), &Ok(Outcome::default()));
        c.record_run(
            2,
            Duration::from_millis(5),
            &Ok(Outcome {
                warnings: vec!["vanished".into()],
                changed: None,
            }),
        );
        c.record_run(
            9,
            Duration::from_secs(1),
            &Err(HandlerError::Other("x".into())),
        );
        assert_eq!(c.runs(RunResult::Ok), 1);
        assert_eq!(c.runs(RunResult::Warning), 1);
        assert_eq!(c.runs(RunResult::Failed), 1);
        assert_eq!(c.runs(RunResult::Timeout), 0);
        assert_eq!(c.synced_paths, 5);
        assert_eq!(c.duration.count, 3);
    }
}
