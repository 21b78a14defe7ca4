//! Registry credentials for image pulls, read from `image_pull_secrets`: each named secret
//! holds a docker `config.json` whose `auths` map gives a registry's user and password,
//! either as `auth` (base64 of `user:password`) or as separate fields, as Drone accepts.

use crate::RunnerError;
use crate::backend::RegistryAuth;
use base64::Engine as _;
use std::collections::BTreeMap;

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

/// The credentials in one docker `config.json` (the value of the secret `name`).
pub fn parse_docker_config(name: &str, json: &str) -> Result<Vec<RegistryAuth>, RunnerError> {
    let bad = |message: String| RunnerError::PullSecret {
        name: name.to_string(),
        message,
    };
    let config: ConfigJson =
        serde_json::from_str(json).map_err(|e| bad(format!("not a docker config.json: {e}")))?;
    let mut out = Vec::new();
    for (key, entry) in config.auths {
        let registry = registry_host(&key);
        let (username, password) = match (&entry.auth, entry.username, entry.password) {
            (Some(encoded), _, _) if !encoded.is_empty() => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| bad(format!("auths.{key}.auth is not base64: {e}")))?;
                let text = String::from_utf8(raw)
                    .map_err(|_| bad(format!("auths.{key}.auth is not UTF-8")))?;
                match text.split_once(':') {
                    Some((user, pass)) => (user.to_string(), pass.to_string()),
                    None => return Err(bad(format!("auths.{key}.auth is not `user:password`"))),
                }
            }
            (_, Some(user), Some(pass)) => (user, pass),
            _ => return Err(bad(format!("auths.{key} has no credentials"))),
        };
        out.push(RegistryAuth {
            registry,
            username,
            password,
        });
    }
    Ok(out)
}

/// The registry host of an `auths` key, which may be a URL (`https://index.docker.io/v1/`).
fn registry_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    normalize_registry(host)
}

/// Docker Hub goes by several names; they all mean `docker.io`.
fn normalize_registry(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        other => other.to_string(),
    }
}

/// The registry an image reference is pulled from (`docker.io` for short names).
pub fn image_registry(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            normalize_registry(first)
        }
        _ => "docker.io".to_string(),
    }
}

/// The credentials to use for `image`, if any.
pub fn auth_for<'a>(auths: &'a [RegistryAuth], image: &str) -> Option<&'a RegistryAuth> {
    let registry = image_registry(image);
    auths.iter().find(|a| a.registry == registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auth_field_and_plain_fields() {
        let json = r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNzOndvcmQ="},
            "registry.local:5000":{"username":"robot","password":"s3cret"}}}"#;
        let auths = parse_docker_config("dockerconfig", json).expect("valid config");
        assert_eq!(
            auths,
            vec![
                RegistryAuth {
                    registry: "docker.io".into(),
                    username: "user".into(),
                    password: "pass:word".into()
                },
                RegistryAuth {
                    registry: "registry.local:5000".into(),
                    username: "robot".into(),
                    password: "s3cret".into()
                },
            ]
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_docker_config("x", "not json").is_err());
        assert!(parse_docker_config("x", r#"{"auths":{"a.io":{"auth":"!!"}}}"#).is_err());
        assert!(parse_docker_config("x", r#"{"auths":{"a.io":{}}}"#).is_err());
    }

    #[test]
    fn finds_registry_of_image() {
        assert_eq!(image_registry("golang:1.22"), "docker.io");
        assert_eq!(image_registry("library/golang"), "docker.io");
        assert_eq!(image_registry("ghcr.io/o/i:1"), "ghcr.io");
        assert_eq!(image_registry("localhost/i"), "localhost");
        assert_eq!(image_registry("127.0.0.1:5000/i"), "127.0.0.1:5000");
    }
}
