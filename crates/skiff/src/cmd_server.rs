//! `skiff server`: the Skiff server. For now it serves the registry at /v2/ with the same
//! settings as `skiff registry serve`; the other parts of the control plane join it later.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    serve: crate::cmd_registry::ServeArgs,
}

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    crate::cmd_registry::serve_registry(args.serve)
}
