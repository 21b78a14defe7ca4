//! `skiff exec`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ExecArgs {}

pub fn run(_args: ExecArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff exec` is not implemented yet")
}
