//! The pipeline deploy step (`image: skiff/deploy`, docs/deploy.md "Deploying from a
//! pipeline"): its settings, read from the Drone-style `PLUGIN_*` variables a plugin container
//! would get, and a non-interactive deploy (plan, apply as with `--yes`, wait, prune) that
//! reports progress as plain log lines. The runner knows nothing of this; the binary adapts it
//! to the runner's built-in step trait.

use crate::client::{KubeconfigSource, connect};
use crate::engine::{Action, Engine, Outcome};
use crate::error::{Error, Result};
use crate::inventory::ResourceId;
use crate::manifest::load_paths;
use crate::progress::Progress;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Default for `timeout`: the whole deploy, waits included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The step's settings (`settings:` in `.drone.yml`, as `PLUGIN_*` variables).
#[derive(Clone)]
pub struct StepSettings {
    /// `app`: the app name.
    pub app: String,
    /// `files`: manifest files or folders, relative to the workspace (resolved here).
    pub files: Vec<PathBuf>,
    /// `namespace`: default namespace and where the app record lives (default: the
    /// kubeconfig context's, else `default`).
    pub namespace: Option<String>,
    /// `timeout`: `300`, `90s`, `5m`, `1h30m` (default 5m).
    pub timeout: Duration,
    /// `kubeconfig`: kubeconfig YAML or base64 of it, normally `from_secret`.
    pub kubeconfig: String,
    /// `context`: kubeconfig context (default: its current context).
    pub context: Option<String>,
    /// `wait`: `false` applies without waiting for readiness.
    pub wait: bool,
}

impl std::fmt::Debug for StepSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepSettings")
            .field("app", &self.app)
            .field("files", &self.files)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("kubeconfig", &"<redacted>")
            .field("context", &self.context)
            .field("wait", &self.wait)
            .finish()
    }
}

fn setting(name: &'static str, message: impl Into<String>) -> Error {
    Error::Setting {
        setting: name,
        message: message.into(),
    }
}

impl StepSettings {
    /// Reads the settings from a step's environment; `files` are resolved against `workspace`
    /// and must stay inside it.
    pub fn from_env(env: &BTreeMap<String, String>, workspace: &Path) -> Result<Self> {
        let get = |name: &str| {
            env.get(&format!("PLUGIN_{name}"))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let app = get("APP")
            .ok_or_else(|| setting("app", "missing: name the app (settings: {app: NAME})"))?
            .to_string();
        let files_text = get("FILES").ok_or_else(|| {
            setting(
                "files",
                "missing: list manifest files or folders relative to the workspace",
            )
        })?;
        let mut files = Vec::new();
        for file in files_text
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            let path = Path::new(file);
            let inside = path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !inside {
                return Err(setting(
                    "files",
                    format!("`{file}` must be a relative path inside the workspace"),
                ));
            }
            files.push(workspace.join(path));
        }
        if files.is_empty() {
            return Err(setting("files", "empty"));
        }
        let kubeconfig = get("KUBECONFIG")
            .ok_or_else(|| {
                setting(
                    "kubeconfig",
                    "missing or empty: set it from a secret (kubeconfig: {from_secret: NAME}); \
                     is the secret defined?",
                )
            })?
            .to_string();
        let timeout = match get("TIMEOUT") {
            Some(text) => parse_duration(text).ok_or_else(|| {
                setting(
                    "timeout",
                    format!("`{text}` is not a duration (300, 90s, 5m, 1h30m)"),
                )
            })?,
            None => DEFAULT_TIMEOUT,
        };
        let wait = match get("WAIT") {
            None => true,
            Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(setting("wait", format!("`{other}` is not true/false"))),
        };
        Ok(StepSettings {
            app,
            files,
            namespace: get("NAMESPACE").map(str::to_string),
            timeout,
            kubeconfig,
            context: get("CONTEXT").map(str::to_string),
            wait,
        })
    }
}

/// `300` (seconds), `90s`, `5m`, `1h30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().ok()?;
        number.clear();
        total += value
            * match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return None,
            };
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

