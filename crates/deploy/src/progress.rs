//! Live progress of a deploy. The engine reports through the [`Progress`] trait; the console
//! implementation draws a spinner per resource being waited for (indicatif, only on a
//! terminal) and prints one plain line per event, so logs of CI runs read well too.

use crate::inventory::ResourceId;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Events of a deploy, in order.
pub trait Progress: Send + Sync {
    /// A group of resources (same weight) is about to be applied.
    fn group(&self, _weight: i64, _count: usize) {}
    /// A resource was applied (`created`, `configured`, ...).
    fn applied(&self, _id: &ResourceId, _what: &str) {}
    /// Still waiting for a resource; `message` says what is missing.
    fn waiting(&self, _id: &ResourceId, _message: &str) {}
    /// A resource became ready.
    fn ready(&self, _id: &ResourceId) {}
    /// A resource failed.
    fn failed(&self, _id: &ResourceId, _message: &str) {}
    /// A resource was deleted (prune or app deletion).
    fn deleted(&self, _id: &ResourceId) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// Progress on stderr.
pub struct Console {
    multi: MultiProgress,
    bars: Mutex<HashMap<ResourceId, ProgressBar>>,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        if self.multi.is_hidden() {
            eprintln!("{text}");
        } else {
            let _ = self.multi.println(text);
        }
    }

    fn take(&self, id: &ResourceId) -> Option<ProgressBar> {
        self.bars.lock().ok().and_then(|mut bars| bars.remove(id))
    }
}

impl Progress for Console {
    fn group(&self, weight: i64, count: usize) {
        self.line(format!("== group {weight}: {count} resource(s)"));
    }
    fn applied(&self, id: &ResourceId, what: &str) {
        self.line(format!("{id}: {what}"));
    }
    fn waiting(&self, id: &ResourceId, message: &str) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars.entry(id.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} [{elapsed}]")
            {
                bar.set_style(style);
            }
            bar.set_prefix(id.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(message.to_string());
    }
    fn ready(&self, id: &ResourceId) {
        if let Some(bar) = self.take(id) {
            bar.finish_and_clear();
        }
        self.line(format!("{id}: ready"));
    }
    fn failed(&self, id: &ResourceId, message: &str) {
        if let Some(bar) = self.take(id) {
            bar.finish_and_clear();
        }
        self.line(format!("{id}: FAILED: {message}"));
    }
    fn deleted(&self, id: &ResourceId) {
        self.line(format!("{id}: deleted"));
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Ok(mut bars) = self.bars.lock() {
            for (_, bar) in bars.drain() {
                bar.finish_and_clear();
            }
        }
    }
}
