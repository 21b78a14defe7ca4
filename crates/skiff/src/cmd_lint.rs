//! `skiff lint`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LintArgs {}

pub fn run(_args: LintArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff lint` is not implemented yet")
}
