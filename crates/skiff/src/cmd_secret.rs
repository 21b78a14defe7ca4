//! `skiff secret`: write-only repository and organisation secrets (values go in, only names
//! come out). `--org ORG` works on the organisation's secrets (site admins), which builds of
//! every repository `ORG/*` see unless the repository has a secret of the same name.

use crate::cmd_login::{block_on, field, print_json, slug};
use anyhow::{Context, bail};
use skiff_server::client::Client;
use std::process::ExitCode;

/// Manage repository or organisation secrets; values can be written, never read back.
#[derive(Debug, clap::Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Create or replace a secret: `add OWNER/NAME SECRET [--value V]` or
    /// `add --org ORG SECRET [VALUE]`.
    Add {
        /// OWNER/NAME; with --org, the secret's name.
        repo: String,
        /// The secret's name (`from_secret: NAME`); with --org, the value.
        name: Option<String>,
        /// The value; `-` or absent reads it from standard input.
        #[arg(long)]
        value: Option<String>,
        /// Expose it to pull requests (from forks only if the repository allows).
        #[arg(long)]
        pull_request: bool,
        /// An organisation secret of ORG instead of a repository secret.
        #[arg(long)]
        org: Option<String>,
    },
    /// List secret names: `ls OWNER/NAME` or `ls --org ORG`.
    Ls {
        /// OWNER/NAME (not with --org).
        repo: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret: `rm OWNER/NAME SECRET` or `rm --org ORG SECRET`.
    Rm {
        /// OWNER/NAME; with --org, the secret's name.
        repo: String,
        /// The secret's name (not with --org).
        name: Option<String>,
        #[arg(long)]
        org: Option<String>,
    },
}

/// The API path of the secrets of a repository or an organisation.
fn secrets_path(repo: Option<&str>, org: Option<&str>) -> anyhow::Result<String> {
    match (repo, org) {
        (_, Some(org)) => Ok(format!("/orgs/{org}/secrets")),
        (Some(repo), None) => Ok(format!("/repos/{}/secrets", slug(repo)?)),
        (None, None) => bail!("give OWNER/NAME or --org ORG"),
    }
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
                org,
            } => {
                // With --org the positionals are SECRET [VALUE].
                let (path, name, value) = match (&org, name) {
                    (Some(_), second) => {
                        (secrets_path(None, org.as_deref())?, repo, value.or(second))
                    }
                    (None, Some(name)) => (secrets_path(Some(&repo), None)?, name, value),
                    (None, None) => bail!("give the secret's name after OWNER/NAME"),
                };
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
                client.post(&path, body).await?;
                eprintln!("secret {name} saved");
            }
            SecretCommand::Ls { repo, org, json } => {
                if repo.is_some() && org.is_some() {
                    bail!("give OWNER/NAME or --org ORG, not both");
                }
                let list = client
                    .get(&secrets_path(repo.as_deref(), org.as_deref())?)
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
            SecretCommand::Rm { repo, name, org } => {
                let (path, name) = match (&org, name) {
                    (Some(_), None) => (secrets_path(None, org.as_deref())?, repo),
                    (Some(_), Some(_)) => bail!("with --org give only the secret's name"),
                    (None, Some(name)) => (secrets_path(Some(&repo), None)?, name),
                    (None, None) => bail!("give the secret's name after OWNER/NAME"),
                };
                client.delete(&format!("{path}/{name}")).await?;
                eprintln!("secret {name} deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
