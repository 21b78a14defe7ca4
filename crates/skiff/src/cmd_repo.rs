//! `skiff repo`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RepoArgs {}

pub fn run(_args: RepoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff repo` is not implemented yet")
}
