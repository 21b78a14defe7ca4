//! `skiff runner`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RunnerArgs {}

pub fn run(_args: RunnerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff runner` is not implemented yet")
}
