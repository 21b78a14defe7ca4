//! `skiff lint FILE...`: check pipeline files and print every problem as
//! `FILE:LINE:COL: error|warning: message`, so editors and CI logs can jump to it. All the rules
//! live in `skiff-pipeline`; this module only reads files and sets the exit code.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Pipeline files to check (default: .drone.yml).
    #[arg(value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Lint as a trusted repository: allow privileged steps, host volumes, network_mode, ...
    #[arg(long)]
    pub trusted: bool,
    /// Print only errors, not warnings.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Exit status 1 when any file has an error (or cannot be read), 0 otherwise.
pub fn run(args: LintArgs) -> anyhow::Result<ExitCode> {
    let files = if args.files.is_empty() {
        vec![std::path::PathBuf::from(".drone.yml")]
    } else {
        args.files
    };
    let opts = skiff_pipeline::PlanOptions {
        trusted: args.trusted,
    };
    let mut failed = false;
    for path in &files {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                println!("{name}:0:0: error: cannot read file: {e}");
                failed = true;
                continue;
            }
        };
        for d in skiff_pipeline::lint(&name, &text, &opts) {
            if d.is_error() {
                failed = true;
            } else if args.quiet {
                continue;
            }
            println!("{d}");
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
