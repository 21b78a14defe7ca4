//! Executes a pipeline [`skiff_pipeline::Plan`] on a backend.
//!
//! The engine ([`engine`]) checks a plan and runs it as a DAG with Drone's semantics; the
//! side effects sit behind the [`Backend`] trait with two real implementations, [`docker`]
//! (Docker Engine API) and [`exec`] (host processes). Logs pass through [`log`] and
//! [`mask`] so that secrets never reach a sink. Behaviour is documented in `docs/runner.md`.

pub mod auth;
pub mod backend;
pub mod builtin;
pub mod console;
pub mod docker;
pub mod engine;
pub mod envfile;
mod error;
pub mod exec;
pub mod log;
pub mod mask;
pub mod script;

pub use backend::{Backend, BuildSpec, RegistryAuth, StepExit, StepSpec};
pub use builtin::{BuiltinContext, BuiltinFuture, BuiltinLog, BuiltinStep, Builtins};
pub use engine::{BuildReport, Prepared, RunOptions, Status, StepReport, execute, prepare};
pub use error::RunnerError;
pub use log::{LogLine, LogSink, MemorySink, NullSink, StepLog};
pub use mask::Masker;
