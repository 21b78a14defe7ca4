//! `skiff deploy`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DeployArgs {}

pub fn run(_args: DeployArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff deploy` is not implemented yet")
}
