//! The `.drone.yml` language, pure and without I/O: parse a multi-document file with source
//! positions, lint it, evaluate `when`/`trigger` against an event, substitute variables, and
//! compile one pipeline into a [`Plan`] that a backend in `skiff-runner` can execute.
//!
//! Behaviour follows Drone (see `docs/drone-compat.md` and `../shared/research/ci.md` §2);
//! where Drone silently ignores something, Skiff warns instead.

pub mod plan;

pub use plan::*;
