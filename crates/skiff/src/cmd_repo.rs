//! `skiff repo`: add and list repositories on the server the CLI is logged in to.

use crate::cmd_login::{block_on, field, print_json, slug};
use skiff_server::client::Client;
use std::process::ExitCode;

/// Add and list repositories on a Skiff server.
#[derive(Debug, clap::Args)]
pub struct RepoArgs {
    #[command(subcommand)]
    pub command: RepoCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RepoCommand {
    /// Add a repository by its git URL; prints the webhook secret and URLs for the forge.
    Add {
        /// OWNER/NAME as the forge names it (webhooks are matched by it).
        slug: String,
        /// Where the server clones it from (https://…, ssh, a path or file://).
        #[arg(long)]
        git_url: String,
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
        #[arg(long)]
        json: bool,
    },
    /// List repositories.
    Ls {
        #[arg(long)]
        json: bool,
    },
}

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
                json,
            } => {
                let body = serde_json::json!({
                    "slug": slug(&name)?,
                    "git_url": git_url,
                    "config_path": config,
                    "webhook_secret": webhook_secret,
                    "trusted": trusted,
                    "timeout_secs": timeout,
                    "default_branch": default_branch,
                });
                let repo = client.post("/repos", body).await?;
                if json {
                    print_json(&repo);
                } else {
                    let base = client.server();
                    println!("added {name}");
                    println!("webhook secret: {}", field(&repo, "webhook_secret"));
                    println!(
                        "webhook URLs:   {base}/hook/gitea  {base}/hook/github  {base}/hook/gitlab"
                    );
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
