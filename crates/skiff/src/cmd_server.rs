//! `skiff server`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ServerArgs {}

pub fn run(_args: ServerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff server` is not implemented yet")
}
