//! `clsync sync`'s progress, on stderr: on a terminal, a bar (objects and bytes done,
//! rate, ETA) that is a spinner until the source is counted; otherwise plain lines, one
//! when the count is known, one every `--progress-interval`, and a final summary (objects,
//! bytes, duration, rate), with no escape codes.
//!
//! The counts come from the handler's live tally (the mirror engine: objects made equal,
//! bytes copied, bytes found up to date). The total comes from a count of the source
//! ([`clsync::progress::count`]) on a thread of its own, beside the sync: it reads
//! directories and `lstat`s entries, a small part of what the sync does per object, and
//! warms the cache the sync reads next. Handlers without a tally (rsync, the command
//! modes) show the elapsed time and the counted source; their summary is the source's
//! size and the duration.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clsync::handler::tally::{Counts, Tally};
use clsync::progress::{Size, count};
use clsync::rules::Filter;
use crossbeam_channel::{Receiver, Sender, bounded};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the terminal display is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// What is being synced, for the display.
pub struct Subject {
    pub job: String,
    pub source: PathBuf,
    pub filter: Arc<Filter>,
    pub tally: Option<Arc<Tally>>,
    /// How often a plain progress line is written (not on a terminal).
    pub every: Duration,
}

/// The running display; [`Progress::finish`] writes the summary.
pub struct Progress {
    done: Sender<bool>,
    stop_count: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The source's count, once known, and how long it took.
type Total = Arc<OnceLock<(Size, Duration)>>;

impl Progress {
    /// Starts counting the source and showing progress.
    pub fn start(subject: Subject) -> Progress {
        let total: Total = Arc::default();
        let stop_count = Arc::new(AtomicBool::new(false));
        {
            let (total, stop, source, filter) = (
                total.clone(),
                stop_count.clone(),
                subject.source.clone(),
                subject.filter.clone(),
            );
            let started = Instant::now();
            // Not joined: a count still running when the sync is done is abandoned.
            let _ = std::thread::Builder::new()
                .name("clsync-count".into())
                .spawn(move || {
                    if let Some(size) = count(&source, &filter, &stop)
                        && !stop.load(Ordering::Relaxed)
                    {
                        let _ = total.set((size, started.elapsed()));
                    }
                });
        }
        let (done, finished) = bounded(1);
        let terminal = std::io::stderr().is_terminal();
        let thread = std::thread::spawn(move || {
            let show = Show {
                subject,
                total,
                started: Instant::now(),
            };
            if terminal {
                show.bar(&finished)
            } else {
                show.plain(&finished)
            }
        });
        Progress {
            done,
            stop_count,
            thread,
        }
    }

    /// Ends the display with its summary; `ok`: the sync succeeded.
    pub fn finish(self, ok: bool) {
        self.stop_count.store(true, Ordering::Relaxed);
        let _ = self.done.send(ok);
        let _ = self.thread.join();
    }
}

struct Show {
    subject: Subject,
    total: Total,
    started: Instant,
}

impl Show {
    fn counts(&self) -> Option<Counts> {
        self.subject.tally.as_ref().map(|t| t.read())
    }

    fn total(&self) -> Option<Size> {
        self.total.get().map(|(s, _)| *s)
    }

    /// The terminal display, until `finished` says how the sync ended; the bar stays, in
    /// its final state, above the summary.
    fn bar(&self, finished: &Receiver<bool>) {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(spinner_style());
        bar.set_prefix(self.subject.job.clone());
        // Log lines are written with the bar hidden, and the bar redrawn below them.
        let drawing = Arc::new(AtomicBool::new(true));
        {
            let (bar, drawing) = (bar.clone(), drawing.clone());
            clsync::logging::set_stderr_hook(Box::new(move |line| {
                if drawing.load(Ordering::Relaxed) {
                    bar.suspend(|| std::io::stderr().write_all(line))
                } else {
                    std::io::stderr().write_all(line)
                }
            }));
        }
        let mut sized = false;
        let ok = loop {
            if let Ok(ok) = finished.recv_timeout(TICK) {
                break ok;
            }
            self.update(&bar, &mut sized);
            bar.tick();
        };
        self.update(&bar, &mut sized);
        drawing.store(false, Ordering::Relaxed);
        if ok {
            bar.finish();
        } else {
            bar.abandon();
        }
        // The bar's last line is left without its newline.
        let end = if bar.is_hidden() { "" } else { "\n" };
        eprintln!("{end}{}", self.summary(ok));
    }

