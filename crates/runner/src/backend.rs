//! The seam between the DAG engine and the world (youki-style): a [`Backend`] prepares the
//! build's shared resources, runs one step at a time when asked, and removes everything it
//! created. The engine's logic is tested with a fake backend; the real ones (docker, exec)
//! are tested against the real Docker Engine and the real host.

use crate::RunnerError;
use crate::log::StepLog;
use async_trait::async_trait;
use skiff_pipeline::{Step, Volume, Workspace};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// What a backend needs to prepare a build, known before any step runs.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// Unique id of this run; every resource created is labelled `io.skiff.build=<id>`.
    pub id: String,
    /// The pipeline's name.
    pub pipeline: String,
    pub workspace: Workspace,
    /// A host directory to use as the workspace (`skiff exec` uses the working directory);
    /// `None` means an empty workspace owned by the build.
    pub host_workspace: Option<PathBuf>,
    /// Pipeline-level volumes.
    pub volumes: Vec<Volume>,
    /// Every step that may run, in plan order.
    pub steps: Vec<StepSpec>,
    /// Registry credentials from `image_pull_secrets`.
    pub auths: Vec<RegistryAuth>,
}

/// One step, with everything resolved: environment (plan, secrets, runtime variables) and the
/// generated script.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// 1-based position in the plan (Drone's step number).
    pub number: usize,
    /// The step as planned.
    pub step: Step,
    /// Full environment for the process or container.
    pub env: BTreeMap<String, String>,
    /// Drone's posix script when the step has `commands`.
    pub script: Option<String>,
    /// Whether the backend may create the step's container ahead of time. False for steps
    /// whose environment depends on how earlier steps ended (`on-failure`, `always`).
    pub precreate: bool,
}

/// Credentials for one registry, from an `image_pull_secrets` docker `config.json`.
pub use skiff_dockerconfig::RegistryCredentials as RegistryAuth;

/// How a step's process ended, as seen by the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepExit {
    /// The process exited with this code.
    Exited(i64),
    /// A detached step (or service) was started and left running.
    Detached,
    /// The step was killed because the build was cancelled.
    Killed,
    /// The backend could not run the step (create failed, image missing…).
    Error(String),
}

/// A place where steps run. One value serves one build: `setup`, any number of `run`s (in
/// parallel), then `teardown`, which must be called whatever happened.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Creates shared resources (network, workspace, volumes) and checks or pulls images.
    /// Fails before any step starts when the build cannot run.
    async fn setup(&self, build: &BuildSpec) -> Result<(), RunnerError>;

    /// Runs one step to its end (or, when detached, starts it), writing its output to `log`.
    /// When `cancel` fires the step is killed and [`StepExit::Killed`] returned.
    async fn run(&self, spec: &StepSpec, log: StepLog, cancel: CancellationToken) -> StepExit;

    /// The workspace as a directory on the runner host, once `setup` has run, when the backend
    /// has one of its own (built-in steps run there). Backends whose workspace is not on the host
    /// (a docker volume) have none; a `BuildSpec::host_workspace` is used first anyway.
    fn host_workspace(&self) -> Option<PathBuf> {
        None
    }

    /// Stops and removes everything the build created. Best effort: reports what it could
    /// not remove, never stops early.
    async fn teardown(&self) -> Vec<RunnerError>;
}
