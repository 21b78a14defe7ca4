//! `skiff repo`: add, update and list repositories on the server the CLI is logged in to, and set
//! the forge that receives their commit statuses.

use crate::cmd_login::{block_on, field, print_json, slug};
use skiff_server::client::Client;
use std::process::ExitCode;

/// Add, update and list repositories on a Skiff server.
#[derive(Debug, clap::Args)]
pub struct RepoArgs {
    #[command(subcommand)]
    pub command: RepoCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RepoCommand {
    /// Add a repository: an external one by its git URL (prints the webhook secret and URLs
    /// for the forge), or without --git-url one Skiff hosts (prints its clone URL; a push to
    /// it makes builds).
    Add {
        /// OWNER/NAME as the forge names it (webhooks are matched by it).
        slug: String,
        /// Where the server clones it from (https://…, ssh, a path or file://); without it the
        /// server hosts the repository itself.
        #[arg(long)]
        git_url: Option<String>,
        /// The pipeline file.
        #[arg(long = "config", default_value = ".drone.yml")]
        config: String,
        /// The secret forges sign webhooks with (random if not given).
        #[arg(long)]
        webhook_secret: Option<String>,
        /// Allow privileged steps and host volumes (admins only).
        #[arg(long)]
        trusted: bool,
        /// Kill builds after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: i64,
        /// The default branch.
        #[arg(long, default_value = "main")]
        default_branch: String,
        #[command(flatten)]
        forge: ForgeFlags,
        /// Which builds wait for approval: none, forks (default), pull_requests, all.
        #[arg(long, value_parser = APPROVAL)]
        approval: Option<String>,
        /// Stages of this repository running at once (0: unlimited).
        #[arg(long)]
        throttle: Option<i64>,
        /// Make no builds for pull requests from forks.
        #[arg(long)]
        ignore_forks: bool,
        /// Make no builds for pull requests.
        #[arg(long)]
        ignore_pull_requests: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a repository's settings; only the flags given change.
    Update {
        /// OWNER/NAME
        slug: String,
        /// Which builds wait for approval: none, forks, pull_requests, all.
        #[arg(long, value_parser = APPROVAL)]
        approval: Option<String>,
        /// Stages of this repository running at once (0: unlimited).
        #[arg(long)]
        throttle: Option<i64>,
        /// Make no builds for pull requests from forks.
        #[arg(long, value_name = "BOOL")]
        ignore_forks: Option<bool>,
        /// Make no builds for pull requests.
        #[arg(long, value_name = "BOOL")]
        ignore_pull_requests: Option<bool>,
        /// A new pull request build cancels older pending ones of the same pull request.
        #[arg(long, value_name = "BOOL")]
        cancel_pulls: Option<bool>,
        /// A new push build cancels older pending ones of the same branch.
        #[arg(long, value_name = "BOOL")]
        cancel_push: Option<bool>,
        /// With --cancel-push/--cancel-pulls, older builds already running are cancelled too.
        #[arg(long, value_name = "BOOL")]
        cancel_running: Option<bool>,
        /// The pipeline file.
        #[arg(long = "config")]
        config: Option<String>,
        /// Allow privileged steps and host volumes (admins only).
        #[arg(long, value_name = "BOOL")]
        trusted: Option<bool>,
        /// Kill builds after this many seconds.
        #[arg(long)]
        timeout: Option<i64>,
        /// private, internal or public.
        #[arg(long)]
        visibility: Option<String>,
        /// Give pull requests from forks the secrets marked for pull requests.
        #[arg(long, value_name = "BOOL")]
        fork_pr_secrets: Option<bool>,
        #[arg(long)]
        default_branch: Option<String>,
        /// Whether webhooks make builds.
        #[arg(long, value_name = "BOOL")]
        active: Option<bool>,
        #[arg(long)]
        json: bool,
    },
    /// Show or set the forge that gets commit statuses (no flags: show it).
    Forge {
        /// OWNER/NAME.
        slug: String,
        #[command(flatten)]
        forge: ForgeFlags,
        /// Forget the forge settings (no more commit statuses).
        #[arg(long, conflicts_with_all = ["forge", "forge_url"])]
        remove: bool,
        #[arg(long)]
        json: bool,
    },
    /// List repositories.
    Ls {
        #[arg(long)]
        json: bool,
    },
}

/// Where commit statuses go.
#[derive(Debug, clap::Args)]
pub struct ForgeFlags {
    /// The forge that gets commit statuses: gitea, github or gitlab.
    #[arg(long, value_parser = ["gitea", "github", "gitlab"])]
    forge: Option<String>,
    /// The forge's URL (required for Gitea and GitLab; GitHub: https://api.github.com).
    #[arg(long, requires = "forge")]
    forge_url: Option<String>,
    /// An API token allowed to set commit statuses (stored sealed, never shown again).
    #[arg(
        long,
        env = "SKIFF_FORGE_TOKEN",
        hide_env_values = true,
        requires = "forge"
    )]
    forge_token: Option<String>,
}

