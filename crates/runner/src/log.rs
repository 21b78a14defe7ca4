//! Step output on its way to people: raw chunks from a backend become complete, masked lines
//! numbered from 0 like Drone's log lines (ci.md §2.14), then go to a [`LogSink`]
//! (the console for `skiff exec`, later the live log of the server).

use crate::engine::StepReport;
use crate::mask::{LineSplitter, Masker};
use std::sync::Arc;
use std::time::Instant;

/// One masked line of a step's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Name of the step that wrote it.
    pub step: String,
    /// 1-based position of the step in the pipeline (Drone's step number).
    pub step_number: usize,
    /// 0-based line number within the step (Drone's `pos`).
    pub pos: usize,
    /// The text, without the trailing newline, secrets masked.
    pub text: String,
    /// Seconds since the step started (Drone's `time`).
    pub time: u64,
}

/// Where a run's output goes: log lines, and (for sinks that care, like the server's live
/// step status) when each step starts and how it ended. Called from many tasks at once; keep
/// it quick.
pub trait LogSink: Send + Sync {
    fn line(&self, line: LogLine);

    /// The step `number` (1-based, plan order) named `step` started; its lines follow.
    fn step_started(&self, _step: &str, _number: usize) {}

    /// A step's outcome is known: it ended (after its last line), or it will not run. Called
    /// once for every step of the plan, whether or not it started.
    fn step_finished(&self, _report: &StepReport) {}
}

/// A sink that forgets everything (benchmarks, tests that do not look at logs).
#[derive(Debug, Default)]
pub struct NullSink;

impl LogSink for NullSink {
    fn line(&self, _line: LogLine) {}
}

/// A sink that keeps every line, for tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    lines: std::sync::Mutex<Vec<LogLine>>,
}

impl MemorySink {
    /// The lines received so far.
    pub fn lines(&self) -> Vec<LogLine> {
        match self.lines.lock() {
            Ok(lines) => lines.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The text of one step's lines, joined by newlines.
    pub fn text_of(&self, step: &str) -> String {
        self.lines()
            .into_iter()
            .filter(|l| l.step == step)
            .map(|l| l.text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl LogSink for MemorySink {
    fn line(&self, line: LogLine) {
        match self.lines.lock() {
            Ok(mut lines) => lines.push(line),
            Err(poisoned) => poisoned.into_inner().push(line),
        }
    }
}

/// The writer a backend gets for one step: feed it output chunks, then [`StepLog::finish`].
pub struct StepLog {
    step: String,
    step_number: usize,
    started: Instant,
    next_pos: usize,
    splitter: LineSplitter,
    masker: Arc<Masker>,
    sink: Arc<dyn LogSink>,
}

impl StepLog {
    pub fn new(
        step: &str,
        step_number: usize,
        masker: Arc<Masker>,
        sink: Arc<dyn LogSink>,
    ) -> Self {
        StepLog {
            step: step.to_string(),
            step_number,
            started: Instant::now(),
            next_pos: 0,
            splitter: LineSplitter::default(),
            masker,
            sink,
        }
    }

    /// Feeds raw output; complete lines are masked and sent on.
    pub fn write(&mut self, chunk: &[u8]) {
        let StepLog {
            step,
            step_number,
            started,
            next_pos,
            splitter,
            masker,
            sink,
        } = self;
        splitter.push(chunk, |text| {
            emit(sink, masker, step, *step_number, started, next_pos, text)
        });
    }

    /// Writes one whole line of the runner's own (for example why a step errored).
    pub fn note(&mut self, text: &str) {
        self.finish_pending();
        let StepLog {
            step,
            step_number,
            started,
            next_pos,
            masker,
            sink,
            ..
        } = self;
        for part in text.split('\n') {
            emit(sink, masker, step, *step_number, started, next_pos, part);
        }
    }

    /// Flushes a last line that had no newline.
    pub fn finish(mut self) {
        self.finish_pending();
    }

    fn finish_pending(&mut self) {
        let StepLog {
            step,
            step_number,
            started,
            next_pos,
            splitter,
            masker,
            sink,
        } = self;
        splitter.finish(|text| emit(sink, masker, step, *step_number, started, next_pos, text));
    }
}

fn emit(
    sink: &Arc<dyn LogSink>,
    masker: &Masker,
    step: &str,
    step_number: usize,
    started: &Instant,
    next_pos: &mut usize,
    text: &str,
) {
    let line = LogLine {
        step: step.to_string(),
        step_number,
        pos: *next_pos,
        text: masker.mask(text).into_owned(),
        time: started.elapsed().as_secs(),
    };
    *next_pos += 1;
    sink.line(line);
}
