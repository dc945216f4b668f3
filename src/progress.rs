//! Progress of long offline work — `rill check` on a large directory, recovery of a server
//! started in the foreground — shown the way a terminal user expects: a progress bar when
//! standard error is a terminal, a log line every interval otherwise (a service manager's
//! journal, a redirected file, a test).
//!
//! The bar is `indicatif`'s (a maintained crate that handles redrawing, rates, ETAs and
//! terminal width — solved problems); it draws on standard error only, so `rill check`'s
//! report on standard output stays clean when piped. The line form goes through a callback
//! the caller chooses (the server logs with `tracing`, `rill check` writes to standard
//! error).
//!
//! `RILL_PROGRESS_INTERVAL_MS` sets how often the line form reports (default 1000 ms);
//! `RILL_PROGRESS=lines` forces lines even on a terminal.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is reported when standard error is not a terminal.
pub type LineSink = Box<dyn FnMut(&str) + Send>;

/// A unit of work measured in bytes, reported as it advances.
pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    shown: Shown,
}

enum Shown {
    Bar(ProgressBar),
    Lines {
        sink: LineSink,
        every: Duration,
        last: Instant,
        /// Bytes and steps since the clock was last read (it is read every 1 MiB or 256
        /// steps, not per record: per record it would show in replay profiles).
        since_check: u64,
        steps: u32,
    },
}

/// The line form: `Loading: 42.0% (420.0 of 1000.0 MB, 310.5 MB/s)`.
fn line(what: &str, done: u64, total: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    format!(
        "{what}: {:.1}% ({:.1} of {:.1} MB, {:.1} MB/s)",
        done as f64 * 100.0 / total.max(1) as f64,
        done as f64 / f64::from(1 << 20),
        total as f64 / f64::from(1 << 20),
        done as f64 / secs / 1e6
    )
}

fn interval() -> Duration {
    let ms = std::env::var("RILL_PROGRESS_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000);
    Duration::from_millis(ms)
}

impl Progress {
    /// Starts reporting `what` (e.g. "Loading") over `total` bytes: a bar on a terminal,
    /// otherwise lines through `sink`.
    pub fn new(what: &'static str, total: u64, sink: LineSink) -> Progress {
        let lines_wanted = std::env::var("RILL_PROGRESS").is_ok_and(|v| v == "lines");
        let shown = if std::io::stderr().is_terminal() && !lines_wanted {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:40}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(what);
            Shown::Bar(bar)
        } else {
            Shown::Lines {
                sink,
                every: interval(),
                last: Instant::now(),
                since_check: 0,
                steps: 0,
            }
        };
        Progress {
            what,
            total,
            done: 0,
            started: Instant::now(),
            shown,
        }
    }

    /// Counts `bytes` more done.
    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        match &mut self.shown {
            Shown::Bar(bar) => bar.set_position(self.done.min(self.total)),
            Shown::Lines {
                sink,
                every,
                last,
                since_check,
                steps,
            } => {
                *since_check += bytes;
                *steps += 1;
                if *since_check < (1 << 20) && *steps < 256 {
                    return;
                }
                *since_check = 0;
                *steps = 0;
                if last.elapsed() >= *every {
                    sink(&line(self.what, self.done, self.total, self.started));
                    *last = Instant::now();
                }
            }
        }
    }

    /// Ends the report (the bar is cleared; lines need no end).
    pub fn finish(self) {
        if let Shown::Bar(bar) = self.shown {
            bar.finish_and_clear();
        }
    }
}