fn print_forge(slug: &str, forge: &serde_json::Value) {
    if forge["kind"].is_null() {
        println!("{slug}: no forge set; no commit statuses");
        return;
    }
    println!(
        "{slug}: {} at {}, {}",
        field(forge, "kind"),
        field(forge, "url"),
        if forge["token_set"] == true {
            "token set: commit statuses on"
        } else {
            "no token: commit statuses off"
        }
    );
}
/// The server's approval policies (`skiff_server` checks them again).
const APPROVAL: [&str; 4] = ["none", "forks", "pull_requests", "all"];

pub fn run(args: RepoArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = Client::from_saved()?;
        match args.command {
            RepoCommand::Add {
                slug: name,
                git_url,
                config,
                webhook_secret,
                trusted,
                timeout,
                default_branch,
                forge,
                approval,
                throttle,
                ignore_forks,
                ignore_pull_requests,
                json,
            } => {
                // A token from SKIFF_FORGE_TOKEN only counts with --forge.
                let forge_token = forge.forge.as_ref().and(forge.forge_token);
                let body = serde_json::json!({
                    "forge": forge.forge,
                    "forge_url": forge.forge_url,
                    "forge_token": forge_token,
                    "slug": slug(&name)?,
                    "git_url": git_url,
                    "config_path": config,
                    "webhook_secret": webhook_secret,
                    "trusted": trusted,
                    "timeout_secs": timeout,
                    "default_branch": default_branch,
                    "approval": approval,
                    "throttle": throttle,
                    "ignore_forks": ignore_forks,
                    "ignore_pull_requests": ignore_pull_requests,
                });
                let repo = client.post("/repos", body).await?;
                if json {
                    print_json(&repo);
                } else {
                    let base = client.server();
                    println!("added {name}");
                    if repo["hosted"].as_bool() == Some(true) {
                        println!("clone URL:      {}", field(&repo, "git_url"));
                        println!(
                            "push to it to build: git push {} HEAD",
                            field(&repo, "git_url")
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                    println!("webhook secret: {}", field(&repo, "webhook_secret"));
                    println!(
                        "webhook URLs:   {base}/hook/gitea  {base}/hook/github  {base}/hook/gitlab"
                    );
                    if repo["forge"].is_object() {
                        print_forge(&name, &repo["forge"]);
                    }
                }
            }
            RepoCommand::Forge {
                slug: name,
                forge,
                remove,
                json,
            } => {
                let path = format!("/repos/{}/forge", slug(&name)?);
                let settings = if remove {
                    client.delete(&path).await?;
                    client.get(&path).await?
                } else if let Some(kind) = forge.forge {
                    let body = serde_json::json!({
                        "kind": kind,
                        "url": forge.forge_url,
                        "token": forge.forge_token,
                    });
                    client.put(&path, body).await?
                } else {
                    client.get(&path).await?
                };
                if json {
                    print_json(&settings);
                } else {
                    print_forge(&name, &settings);
                }
            }
            RepoCommand::Update {
                slug: name,
                approval,
                throttle,
                ignore_forks,
                ignore_pull_requests,
                cancel_pulls,
                cancel_push,
                cancel_running,
                config,
                trusted,
                timeout,
                visibility,
                fork_pr_secrets,
                default_branch,
                active,
                json,
            } => {
                let given = serde_json::json!({
                    "approval": approval,
                    "throttle": throttle,
                    "ignore_forks": ignore_forks,
                    "ignore_pull_requests": ignore_pull_requests,
                    "cancel_pulls": cancel_pulls,
                    "cancel_push": cancel_push,
                    "cancel_running": cancel_running,
                    "config_path": config,
                    "trusted": trusted,
                    "timeout_secs": timeout,
                    "visibility": visibility,
                    "fork_pr_secrets": fork_pr_secrets,
                    "default_branch": default_branch,
                    "active": active,
                });
                // Only the flags given: the server leaves the other settings as they are.
                let body: serde_json::Map<String, serde_json::Value> = given
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if body.is_empty() {
                    anyhow::bail!("nothing to change: give at least one setting flag");
                }
                let repo = client
                    .patch(&format!("/repos/{}", slug(&name)?), body.into())
                    .await?;
                if json {
                    print_json(&repo);
                } else {
                    println!("updated {name}");
                    for key in [
                        "approval",
                        "throttle",
                        "ignore_forks",
                        "ignore_pull_requests",
                        "cancel_pulls",
                        "cancel_push",
                        "cancel_running",
                        "trusted",
                        "timeout_secs",
                        "active",
                    ] {
                        println!("  {key}: {}", field(&repo, key));
                    }
                }
            }
            RepoCommand::Ls { json } => {
                let repos = client.get("/repos").await?;
                if json {
                    print_json(&repos);
                } else {
                    for repo in repos.as_array().into_iter().flatten() {
                        println!(
                            "{}/{}\t{}\t{}",
                            field(repo, "owner"),
                            field(repo, "name"),
                            field(repo, "git_url"),
                            if repo["trusted"] == true {
                                "trusted"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
