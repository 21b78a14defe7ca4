//! Registry credentials from Docker's `config.json`. Both the runner (a pipeline's
//! `image_pull_secrets` hold such a file) and `skiff lock` (the user's own
//! `~/.docker/config.json`) read this format, so it is parsed in one place.
//!
//! Each `auths` entry gives a user and password either as `auth` (base64 of `user:password`)
//! or as separate `username`/`password` fields. Entries without either (placeholders left by
//! credential helpers) are skipped, as the docker CLI does. Keys may be URLs
//! (`https://index.docker.io/v1/`); they are reduced to a registry host, and Docker Hub's
//! several names all become `docker.io`.

use base64::Engine as _;
use std::collections::BTreeMap;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

/// A user and password for one registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// Registry host, normalised (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    pub username: String,
    pub password: String,
}

/// Why a config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a docker config.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("auths.{key}.auth {problem}")]
    BadAuth { key: String, problem: &'static str },
}

#[derive(serde::Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Every usable credential in the JSON text of a docker `config.json`.
pub fn parse(json: &str) -> Result<Vec<RegistryCredentials>, Error> {
    let config: ConfigJson = serde_json::from_str(json)?;
    let mut out = Vec::new();
    for (key, entry) in config.auths {
        let bad = |problem| Error::BadAuth {
            key: key.clone(),
            problem,
        };
        let (username, password) = match (entry.auth, entry.username, entry.password) {
            (Some(encoded), _, _) if !encoded.trim().is_empty() => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| bad("is not base64"))?;
                let text = String::from_utf8(raw).map_err(|_| bad("is not UTF-8"))?;
                let (user, pass) = text
                    .split_once(':')
                    .ok_or_else(|| bad("is not `user:password`"))?;
                (user.to_string(), pass.to_string())
            }
            (_, Some(user), Some(pass)) => (user, pass),
            _ => continue,
        };
        out.push(RegistryCredentials {
            registry: registry_host(&key),
            username,
            password,
        });
    }
    Ok(out)
}

/// The registry host of an `auths` key, which may be a URL (`https://index.docker.io/v1/`).
pub fn registry_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    normalize_registry(host)
}

/// Docker Hub goes by several names; they all mean `docker.io`.
pub fn normalize_registry(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(registry: &str, username: &str, password: &str) -> RegistryCredentials {
        RegistryCredentials {
            registry: registry.into(),
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn reads_auth_field_and_plain_fields() {
        let json = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNzOndvcmQ="},
            "registry.local:5000":{"username":"robot","password":"s3cret"},
            "helper.example":{}}}"#;
        assert_eq!(
            parse(json).expect("valid config"),
            vec![
                creds("docker.io", "user", "pass:word"),
                creds("registry.local:5000", "robot", "s3cret"),
            ]
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(parse("not json"), Err(Error::Json(_))));
        assert!(matches!(
            parse(r#"{"auths":{"a.io":{"auth":"!!"}}}"#),
            Err(Error::BadAuth { .. })
        ));
        // base64 of "nocolon"
        assert!(matches!(
            parse(r#"{"auths":{"a.io":{"auth":"bm9jb2xvbg=="}}}"#),
            Err(Error::BadAuth { .. })
        ));
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("http://host:5000/path"), "host:5000");
        assert_eq!(registry_host("ghcr.io"), "ghcr.io");
    }
}
