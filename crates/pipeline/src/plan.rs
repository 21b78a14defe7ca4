//! The contract between the pipeline compiler and the runner: a validated, fully resolved
//! description of one pipeline (a Drone "stage"). Everything a backend needs is here as plain
//! data; the runner never looks at YAML.

use std::collections::BTreeMap;

/// One pipeline, compiled for one event and ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The pipeline's `name` (Drone's stage name).
    pub name: String,
    /// Which backend the pipeline asks for (`type:`).
    pub backend: BackendKind,
    pub platform: Platform,
    /// Absolute path of the working directory inside steps (`/drone/src` by default).
    pub workspace: Workspace,
    /// The implicit clone step's settings; `None` when `clone: disable: true`.
    pub clone: Option<CloneSettings>,
    /// Services and steps in document order (services first). Names are unique.
    pub steps: Vec<Step>,
    /// Pipeline-level `volumes:` that steps mount by name.
    pub volumes: Vec<Volume>,
    /// Environment shared by every step: the DRONE_*/CI_* set for the event plus the
    /// pipeline's own `environment:` (plain values only).
    pub environment: BTreeMap<String, String>,
    /// Names of secrets holding docker `config.json` auths for image pulls.
    pub image_pull_secrets: Vec<String>,
    /// Warnings found while compiling (things Drone would silently ignore).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Docker,
    Kubernetes,
    Exec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Mount point of the shared workspace volume (`/drone` by default).
    pub base: String,
    /// Full working directory (`/drone/src` by default).
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneSettings {
    pub depth: Option<u32>,
    pub retries: Option<u32>,
    pub skip_verify: bool,
    pub trace: bool,
}

/// A step or a service (a service is a detached step started before the others).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub is_service: bool,
    /// Container image; `None` only on the exec backend.
    pub image: Option<String>,
    pub pull: PullPolicy,
    /// Shell commands; when non-empty the backend runs them as Drone's generated script.
    pub commands: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    /// Plain environment of this step, including encoded `PLUGIN_*` settings.
    pub environment: BTreeMap<String, String>,
    /// Environment variables whose value comes from a secret: env name -> secret name.
    pub secret_environment: BTreeMap<String, String>,
    pub privileged: bool,
    pub volumes: Vec<VolumeMount>,
    pub detach: bool,
    pub failure: FailurePolicy,
    pub user: Option<String>,
    pub network_mode: Option<String>,
    pub shm_size: Option<u64>,
    pub working_dir: Option<String>,
    pub resources: Resources,
    /// Names of steps this one waits for. Already resolved: in serial mode each step depends
    /// on the previous one; in graph mode steps without deps depend on `clone` when enabled.
    pub depends_on: Vec<String>,
    pub run_policy: RunPolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull when the image is missing or its tag is `latest` (Drone's default).
    #[default]
    Default,
    Always,
    IfNotExists,
    Never,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// A failing step fails the pipeline.
    #[default]
    Fail,
    /// A failing step is shown as failed but does not fail the pipeline.
    Ignore,
    /// A failing step fails the pipeline and cancels the running steps.
    Fast,
}

/// When a step runs, derived from `when` (Drone's `RunPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunPolicy {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
    /// `when` did not match this event: never run, reported as skipped.
    Never,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_request_millis: Option<u64>,
    pub memory_request_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A directory of the host (trusted pipelines only).
    Host { path: String },
    /// Scratch space living as long as the pipeline; `in_memory` is a tmpfs (trusted only).
    Temp { in_memory: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    /// Name of a pipeline-level volume.
    pub name: String,
    /// Absolute path inside the step.
    pub path: String,
}
