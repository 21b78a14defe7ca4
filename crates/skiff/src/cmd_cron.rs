//! `skiff cron`: placeholder until its owner wires it.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CronArgs {}

pub fn run(_args: CronArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`skiff cron` is not implemented yet")
}