    /// Brings `bar` up to date: a bar once the total is known (`sized`), else a spinner.
    fn update(&self, bar: &ProgressBar, sized: &mut bool) {
        match (self.total(), self.counts()) {
            (Some(t), Some(c)) => {
                if !*sized {
                    bar.set_length(t.bytes.max(1));
                    bar.set_style(bar_style());
                    *sized = true;
                }
                bar.set_position(if t.bytes == 0 { 1 } else { c.done.min(t.bytes) });
                bar.set_message(format!(
                    "{}/{} files, {}",
                    c.files,
                    t.files,
                    HumanBytes(c.done)
                ));
            }
            (None, Some(c)) => bar.set_message(format!(
                "{} files, {} ({}/s), counting the source...",
                c.files,
                HumanBytes(c.copied),
                HumanBytes(rate(c.copied, self.started.elapsed()))
            )),
            (Some(t), None) => bar.set_message(format!(
                "source: {} files, {}",
                t.files,
                HumanBytes(t.bytes)
            )),
            (None, None) => bar.set_message("syncing"),
        }
    }

    /// Plain lines, until `finished` says how the sync ended.
    fn plain(&self, finished: &Receiver<bool>) {
        let every = self.subject.every.max(Duration::from_millis(1));
        let mut said_total = false;
        let mut next = Instant::now() + every;
        let ok = loop {
            let wait = if said_total {
                next.saturating_duration_since(Instant::now())
            } else {
                next.saturating_duration_since(Instant::now()).min(TICK)
            };
            if let Ok(ok) = finished.recv_timeout(wait) {
                break ok;
            }
            if !said_total {
                said_total = self.say_total();
            }
            if Instant::now() >= next {
                next = Instant::now() + every;
                eprintln!("clsync: {}: {}", self.subject.job, self.now_line());
            }
        };
        if !said_total {
            self.say_total();
        }
        eprintln!("{}", self.summary(ok));
    }

    /// The plain line of the source's count, once it is known; true when it was written.
    fn say_total(&self) -> bool {
        let Some((t, took)) = self.total.get() else {
            return false;
        };
        eprintln!(
            "clsync: {}: the source holds {} files, {} bytes ({}; counted in {:.2} s)",
            self.subject.job,
            t.files,
            t.bytes,
            HumanBytes(t.bytes),
            took.as_secs_f64()
        );
        true
    }

    /// One line of progress so far.
    fn now_line(&self) -> String {
        let took = self.started.elapsed();
        match (self.counts(), self.total()) {
            (Some(c), Some(t)) => {
                let r = rate(c.done, took);
                let eta = (r > 0).then(|| t.bytes.saturating_sub(c.done) / r);
                format!(
                    "{}/{} files, {}/{} bytes ({}%), {}/s, ETA {}",
                    c.files,
                    t.files,
                    c.done,
                    t.bytes,
                    (c.done.min(t.bytes) * 100)
                        .checked_div(t.bytes)
                        .unwrap_or(100),
                    HumanBytes(r),
                    eta.map_or("unknown".into(), |s| format!("{s} s"))
                )
            }
            (Some(c), None) => format!(
                "{} files, {} bytes copied, {}/s",
                c.files,
                c.copied,
                HumanBytes(rate(c.copied, took))
            ),
            (None, _) => format!("syncing for {:.0} s", took.as_secs_f64()),
        }
    }

    /// The final line: what was done, how long it took, how fast.
    fn summary(&self, ok: bool) -> String {
        let took = self.started.elapsed();
        let what = if ok { "synced" } else { "failed after" };
        let job = &self.subject.job;
        let secs = took.as_secs_f64();
        match (self.counts(), self.total()) {
            (Some(c), _) => format!(
                "clsync: {job}: {what} {} files, {} bytes copied ({}) in {secs:.2} s, {}/s",
                c.files,
                c.copied,
                HumanBytes(c.copied),
                HumanBytes(rate(c.copied, took))
            ),
            (None, Some(t)) => format!(
                "clsync: {job}: {what} a source of {} files, {} bytes ({}) in {secs:.2} s",
                t.files,
                t.bytes,
                HumanBytes(t.bytes)
            ),
            (None, None) => format!("clsync: {job}: {what} in {secs:.2} s"),
        }
    }
}

/// Bytes per second.
fn rate(bytes: u64, took: Duration) -> u64 {
    let s = took.as_secs_f64();
    if s > 0.0 {
        (bytes as f64 / s) as u64
    } else {
        0
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix} [{wide_bar}] {percent:>3}% {msg} {binary_bytes_per_sec} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}
