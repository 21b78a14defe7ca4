//! Built-in plugins: steps whose `image` names something the runner can do itself, on the
//! runner host, instead of pulling and starting a container (Drone-style plugins where no image
//! can be pulled, e.g. `skiff/deploy`). The runner only knows the [`BuiltinStep`] trait; the
//! binary registers implementations ([`crate::Prepared::with_builtins`]), so the runner does not
//! depend on what they do. A built-in step gets the same environment a plugin container would
//! (`PLUGIN_*` settings, resolved secrets, `DRONE_*`), the workspace directory on the host, a
//! log writer that goes through the same masking and console as any step, and the step's cancel
//! token (Ctrl-C, `--timeout`, `failure: fast`). Its exit code becomes the step's status exactly
//! as a container's would.

use crate::log::StepLog;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Everything a built-in step gets to run.
pub struct BuiltinContext {
    /// The step's name.
    pub step: String,
    /// The full environment a container would get: plan and step environment, `PLUGIN_*`
    /// settings, secrets (`from_secret` already resolved), `DRONE_*`. The runner process's own
    /// environment is not included.
    pub env: BTreeMap<String, String>,
    /// The workspace directory on the runner host (what is mounted at the workspace path in
    /// containers); relative paths in settings are relative to it.
    pub workspace: PathBuf,
    /// Where the step's output goes (masked, numbered, shown like any step's).
    pub log: BuiltinLog,
    /// Fires when the step must stop (cancel, timeout, `failure: fast`). The runner also drops
    /// the step's future when it fires, so checking it is only needed to clean up.
    pub cancel: CancellationToken,
}

/// What [`BuiltinStep::run`] returns: a boxed future of the exit code (spelled out so that
/// implementations need no macro crate: `Box::pin(async move { ... })`).
pub type BuiltinFuture<'a> = Pin<Box<dyn Future<Output = i64> + Send + 'a>>;

/// A plugin implemented inside the runner's process.
pub trait BuiltinStep: Send + Sync {
    /// Whether a step with this `image` is this plugin.
    fn matches(&self, image: &str) -> bool;

    /// Runs the step to its end and returns its exit code (0 success, 78 skip the rest, other
    /// codes failure). Problems are written to `ctx.log` and reported as a non-zero code.
    fn run(&self, ctx: BuiltinContext) -> BuiltinFuture<'_>;
}

/// Whether `image` is `name` with no tag, or with any tag: `skiff/deploy`, `skiff/deploy:1`.
/// A registry or digest in front or behind does not match: built-ins are never pulled.
pub fn image_is(image: &str, name: &str) -> bool {
    match image.strip_prefix(name) {
        Some("") => true,
        Some(rest) => rest.strip_prefix(':').is_some_and(|tag| {
            !tag.is_empty() && !tag.contains('/') && !tag.contains(':') && !tag.contains('@')
        }),
        None => false,
    }
}

/// The log writer of a built-in step. Cheap to clone; every clone writes to the same step log.
#[derive(Clone)]
pub struct BuiltinLog {
    inner: Arc<Mutex<Option<StepLog>>>,
}

impl BuiltinLog {
    pub(crate) fn new(log: StepLog) -> Self {
        BuiltinLog {
            inner: Arc::new(Mutex::new(Some(log))),
        }
    }

    /// Writes one line (or several, separated by `\n`); secrets are masked.
    pub fn line(&self, text: &str) {
        let mut guard = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(log) = guard.as_mut() {
            let mut text = text.to_string();
            text.push('\n');
            log.write(text.as_bytes());
        }
    }

    /// Flushes and closes the log; later lines are dropped.
    pub(crate) fn finish(&self) {
        let taken = match self.inner.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(log) = taken {
            log.finish();
        }
    }
}

/// A set of built-in plugins, as a binary registers them: `skiff exec` for its build, and the
/// server's runners (in-process and `skiff runner`) for every stage they run. Cheap to clone.
#[derive(Clone, Default)]
pub struct Builtins(pub(crate) Vec<Arc<dyn BuiltinStep>>);

impl From<Vec<Arc<dyn BuiltinStep>>> for Builtins {
    fn from(steps: Vec<Arc<dyn BuiltinStep>>) -> Self {
        Builtins(steps)
    }
}

/// A list of one kind of built-in (`vec![Arc::new(MyStep)]`).
impl<T: BuiltinStep + 'static> From<Vec<Arc<T>>> for Builtins {
    fn from(steps: Vec<Arc<T>>) -> Self {
        Builtins(
            steps
                .into_iter()
                .map(|s| s as Arc<dyn BuiltinStep>)
                .collect(),
        )
    }
}

impl Builtins {
    /// The built-in that handles `image`, if any.
    pub(crate) fn find(&self, image: Option<&str>) -> Option<Arc<dyn BuiltinStep>> {
        let image = image.filter(|i| !i.is_empty())?;
        self.0.iter().find(|b| b.matches(image)).cloned()
    }
}

impl std::fmt::Debug for Builtins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Builtins({})", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::image_is;

    #[test]
    fn image_names() {
        assert!(image_is("skiff/deploy", "skiff/deploy"));
        assert!(image_is("skiff/deploy:1", "skiff/deploy"));
        assert!(image_is("skiff/deploy:latest", "skiff/deploy"));
        assert!(!image_is("skiff/deployer", "skiff/deploy"));
        assert!(!image_is("docker.io/skiff/deploy", "skiff/deploy"));
        assert!(!image_is("skiff/deploy:", "skiff/deploy"));
        assert!(!image_is("skiff/deploy@sha256:00", "skiff/deploy"));
        assert!(!image_is("skiff/deploy:1/x", "skiff/deploy"));
    }
}
