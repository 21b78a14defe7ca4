//! `skiff user`: local accounts on a Skiff server (site admins): add one (a generated password
//! is printed once), list, change, remove.

use crate::cmd_login::{block_on, field, print_json};
use anyhow::bail;
use skiff_server::client::Client;
use std::process::ExitCode;

/// Manage the server's user accounts (site admins).
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account; without --password a random one is made and printed once.
    Add {
        login: String,
        /// Make the user a site admin.
        #[arg(long)]
        admin: bool,
        /// The password (at least 8 characters).
        #[arg(long, env = "SKIFF_NEW_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List accounts.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Change an account: password, site admin flag, or enable/disable it.
    Update {
        login: String,
        #[arg(long, hide_env_values = true)]
        password: Option<String>,
        /// true or false.
        #[arg(long)]
        admin: Option<bool>,
        /// true or false; a disabled account cannot log in or use its tokens.
        #[arg(long)]
        active: Option<bool>,
    },
    /// Delete an account with its tokens and memberships.
    Rm { login: String },
}

pub fn run(args: UserArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let client = Client::from_saved()?;
        match args.command {
            UserCommand::Add {
                login,
                admin,
                password,
                json,
            } => {
                let mut body = serde_json::json!({ "login": login, "admin": admin });
                if let Some(password) = password {
                    body["password"] = password.into();
                }
                let user = client.post("/users", body).await?;
                if json {
                    print_json(&user);
                } else {
                    println!("user {} added{}", field(&user, "login"), admin_mark(&user));
                    if let Some(password) = user["password"].as_str() {
                        println!("password: {password}");
                        eprintln!("the password is shown only now");
                    }
                }
            }
            UserCommand::Ls { json } => {
                let users = client.get("/users").await?;
                if json {
                    print_json(&users);
                } else {
                    for u in users.as_array().into_iter().flatten() {
                        let active = if u["active"] == false {
                            "\tdisabled"
                        } else {
                            ""
                        };
                        println!("{}{}{active}", field(u, "login"), admin_mark(u));
                    }
                }
            }
            UserCommand::Update {
                login,
                password,
                admin,
                active,
            } => {
                if password.is_none() && admin.is_none() && active.is_none() {
                    bail!("nothing to change: give --password, --admin or --active");
                }
                let mut body = serde_json::json!({});
                if let Some(p) = password {
                    body["password"] = p.into();
                }
                if let Some(a) = admin {
                    body["admin"] = a.into();
                }
                if let Some(a) = active {
                    body["active"] = a.into();
                }
                client.patch(&format!("/users/{login}"), body).await?;
                eprintln!("user {login} updated");
            }
            UserCommand::Rm { login } => {
                client.delete(&format!("/users/{login}")).await?;
                eprintln!("user {login} deleted");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn admin_mark(user: &serde_json::Value) -> &'static str {
    if user["admin"] == true { "\tadmin" } else { "" }
}
