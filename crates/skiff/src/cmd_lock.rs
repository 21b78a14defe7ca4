//! `skiff lock`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LockArgs {}

pub fn run(_args: LockArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff lock` is not implemented yet")
}
