//! Resolving an image tag to a digest against any OCI registry, as a registry client would:
//! `HEAD /v2/<repo>/manifests/<tag>`, answering a 401 challenge with Basic credentials or
//! the Docker token flow (anonymous or with credentials), credentials taken from Docker's
//! `config.json` (`DOCKER_CONFIG`, `~/.docker/config.json`, or `REGISTRY_AUTH_FILE`).

use crate::error::{Error, Result};
use crate::image::ImageRef;
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use serde::Deserialize;
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A username and password for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Credentials per registry host, from Docker's config file.
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    by_host: HashMap<String, Credentials>,
}

impl CredentialStore {
    /// Parse the JSON of a Docker config file.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let by_host = skiff_dockerconfig::parse(text)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|c| {
                let credentials = Credentials {
                    username: c.username,
                    password: c.password,
                };
                (c.registry, credentials)
            })
            .collect();
        Ok(Self { by_host })
    }

    /// Load the first config file found: `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`,
    /// `~/.docker/config.json`. None found is an empty store.
    pub fn load() -> Result<Self> {
        let candidates: Vec<PathBuf> = [
            std::env::var_os("REGISTRY_AUTH_FILE").map(PathBuf::from),
            std::env::var_os("DOCKER_CONFIG").map(|d| PathBuf::from(d).join("config.json")),
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
        ]
        .into_iter()
        .flatten()
        .collect();
        for path in candidates {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    return Self::from_json(&text).map_err(|message| Error::LockFile {
                        path: path.clone(),
                        message: format!("registry credentials: {message}"),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::Read { path, source }),
            }
        }
        Ok(Self::default())
    }

    /// Credentials for a registry, if any.
    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        self.by_host
            .get(&skiff_dockerconfig::registry_host(registry))
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut values = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        values.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = next.trim_start_matches([',', ' ']);
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: values.remove("realm")?,
            service: values.remove("service"),
            scope: values.remove("scope"),
        }),
        _ => None,
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Resolves tags to digests.
pub struct Resolver {
    http: reqwest::Client,
    credentials: CredentialStore,
    plain_http: Vec<String>,
}

impl Resolver {
    /// `plain_http`: registries reached over HTTP instead of HTTPS (loopback ones always are).
    pub fn new(credentials: CredentialStore, plain_http: Vec<String>) -> Result<Self> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Image {
                image: String::new(),
                message: format!("HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            credentials,
            plain_http,
        })
    }

    fn scheme(&self, host: &str) -> &'static str {
        let hostname = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
        let loopback = matches!(hostname, "localhost" | "[::1]") || hostname.starts_with("127.");
        if loopback || self.plain_http.iter().any(|h| h == host) {
            "http"
        } else {
            "https"
        }
    }

    /// The digest the registry serves for the reference's tag.
    pub async fn resolve(&self, image: &ImageRef) -> Result<String> {
        let err = |message: String| Error::Image {
            image: image.original.clone(),
            message,
        };
        let host = image.api_host();
        let url = format!(
            "{}://{host}/v2/{}/manifests/{}",
            self.scheme(host),
            image.repository,
            image.tag_or_latest()
        );
        let creds = self.credentials.get(&image.registry);
        let mut auth: Option<String> = None;
        for attempt in 0..2 {
            let mut request = self.http.head(&url).header(ACCEPT, MANIFEST_TYPES);
            if let Some(value) = &auth {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| err(format!("{url}: {e}")))?;
            match response.status() {
                status if status.is_success() => {
                    if let Some(digest) = header(response.headers(), "docker-content-digest") {
                        return Ok(digest);
                    }
                    return self.digest_by_get(&url, auth.as_deref(), &err).await;
                }
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    let challenge = header(response.headers(), WWW_AUTHENTICATE.as_str())
                        .and_then(|h| parse_challenge(&h))
                        .ok_or_else(|| {
                            err("401 without a usable WWW-Authenticate challenge".into())
                        })?;
                    auth = Some(self.authorize(&challenge, image, creds, &err).await?);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let hint = if creds.is_some() {
                        "credentials from the Docker config were refused"
                    } else {
                        "no credentials for this registry in the Docker config (docker login)"
                    };
                    return Err(err(format!(
                        "access denied ({}): {hint}",
                        response.status()
                    )));
                }
                StatusCode::NOT_FOUND => {
                    return Err(err(format!(
                        "tag {} not found in {}",
                        image.tag_or_latest(),
                        image.registry
                    )));
                }
                status => return Err(err(format!("{url}: unexpected status {status}"))),
            }
        }
        Err(err("authorization failed".into()))
    }

    async fn authorize(
        &self,
        challenge: &Challenge,
        image: &ImageRef,
        creds: Option<&Credentials>,
        err: &dyn Fn(String) -> Error,
    ) -> Result<String> {
        match challenge {
            Challenge::Basic => {
                let c = creds.ok_or_else(|| {
                    err("the registry wants a login and the Docker config has none".into())
                })?;
                let pair = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", c.username, c.password));
                Ok(format!("Basic {pair}"))
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope
                    .clone()
                    .unwrap_or_else(|| format!("repository:{}:pull", image.repository));
                let mut url = reqwest::Url::parse(realm)
                    .map_err(|e| err(format!("token realm {realm:?}: {e}")))?;
                url.query_pairs_mut().append_pair("scope", &scope);
                if let Some(service) = service {
                    url.query_pairs_mut().append_pair("service", service);
                }
                let mut request = self.http.get(url);
                if let Some(c) = creds {
                    request = request.basic_auth(&c.username, Some(&c.password));
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| err(format!("token from {realm}: {e}")))?;
                if !response.status().is_success() {
                    return Err(err(format!(
                        "token from {realm}: status {}",
                        response.status()
                    )));
                }
                let body: TokenResponse = response
                    .json()
                    .await
                    .map_err(|e| err(format!("token from {realm}: {e}")))?;
                let token = body
                    .token
                    .or(body.access_token)
                    .ok_or_else(|| err(format!("token from {realm}: no token in the answer")))?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    async fn digest_by_get(
        &self,
        url: &str,
        auth: Option<&str>,
        err: &dyn Fn(String) -> Error,
    ) -> Result<String> {
        let mut request = self.http.get(url).header(ACCEPT, MANIFEST_TYPES);
        if let Some(value) = auth {
            request = request.header(AUTHORIZATION, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| err(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(err(format!("{url}: status {}", response.status())));
        }
        if let Some(digest) = header(response.headers(), "docker-content-digest") {
            return Ok(digest);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| err(format!("{url}: {e}")))?;
        Ok(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&body))
        ))
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn docker_config_credentials() {
        let text = r#"{"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"},
            "reg.example:5000": {"username": "bob", "password": "pw"}, "empty.example": {}}}"#;
        let store = CredentialStore::from_json(text).expect("valid");
        assert_eq!(
            store.get("docker.io").map(|c| c.username.as_str()),
            Some("u")
        );
        assert_eq!(
            store.get("reg.example:5000").map(|c| c.password.as_str()),
            Some("pw")
        );
        assert!(store.get("empty.example").is_none());
        assert!(CredentialStore::from_json(r#"{"auths": {"x": {"auth": "!!"}}}"#).is_err());
    }
}
