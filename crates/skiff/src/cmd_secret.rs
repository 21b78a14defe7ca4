//! `skiff secret`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct SecretArgs {}

pub fn run(_args: SecretArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff secret` is not implemented yet")
}
