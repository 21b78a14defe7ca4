//! The `/api/v1` client the CLI uses (`skiff login`, `repo`, `build`, `secret`), and where the
//! CLI keeps its credentials: `$SKIFF_CONFIG_DIR/credentials.json`, else
//! `~/.config/skiff/credentials.json`, written with mode 0600.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

/// What went wrong talking to a Skiff server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not logged in: run `skiff login --server URL --user U --password P` first")]
    NotLoggedIn,
    #[error("cannot reach {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{status} from the server: {reason}")]
    Api { status: u16, reason: String },
    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
    #[error("the event stream from {url} broke: {reason}")]
    Stream { url: String, reason: String },
}

/// One Server-Sent Event: its `event:` name and its `data:`.
#[derive(Debug, Clone)]
pub struct ServerEvent {
    pub event: String,
    pub data: String,
}

/// The server and token the CLI uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    pub token: String,
}

impl Credentials {
    /// `$SKIFF_CONFIG_DIR/credentials.json` or `~/.config/skiff/credentials.json`.
    pub fn path() -> PathBuf {
        let dir = match std::env::var_os("SKIFF_CONFIG_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => match std::env::var_os("XDG_CONFIG_HOME") {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("skiff"),
                _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                    .join(".config")
                    .join("skiff"),
            },
        };
        dir.join("credentials.json")
    }

    pub fn load() -> Result<Self, ClientError> {
        let path = Self::path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotLoggedIn);
            }
            Err(e) => {
                return Err(ClientError::Credentials {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text).map_err(|e| ClientError::Credentials {
            path,
            reason: e.to_string(),
        })
    }

    pub fn save(&self) -> Result<PathBuf, ClientError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::path();
        let fail = |e: std::io::Error| ClientError::Credentials {
            path: path.clone(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        file.write_all(text.as_bytes()).map_err(fail)?;
        Ok(path)
    }
}

/// A client of one server.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Self {
        Self {
            base: server.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// The client for the saved credentials.
    pub fn from_saved() -> Result<Self, ClientError> {
        let creds = Credentials::load()?;
        Ok(Self::new(&creds.server, Some(creds.token)))
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    /// Logs in with a password and returns a new token.
    pub async fn login(&self, user: &str, password: &str) -> Result<String, ClientError> {
        let body = serde_json::json!({ "username": user, "password": password });
        let answer = self
            .send(reqwest::Method::POST, "/login", Some(body))
            .await?;
        answer["token"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| ClientError::Api {
                status: 200,
                reason: "the login answer has no token".into(),
            })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Opens the Server-Sent Events stream at `/api/v1{path}` and yields its events as they
    /// arrive (a non-2xx answer is [`ClientError::Api`]).
    pub async fn events(
        &self,
        path: &str,
    ) -> Result<impl futures::Stream<Item = Result<ServerEvent, ClientError>> + use<>, ClientError>
    {
        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            let reason = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(String::from))
                .unwrap_or(text);
            return Err(ClientError::Api { status, reason });
        }
        Ok(resp.bytes_stream().eventsource().map(move |event| {
            event
                .map(|e| ServerEvent {
                    event: e.event,
                    data: e.data,
                })
                .map_err(|e| ClientError::Stream {
                    url: url.clone(),
                    reason: e.to_string(),
                })
        }))
    }

    /// Calls `/api/v1{path}`; a non-2xx answer becomes [`ClientError::Api`] with its reason.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.map_err(|source| ClientError::Http {
            url: url.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|source| ClientError::Http { url, source })?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let reason = value["error"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| value.to_string());
            Err(ClientError::Api { status, reason })
        }
    }
}
