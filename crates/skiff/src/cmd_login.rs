//! `skiff login`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {}

pub fn run(_args: LoginArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff login` is not implemented yet")
}
