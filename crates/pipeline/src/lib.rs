//! The `.drone.yml` language, pure and without I/O: parse a multi-document file with source
//! positions, lint it, evaluate `when`/`trigger` against an event, substitute variables, and
//! compile one pipeline into a [`Plan`] that a backend in `skiff-runner` can execute.
//!
//! Behaviour follows Drone (see `docs/drone-compat.md` and `../shared/research/ci.md` §2);
//! where Drone silently ignores something, Skiff warns instead.
//!
//! Entry points: [`plan_build`] for a build, [`lint`] for `skiff lint`, [`substitute`] and
//! [`drone_environment`] for the runner.

mod compile;
pub mod cond;
mod env;
mod error;
pub mod model;
pub mod plan;
mod settings;
mod subst;
mod yaml;

pub use compile::{BuildPlan, PlanOptions, Stage, lint, parse, pipeline_names, plan_build};
pub use env::{BuildContext, drone_environment, skip_requested};
pub use error::{Diagnostic, Diagnostics, Error, Pos, Severity};
pub use model::{Manifest, Resource, SecretDoc, SecretGet, SignatureDoc};
pub use plan::*;
pub use subst::substitute;
