//! `skiff login`: checks credentials against a Skiff server and stores the server URL and an
//! API token for the other client commands (`$SKIFF_CONFIG_DIR/credentials.json`, else
//! `~/.config/skiff/credentials.json`). Also the small helpers those commands share.

use anyhow::{Context, bail};
use skiff_server::client::{Client, Credentials};
use std::process::ExitCode;

/// Log in to a Skiff server with a user and password (a new API token is made) or a token.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The server's URL, e.g. http://skiff.example.com:8080.
    #[arg(long, env = "SKIFF_SERVER")]
    pub server: String,
    /// The user to log in as.
    #[arg(long, short = 'u', default_value = "admin")]
    pub user: String,
    /// The password.
    #[arg(long, short = 'p', env = "SKIFF_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// An existing API token instead of a password.
    #[arg(
        long,
        env = "SKIFF_TOKEN",
        hide_env_values = true,
        conflicts_with = "password"
    )]
    pub token: Option<String>,
}

pub fn run(args: LoginArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let token = match (&args.token, &args.password) {
            (Some(token), _) => {
                let client = Client::new(&args.server, Some(token.clone()));
                client.get("/user").await.context("the token was refused")?;
                token.clone()
            }
            (None, Some(password)) => Client::new(&args.server, None)
                .login(&args.user, password)
                .await
                .context("login failed")?,
            (None, None) => bail!("give --password (or SKIFF_PASSWORD) or --token"),
        };
        let path = Credentials {
            server: args.server.trim_end_matches('/').to_string(),
            token,
        }
        .save()?;
        eprintln!(
            "logged in to {}; credentials in {}",
            args.server,
            path.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs a client command on a small runtime.
pub(crate) fn block_on<T>(
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

/// Prints JSON for scripts.
pub(crate) fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// `OWNER/NAME`, checked.
pub(crate) fn slug(text: &str) -> anyhow::Result<&str> {
    match text.split_once('/') {
        Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => Ok(text),
        _ => bail!("`{text}` is not OWNER/NAME"),
    }
}

/// A JSON field as text for tables.
pub(crate) fn field(value: &serde_json::Value, key: &str) -> String {
    match &value[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
