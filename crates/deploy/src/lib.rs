//! `skiff-deploy`: push-based deploys of a manifest set to Kubernetes as a named app — ordered
//! server-side apply, readiness waits, prune and history kept in the cluster — and image
//! locking (tags resolved to digests). Used by the CLI and by pipeline deploy steps; nothing is
//! installed in the cluster. Contract and behaviour: `docs/deploy.md`.

pub mod client;
pub mod diff;
pub mod engine;
pub mod error;
pub mod health;
pub mod image;
pub mod inventory;
pub mod lock;
pub mod manifest;
pub mod order;
pub mod progress;
pub mod registry;
pub mod step;

pub use client::{KubeconfigSource, connect};
pub use engine::{Action, Change, Engine, Outcome, Plan, ResourceStatus};
pub use error::{Error, Result};
pub use inventory::{AppRecord, ResourceId, Revision};
pub use manifest::{Document, load_paths, parse_documents};