/// Runs the deploy the step describes: load the manifests, connect with the step's
/// kubeconfig, plan, print the plan, apply without asking, wait, prune. `say` receives every
/// line of output; `progress` the engine's events. Returns `None` when nothing changed.
pub async fn run(
    settings: &StepSettings,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<Option<Outcome>> {
    let documents = load_paths(&settings.files)?;
    if documents.is_empty() {
        return Err(setting("files", "the manifests contain no objects"));
    }
    let source = KubeconfigSource::Inline(settings.kubeconfig.clone());
    let (client, context_ns) = connect(&source, settings.context.as_deref()).await?;
    // One cheap call first, so a kubeconfig that cannot reach or log in to the cluster is
    // reported as such rather than as the first failing API call of the plan.
    if let Err(error) = client.apiserver_version().await {
        return Err(Error::Config {
            message: format!(
                "cannot use the cluster with this kubeconfig ({}); check the server address \
                 and credentials in the `kubeconfig` secret",
                crate::error::kube_message(&error)
            ),
        });
    }
    let namespace = settings
        .namespace
        .clone()
        .or(context_ns)
        .unwrap_or_else(|| "default".into());
    let mut engine = Engine::new(client, &namespace);
    if !settings.wait {
        engine = engine.without_wait();
    }
    let names: Vec<String> = settings
        .files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let plan = engine
        .plan(
            &settings.app,
            &documents,
            &format!("pipeline deploy of {}", names.join(", ")),
        )
        .await?;
    say(format!(
        "app {} in {}, revision {}: {}",
        plan.app,
        plan.namespace,
        plan.revision,
        plan.summary()
    ));
    for change in plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
    {
        say(format!("  {:<9} {}", change.action.to_string(), change.id));
    }
    if plan.is_noop() {
        say("no changes".into());
        return Ok(None);
    }
    let progress = LineProgress::new(say);
    let outcome = engine.apply(&plan, settings.timeout, &progress).await?;
    say(format!(
        "app {}: revision {} deployed ({})",
        plan.app, outcome.revision, outcome.summary
    ));
    Ok(Some(outcome))
}

/// Progress as plain lines (no terminal in a step log): one line per event, and a waiting
/// line only when what is awaited changes.
pub struct LineProgress<'a> {
    say: &'a (dyn Fn(String) + Send + Sync),
    waiting: Mutex<HashMap<ResourceId, String>>,
}

impl<'a> LineProgress<'a> {
    pub fn new(say: &'a (dyn Fn(String) + Send + Sync)) -> Self {
        LineProgress {
            say,
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

impl Progress for LineProgress<'_> {
    fn group(&self, weight: i64, count: usize) {
        (self.say)(format!("== group {weight}: {count} resource(s)"));
    }
    fn applied(&self, id: &ResourceId, what: &str) {
        (self.say)(format!("{id}: {what}"));
    }
    fn waiting(&self, id: &ResourceId, message: &str) {
        let changed = match self.waiting.lock() {
            Ok(mut seen) => {
                seen.insert(id.clone(), message.to_string()).as_deref() != Some(message)
            }
            Err(_) => true,
        };
        if changed {
            (self.say)(format!("{id}: waiting: {message}"));
        }
    }
    fn ready(&self, id: &ResourceId) {
        (self.say)(format!("{id}: ready"));
    }
    fn failed(&self, id: &ResourceId, message: &str) {
        (self.say)(format!("{id}: FAILED: {message}"));
    }
    fn deleted(&self, id: &ResourceId) {
        (self.say)(format!("{id}: deleted"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_from_plugin_variables() {
        let ws = Path::new("/ws");
        let s = StepSettings::from_env(
            &env(&[
                ("PLUGIN_APP", "web"),
                ("PLUGIN_FILES", "k8s/,extra/x.yaml"),
                ("PLUGIN_NAMESPACE", "prod"),
                ("PLUGIN_TIMEOUT", "1m30s"),
                ("PLUGIN_KUBECONFIG", "apiVersion: v1"),
            ]),
            ws,
        )
        .expect("valid");
        assert_eq!(s.app, "web");
        assert_eq!(
            s.files,
            vec![PathBuf::from("/ws/k8s/"), PathBuf::from("/ws/extra/x.yaml")]
        );
        assert_eq!(s.namespace.as_deref(), Some("prod"));
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert!(s.wait);
        assert!(!format!("{s:?}").contains("apiVersion"));
    }

    #[test]
    fn bad_settings_are_named() {
        let ws = Path::new("/ws");
        let base = [
            ("PLUGIN_APP", "web"),
            ("PLUGIN_FILES", "k8s"),
            ("PLUGIN_KUBECONFIG", "x"),
        ];
        let mut e = env(&base);
        e.remove("PLUGIN_KUBECONFIG");
        let err = StepSettings::from_env(&e, ws).expect_err("no kubeconfig");
        assert!(err.to_string().starts_with("setting `kubeconfig`"), "{err}");
        let mut e = env(&base);
        e.insert("PLUGIN_FILES".into(), "../etc".into());
        assert!(StepSettings::from_env(&e, ws).is_err());
        e.insert("PLUGIN_FILES".into(), "/etc".into());
        assert!(StepSettings::from_env(&e, ws).is_err());
        let mut e = env(&base);
        e.insert("PLUGIN_TIMEOUT".into(), "5 minutes".into());
        let err = StepSettings::from_env(&e, ws).expect_err("bad timeout");
        assert!(err.to_string().contains("timeout"), "{err}");
        let mut e = env(&base);
        e.remove("PLUGIN_APP");
        assert!(StepSettings::from_env(&e, ws).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5m3"), None);
    }
}
