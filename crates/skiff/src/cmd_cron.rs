//! `skiff cron`: cron schedules of a repository (Drone's six fields, seconds first, or
//! `@hourly`/`@daily`…); each run builds the head of the job's branch as a `cron` event.

use crate::cmd_login::{block_on, field, print_json, slug};
use skiff_server::client::Client;
use std::process::ExitCode;

/// Manage cron schedules of a repository.
#[derive(Debug, clap::Args)]
pub struct CronArgs {
    #[command(subcommand)]
    pub command: CronCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CronCommand {
    /// Add a schedule, e.g. `skiff cron add acme/app nightly "0 0 2 * * *"`.
    Add {
        /// OWNER/NAME
        repo: String,
        /// The job's name (`DRONE_CRON`, matched by `trigger: cron:`).
        name: String,
        /// Six fields, seconds first, or @hourly, @daily, @weekly, @monthly, @yearly.
        expr: String,
        /// The branch to build (default: the repository's default branch).
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List schedules.
    Ls {
        repo: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a schedule.
    Rm { repo: String, name: String },
}

pub fn run(args: CronArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = Client::from_saved()?;
        match args.command {
            CronCommand::Add {
                repo,
                name,
                expr,
                branch,
                json,
            } => {
                let body = serde_json::json!({"name": name, "expr": expr, "branch": branch});
                let job = client
                    .post(&format!("/repos/{}/crons", slug(&repo)?), body)
                    .await?;
                if json {
                    print_json(&job);
                } else {
                    println!("cron {name} added on branch {}", field(&job, "branch"));
                }
            }
            CronCommand::Ls { repo, json } => {
                let list = client
                    .get(&format!("/repos/{}/crons", slug(&repo)?))
                    .await?;
                if json {
                    print_json(&list);
                } else {
                    for job in list.as_array().into_iter().flatten() {
                        println!(
                            "{}\t{}\t{}",
                            field(job, "name"),
                            field(job, "expr"),
                            field(job, "branch")
                        );
                    }
                }
            }
            CronCommand::Rm { repo, name } => {
                client
                    .delete(&format!("/repos/{}/crons/{name}", slug(&repo)?))
                    .await?;
                eprintln!("cron {name} deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
