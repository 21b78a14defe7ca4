//! `skiff build`: list, inspect, follow, run, cancel and restart builds through the server's
//! API. `--json` prints the API's answer for scripts.

use crate::cmd_login::{block_on, field, print_json, slug};
use anyhow::bail;
use serde_json::Value;
use skiff_server::client::Client;
use std::process::ExitCode;

/// List, inspect, follow, run, cancel and restart builds.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(subcommand)]
    pub command: BuildCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BuildCommand {
    /// The newest builds of a repository.
    Ls {
        /// OWNER/NAME
        repo: String,
        #[arg(long, default_value_t = 25)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One build with its stages and steps.
    Info {
        repo: String,
        number: i64,
        #[arg(long)]
        json: bool,
    },
    /// A build's log lines; `--follow` keeps printing until the build ends.
    Logs {
        repo: String,
        number: i64,
        #[arg(long, short = 'f')]
        follow: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the head of a branch now (a `custom` event).
    Run {
        repo: String,
        #[arg(long)]
        branch: String,
        /// KEY=VALUE parameters for the pipeline (repeatable).
        #[arg(long = "param")]
        params: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a pending or running build.
    Cancel { repo: String, number: i64 },
    /// Approve a build that waits for approval (`blocked`): it is queued.
    Approve { repo: String, number: i64 },
    /// Decline a build that waits for approval: it ends `declined` and never runs.
    Decline { repo: String, number: i64 },
    /// Promote a build's commit to a target (`promote` event, `DRONE_DEPLOY_TO`).
    Promote {
        repo: String,
        number: i64,
        target: String,
        /// KEY=VALUE parameters (repeatable).
        #[arg(long = "param")]
        params: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Roll a target back to a build's commit (`rollback` event).
    Rollback {
        repo: String,
        number: i64,
        target: String,
        #[arg(long = "param")]
        params: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Start a new build with the same commit and event.
    Restart {
        repo: String,
        number: i64,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = Client::from_saved()?;
        match args.command {
            BuildCommand::Ls { repo, limit, json } => {
                let list = client
                    .get(&format!("/repos/{}/builds?limit={limit}", slug(&repo)?))
                    .await?;
                if json {
                    print_json(&list);
                } else {
                    for b in list.as_array().into_iter().flatten() {
                        println!("{}", summary(b));
                    }
                }
            }
            BuildCommand::Info { repo, number, json } => {
                let build = client
                    .get(&format!("/repos/{}/builds/{number}", slug(&repo)?))
                    .await?;
                if json {
                    print_json(&build);
                } else {
                    print_info(&build);
                }
            }
            BuildCommand::Logs {
                repo,
                number,
                follow,
                json,
            } => return logs(&client, slug(&repo)?, number, follow, json).await,
            BuildCommand::Promote {
                repo,
                number,
                target,
                params,
                json,
            } => deploy_event(&client, "promote", &repo, number, target, &params, json).await?,
            BuildCommand::Rollback {
                repo,
                number,
                target,
                params,
                json,
            } => deploy_event(&client, "rollback", &repo, number, target, &params, json).await?,
            BuildCommand::Run {
                repo,
                branch,
                params,
                json,
            } => {
                let body = serde_json::json!({"branch": branch, "params": param_map(&params)?});
                let build = client
                    .post(&format!("/repos/{}/builds", slug(&repo)?), body)
                    .await?;
                report_created(&build, json);
            }
            BuildCommand::Cancel { repo, number } => {
                client
                    .post(
                        &format!("/repos/{}/builds/{number}/cancel", slug(&repo)?),
                        Value::Null,
                    )
                    .await?;
                eprintln!("build #{number} cancelled");
            }
            BuildCommand::Approve { repo, number } => {
                client
                    .post(
                        &format!("/repos/{}/builds/{number}/approve", slug(&repo)?),
                        Value::Null,
                    )
                    .await?;
                eprintln!("build #{number} approved");
            }
            BuildCommand::Decline { repo, number } => {
                client
                    .post(
                        &format!("/repos/{}/builds/{number}/decline", slug(&repo)?),
                        Value::Null,
                    )
                    .await?;
                eprintln!("build #{number} declined");
            }
            BuildCommand::Restart { repo, number, json } => {
                let build = client
                    .post(
                        &format!("/repos/{}/builds/{number}/restart", slug(&repo)?),
                        Value::Null,
                    )
                    .await?;
                report_created(&build, json);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `KEY=VALUE` flags as a JSON object.
/// `promote` and `rollback`: a new build of build `number`'s commit for a deploy `target`.
async fn deploy_event(
    client: &Client,
    event: &str,
    repo: &str,
    number: i64,
    target: String,
    params: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let body = serde_json::json!({"target": target, "params": param_map(params)?});
    let path = format!("/repos/{}/builds/{number}/{event}", slug(repo)?);
    let build = client.post(&path, body).await?;
    report_created(&build, json);
    Ok(())
}

fn param_map(params: &[String]) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut map = serde_json::Map::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param `{p}` is not KEY=VALUE");
        };
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(map)
}

fn report_created(build: &Value, json: bool) {
    if json {
        print_json(build);
    } else if build["status"] == "ignored" {
        println!("no build: {}", field(build, "reason"));
    } else {
        println!("{}", summary(build));
    }
}

fn summary(b: &Value) -> String {
    let sha = field(b, "sha");
    let short = sha.get(..8).unwrap_or(&sha);
    format!(
        "#{}\t{}\t{}\t{}\t{}\t{}",
        field(b, "number"),
        field(b, "status"),
        field(b, "event"),
        field(b, "git_ref"),
        short,
        field(b, "message").lines().next().unwrap_or("")
    )
}

fn print_info(build: &Value) {
    println!("{}", summary(build));
    if !field(build, "error").is_empty() {
        println!("error: {}", field(build, "error"));
    }
    for stage in build["stages"].as_array().into_iter().flatten() {
        println!(
            "  stage {}: {}",
            field(stage, "name"),
            field(stage, "status")
        );
        for step in stage["steps"].as_array().into_iter().flatten() {
            println!(
                "    {}: {} (exit {})",
                field(step, "name"),
                field(step, "status"),
                field(step, "exit_code")
            );
        }
    }
}

/// Prints a build's log lines; with `follow`, from the server's Server-Sent Events stream as
/// they are stored, until the build ends. The exit code is the build's: success or not.
async fn logs(
    client: &Client,
    repo: &str,
    number: i64,
    follow: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if follow {
        return follow_logs(client, repo, number, json).await;
    }
    let logs = client
        .get(&format!("/repos/{repo}/builds/{number}/logs"))
        .await?;
    if json {
        print_json(&logs);
        return Ok(ExitCode::SUCCESS);
    }
    for step in logs["steps"].as_array().into_iter().flatten() {
        for line in step["lines"].as_array().into_iter().flatten() {
            println!("[{}] {}", field(step, "step"), field(line, "out"));
        }
    }
    let status = field(&logs, "status");
    let done = !matches!(status.as_str(), "pending" | "running");
    Ok(if status == "success" || !done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `logs --follow`: each `line` event printed as it comes (as JSON lines with `--json`), then
/// the `done` event's status decides the exit code.
async fn follow_logs(
    client: &Client,
    repo: &str,
    number: i64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use futures::StreamExt;
    let events = client
        .events(&format!("/repos/{repo}/builds/{number}/logs/stream"))
        .await?;
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let event = event?;
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
        match event.event.as_str() {
            "line" if json => println!("{data}"),
            "line" => println!("[{}] {}", field(&data, "step"), field(&data, "out")),
            "done" => {
                if json {
                    println!("{data}");
                }
                let status = field(&data, "status");
                if status != "success" {
                    eprintln!("build #{number} {status}");
                    return Ok(ExitCode::FAILURE);
                }
                return Ok(ExitCode::SUCCESS);
            }
            "error" => anyhow::bail!("the server stopped the log stream: {}", event.data),
            _ => {}
        }
    }
    anyhow::bail!("the log stream ended before the build did")
}
