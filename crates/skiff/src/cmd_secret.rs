//! `skiff secret`: write-only repository secrets (values go in, only names come out).

use crate::cmd_login::{block_on, field, print_json, slug};
use anyhow::Context;
use skiff_server::client::Client;
use std::process::ExitCode;

/// Manage repository secrets; values can be written, never read back.
#[derive(Debug, clap::Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Create or replace a secret.
    Add {
        /// OWNER/NAME
        repo: String,
        /// The secret's name (`from_secret: NAME`).
        name: String,
        /// The value; `-` or absent reads it from standard input.
        #[arg(long)]
        value: Option<String>,
        /// Expose it to pull requests (from forks only if the repository allows).
        #[arg(long)]
        pull_request: bool,
    },
    /// List secret names.
    Ls {
        /// OWNER/NAME
        repo: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret.
    Rm {
        /// OWNER/NAME
        repo: String,
        name: String,
    },
}

pub fn run(args: SecretArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = Client::from_saved()?;
        match args.command {
            SecretCommand::Add {
                repo,
                name,
                value,
                pull_request,
            } => {
                let value = match value.as_deref() {
                    Some(v) if v != "-" => v.to_string(),
                    _ => {
                        let mut text = String::new();
                        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                            .context("cannot read the value from standard input")?;
                        text.trim_end_matches('\n').to_string()
                    }
                };
                let body =
                    serde_json::json!({"name": name, "value": value, "pull_request": pull_request});
                client
                    .post(&format!("/repos/{}/secrets", slug(&repo)?), body)
                    .await?;
                eprintln!("secret {name} saved");
            }
            SecretCommand::Ls { repo, json } => {
                let list = client
                    .get(&format!("/repos/{}/secrets", slug(&repo)?))
                    .await?;
                if json {
                    print_json(&list);
                } else {
                    for s in list.as_array().into_iter().flatten() {
                        let pr = if s["pull_request"] == true {
                            "\tpull_request"
                        } else {
                            ""
                        };
                        println!("{}{pr}", field(s, "name"));
                    }
                }
            }
            SecretCommand::Rm { repo, name } => {
                client
                    .delete(&format!("/repos/{}/secrets/{name}", slug(&repo)?))
                    .await?;
                eprintln!("secret {name} deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
