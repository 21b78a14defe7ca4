//! Terminal output for `skiff exec`: each log line prefixed `[step:line]` like `drone exec`,
//! coloured per step when writing to a terminal, and the final table of steps.

use crate::engine::{BuildReport, Status, StepReport};
use crate::log::{LogLine, LogSink};
use std::io::Write;
use std::time::Duration;

/// Colours cycled through by step number (bold variants, readable on dark and light).
const PALETTE: [&str; 6] = [
    "\x1b[1;36m",
    "\x1b[1;33m",
    "\x1b[1;35m",
    "\x1b[1;32m",
    "\x1b[1;34m",
    "\x1b[1;31m",
];
const RESET: &str = "\x1b[0m";

/// Writes log lines to stdout.
#[derive(Debug)]
pub struct Console {
    color: bool,
}

impl Console {
    /// `color`: whether to use ANSI colours (decide with [`use_color`]).
    pub fn new(color: bool) -> Self {
        Console { color }
    }

    /// The text printed for one line.
    pub fn format(&self, line: &LogLine) -> String {
        if self.color {
            let colour = PALETTE[line.step_number % PALETTE.len()];
            format!(
                "{colour}[{}:{}]{RESET} {}\n",
                line.step, line.pos, line.text
            )
        } else {
            format!("[{}:{}] {}\n", line.step, line.pos, line.text)
        }
    }
}

impl LogSink for Console {
    fn line(&self, line: LogLine) {
        let text = self.format(&line);
        let mut out = std::io::stdout().lock();
        // A closed stdout (`skiff exec | head`) must not stop the build.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// Colour only for a terminal, and never when `NO_COLOR` is set (no-color.org).
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The final table: one row per step with its status, exit code and duration.
pub fn summary(report: &BuildReport, color: bool) -> String {
    let width = report
        .steps
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let status_text = |step: &StepReport| {
        let mut status = step.status.as_str().to_string();
        if step.ignored && step.status == Status::Failure {
            status.push_str(" (ignored)");
        }
        status
    };
    let status_width = report
        .steps
        .iter()
        .map(|step| status_text(step).len())
        .max()
        .unwrap_or(0)
        .max("STATUS".len());
    let mut out = String::new();
    out.push_str(&format!(
        "\n{:<width$}  {:<status_width$}  {:>4}  {:>9}\n",
        "STEP", "STATUS", "EXIT", "DURATION"
    ));
    for step in &report.steps {
        let status = status_text(step);
        let painted = paint(&format!("{status:<status_width$}"), step.status, color);
        out.push_str(&format!(
            "{:<width$}  {}  {:>4}  {:>9}\n",
            step.name,
            painted,
            step.exit_code,
            format_duration(step.duration)
        ));
    }
    out.push_str(&format!(
        "\npipeline `{}`: {} in {}\n",
        report.pipeline,
        paint(report.status.as_str(), report.status, color),
        format_duration(report.duration)
    ));
    out
}

fn paint(text: &str, status: Status, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    let code = match status {
        Status::Success => "\x1b[32m",
        Status::Failure | Status::Error => "\x1b[31m",
        Status::Killed => "\x1b[35m",
        Status::Skipped => "\x1b[2m",
    };
    format!("{code}{text}{RESET}")
}

/// `1.234s`, `2m03s`: short and stable for the table.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> LogLine {
        LogLine {
            step: "build".into(),
            step_number: 1,
            pos: 3,
            text: "hello".into(),
            time: 0,
        }
    }

    #[test]
    fn plain_prefix_matches_drone() {
        assert_eq!(Console::new(false).format(&line()), "[build:3] hello\n");
    }

    #[test]
    fn coloured_prefix_wraps_only_the_prefix() {
        let text = Console::new(true).format(&line());
        assert!(text.starts_with("\x1b["));
        assert!(text.ends_with("[build:3]\x1b[0m hello\n"));
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.234s");
        assert_eq!(format_duration(Duration::from_secs(123)), "2m03s");
    }
}
