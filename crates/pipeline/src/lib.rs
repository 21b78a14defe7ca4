//! The `.drone.yml` language, pure and without I/O: parse a multi-document file with source
//! positions, lint it, evaluate `when`/`trigger` against an event, substitute variables, and
//! compile one pipeline into a [`Plan`] that a backend in `skiff-runner` can execute.
//!
//! Behaviour follows Drone (see `docs/drone-compat.md` and `../shared/research/ci.md` §2);
//! where Drone silently ignores something, Skiff warns instead.
//!
//! Entry points: [`plan_build`] for a build, [`lint`] for `skiff lint`, [`substitute`] and
//! [`drone_environment`] for the runner.
//!
//! ```
//! use skiff_pipeline::{BuildContext, PlanOptions, RunPolicy, plan_build};
//!
//! let yaml = "kind: pipeline\nname: ci\nsteps:\n- name: test\n  image: golang\n  commands: [go test ./...]\n- name: publish\n  image: plugins/docker\n  settings:\n    tags: [latest, '${DRONE_COMMIT_SHA:0:8}']\n  when:\n    event: tag\n";
//! let ctx = BuildContext {
//!     event: "push".into(),
//!     branch: "main".into(),
//!     git_ref: "refs/heads/main".into(),
//!     sha: "0123456789abcdef".into(),
//!     ..Default::default()
//! };
//! let build = plan_build(".drone.yml", yaml, &ctx, &PlanOptions::default()).expect("valid file");
//! let plan = &build.stages[0].plan;
//! assert!(build.stages[0].matched);
//! assert_eq!(plan.steps[0].depends_on, ["clone"]); // serial mode: clone, then each step
//! assert_eq!(plan.steps[1].depends_on, ["test"]);
//! assert_eq!(plan.steps[1].run_policy, RunPolicy::Never); // `when: event: tag` on a push
//! assert_eq!(plan.steps[1].environment["PLUGIN_TAGS"], "latest,01234567");
//! assert!(plan.steps[1].privileged); // plugins/docker as a plugin
//!
//! let problems = skiff_pipeline::lint(".drone.yml", "kind: pipeline\nsteps:\n- name: a\n  imgae: x\n", &PlanOptions::default());
//! let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
//! assert_eq!(text, [".drone.yml:4:3: error: unknown key `imgae` in a step `a`; did you mean `image`?"]);
//! ```

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
pub use subst::{go_quote, substitute};
