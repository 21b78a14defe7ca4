//! `skiff registry`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RegistryArgs {}

pub fn run(_args: RegistryArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff registry` is not implemented yet")
}
