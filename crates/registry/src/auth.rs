//! Docker registry token authentication (distribution's `docs/spec/auth/token.md`).
//!
//! A client that is refused gets `401` with `WWW-Authenticate: Bearer realm=...,service=...,
//! scope=repository:<name>:<actions>`; it asks the token endpoint (`/auth/token`, GET with
//! Basic credentials, or POST with the OAuth2 password grant as containerd does) for a token,
//! which carries the granted `access` list and is signed with HS256 by a key kept in the data
//! directory. Every registry request states the (repository, action) it needs and is checked
//! against that list; a cross-repository mount also needs `pull` on the source.
//!
//! Who may do what is decided by [`Policy`]: today the `admin` account (password from
//! `SKIFF_ADMIN_PASSWORD`) may do everything and anonymous users may pull repositories marked
//! public. Projects, users and robot accounts plug in here later as further [`Principal`]s.
//! Without an admin password the registry is open (a local development registry).

use crate::api::AppState;
use crate::error::{Error, Result};
use crate::reference::RepoName;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How long an issued token is valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(300);
/// The `service` named in challenges and tokens.
pub const SERVICE: &str = "skiff-registry";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
    fn parse(text: &str) -> Option<Self> {
        match text {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// Someone who proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
}

impl Principal {
    fn name(&self) -> &str {
        match self {
            Principal::Admin => "admin",
        }
    }
}

/// Who may do what. Anonymous callers have `principal == None`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Repositories anyone may pull: exact names, `prefix/*`, or `*`.
    pub public: Vec<String>,
}

impl Policy {
    pub fn is_public(&self, repo: &str) -> bool {
        self.public.iter().any(|pattern| {
            pattern == "*"
                || pattern == repo
                || pattern.strip_suffix("/*").is_some_and(|prefix| {
                    repo.strip_prefix(prefix)
                        .is_some_and(|r| r.starts_with('/'))
                })
        })
    }

    pub fn allows(&self, principal: Option<&Principal>, repo: &str, action: Action) -> bool {
        match principal {
            Some(Principal::Admin) => true,
            None => action == Action::Pull && self.is_public(repo),
        }
    }
}

/// Checks the admin's password against a user store kept elsewhere: `skiff server` verifies
/// registry logins against its own accounts instead of a configured password.
pub trait PasswordVerifier: Send + Sync {
    /// Whether `user` is an administrator whose password is `password`.
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;
}

/// Where the admin's credentials are checked.
#[derive(Clone)]
pub enum AdminCredentials {
    /// User `admin` with this password (`SKIFF_ADMIN_PASSWORD`).
    Password(String),
    /// An external user store.
    Verifier(std::sync::Arc<dyn PasswordVerifier>),
}

/// Token-auth settings; `Auth::open()` has none.
#[derive(Clone)]
pub struct TokenConfig {
    pub admin: AdminCredentials,
    pub key: Vec<u8>,
    pub policy: Policy,
    /// Absolute token endpoint URL for challenges; derived from `Host` when `None`.
    pub realm: Option<String>,
}

pub struct Auth {
    token: Option<TokenConfig>,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    access: Vec<Grant>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Compares two secrets without an early exit on the first differing byte.
fn same_secret(a: &str, b: &str) -> bool {
    let mut mac =
        HmacSha256::new_from_slice(b"skiff-password-compare").expect("HMAC takes any key length");
    mac.update(a.as_bytes());
    let expected = mac.finalize().into_bytes();
    let mut mac =
        HmacSha256::new_from_slice(b"skiff-password-compare").expect("HMAC takes any key length");
    mac.update(b.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

impl Auth {
    /// No authentication: every request may do everything (local development).
    pub fn open() -> Self {
        Auth { token: None }
    }

    pub fn with_token(config: TokenConfig) -> Self {
        Auth {
            token: Some(config),
        }
    }

    pub fn is_open(&self) -> bool {
        self.token.is_none()
    }

    /// Automatic content discovery mounts any blob by digest, so it is only allowed when the
    /// caller could read everything anyway (an open registry).
    pub fn allows_anonymous_mount(&self) -> bool {
        self.token.is_none()
    }

    async fn basic(&self, config: &TokenConfig, headers: &HeaderMap) -> Result<Option<Principal>> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return Ok(None);
        };
        let decoded = STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or(Error::Unauthorized { challenge: None })?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or(Error::Unauthorized { challenge: None })?;
        self.login(config, user, password).await.map(Some)
    }

    async fn login(&self, config: &TokenConfig, user: &str, password: &str) -> Result<Principal> {
        let valid = match &config.admin {
            AdminCredentials::Password(admin_password) => {
                user == "admin" && same_secret(password, admin_password)
            }
            AdminCredentials::Verifier(verifier) => verifier.verify(user, password).await,
        };
        if valid {
            Ok(Principal::Admin)
        } else {
            Err(Error::Unauthorized { challenge: None })
        }
    }

    fn challenge(config: &TokenConfig, headers: &HeaderMap, scope: Option<String>) -> Error {
        let realm = config.realm.clone().unwrap_or_else(|| {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            let proto = headers
                .get("X-Forwarded-Proto")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("http");
            format!("{proto}://{host}/auth/token")
        });
        let mut challenge = format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\"");
        if let Some(scope) = scope {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        Error::Unauthorized {
            challenge: Some(challenge),
        }
    }

    fn verify_token(config: &TokenConfig, token: &str) -> Option<Vec<Grant>> {
        let (signed, signature) = token.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = HmacSha256::new_from_slice(&config.key).ok()?;
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let (header, claims) = signed.split_once('.')?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
        let t = now();
        (claims.aud == SERVICE && claims.exp > t && claims.nbf <= t + 60).then_some(claims.access)
    }

    fn sign(config: &TokenConfig, subject: &str, access: Vec<Grant>) -> Result<String> {
        let t = now();
        let claims = Claims {
            iss: "skiff".into(),
            sub: subject.into(),
            aud: SERVICE.into(),
            exp: t + TOKEN_TTL.as_secs(),
            nbf: t.saturating_sub(10),
            iat: t,
            access,
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::to_vec(&claims).map_err(|e| Error::Internal(e.to_string()))?;
        let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
        let mut mac =
            HmacSha256::new_from_slice(&config.key).map_err(|e| Error::Internal(e.to_string()))?;
        mac.update(signed.as_bytes());
        Ok(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    }

    /// Checks that the request may do `need` (`None`: just be authenticated, for `/v2/`).
    pub async fn check(
        &self,
        headers: &HeaderMap,
        need: Option<(&RepoName, Action)>,
    ) -> Result<()> {
        let Some(config) = &self.token else {
            return Ok(());
        };
        let scope = need.map(|(repo, action)| {
            let actions = match action {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            };
            format!("repository:{repo}:{actions}")
        });
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) {
            let Some(access) = Self::verify_token(config, token.trim()) else {
                return Err(Self::challenge(config, headers, scope));
            };
            let Some((repo, action)) = need else {
                return Ok(());
            };
            let granted = access.iter().any(|g| {
                g.kind == "repository"
                    && g.name == repo.as_str()
                    && g.actions.iter().any(|a| a == action.name() || a == "*")
            });
            return if granted {
                Ok(())
            } else {
                Err(Self::challenge(config, headers, scope))
            };
        }
        let principal = match self.basic(config, headers).await {
            Ok(principal) => principal,
            Err(_) => return Err(Self::challenge(config, headers, scope)),
        };
        match (need, &principal) {
            (None, Some(_)) => Ok(()),
            (Some((repo, action)), _)
                if config
                    .policy
                    .allows(principal.as_ref(), repo.as_str(), action) =>
            {
                Ok(())
            }
            _ => Err(Self::challenge(config, headers, scope)),
        }
    }

    /// `_catalog` lists every repository: admin only (`registry:catalog:*`).
    pub async fn check_catalog(&self, headers: &HeaderMap) -> Result<()> {
        let Some(config) = &self.token else {
            return Ok(());
        };
        let scope = Some("registry:catalog:*".to_string());
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) {
            let ok = Self::verify_token(config, token.trim()).is_some_and(|access| {
                access
                    .iter()
                    .any(|g| g.kind == "registry" && g.name == "catalog")
            });
            return if ok {
                Ok(())
            } else {
                Err(Self::challenge(config, headers, scope))
            };
        }
        match self.basic(config, headers).await {
            Ok(Some(Principal::Admin)) => Ok(()),
            _ => Err(Self::challenge(config, headers, scope)),
        }
    }

    /// Grants the subset of the requested scopes that `principal` is allowed.
    fn grant(config: &TokenConfig, principal: Option<&Principal>, scopes: &[String]) -> Vec<Grant> {
        let mut out = Vec::new();
        for scope in scopes {
            for one in scope.split(' ') {
                let Some((kind, rest)) = one.split_once(':') else {
                    continue;
                };
                let Some((name, actions)) = rest.rsplit_once(':') else {
                    continue;
                };
                match kind {
                    "repository" => {
                        if RepoName::parse(name).is_err() {
                            continue;
                        }
                        let mut allowed: Vec<String> = actions
                            .split(',')
                            .filter_map(|a| {
                                if a == "*" {
                                    return (principal == Some(&Principal::Admin))
                                        .then(|| "*".to_string());
                                }
                                let action = Action::parse(a)?;
                                config
                                    .policy
                                    .allows(principal, name, action)
                                    .then(|| a.to_string())
                            })
                            .collect();
                        allowed.dedup();
                        out.push(Grant {
                            kind: kind.into(),
                            name: name.into(),
                            actions: allowed,
                        });
                    }
                    "registry" if name == "catalog" && principal == Some(&Principal::Admin) => {
                        out.push(Grant {
                            kind: kind.into(),
                            name: name.into(),
                            actions: vec!["*".into()],
                        });
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// `GET|POST /auth/token`: trades credentials (or none) for a signed token.
pub async fn token_endpoint(State(state): State<AppState>, request: Request) -> Response {
    match issue(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn issue(state: &AppState, request: Request) -> Result<Response> {
    let auth = &state.auth;
    let Some(config) = &auth.token else {
        // An open registry still answers, so clients that always ask for a token work.
        let body = serde_json::json!({"token": "open", "access_token": "open", "expires_in": TOKEN_TTL.as_secs()});
        return Ok(axum::Json(body).into_response());
    };
    let headers = request.headers().clone();
    let mut params: Vec<(String, String)> = request
        .uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let mut principal = auth.basic(config, &headers).await?;
    if request.method() == axum::http::Method::POST {
        let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
            .await
            .map_err(|e| Error::Body(e.to_string()))?;
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        let get = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match get("grant_type").as_deref() {
            Some("password") => {
                let user = get("username").unwrap_or_default();
                let password = get("password").unwrap_or_default();
                principal = Some(auth.login(config, &user, &password).await?);
            }
            Some("refresh_token") => {
                return Err(Error::Unsupported {
                    reason: "refresh tokens are not issued".into(),
                });
            }
            _ => {}
        }
        params.extend(form);
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let access = Auth::grant(config, principal.as_ref(), &scopes);
    let subject = principal
        .as_ref()
        .map(Principal::name)
        .unwrap_or("anonymous");
    let token = Auth::sign(config, subject, access)?;
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": TOKEN_TTL.as_secs(),
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TokenConfig {
        TokenConfig {
            admin: AdminCredentials::Password("secret".into()),
            key: vec![7; 32],
            policy: Policy {
                public: vec!["pub/*".into(), "open".into()],
            },
            realm: None,
        }
    }

    #[test]
    fn policy_table() {
        let policy = config().policy;
        let admin = Some(&Principal::Admin);
        for action in [Action::Pull, Action::Push, Action::Delete] {
            assert!(policy.allows(admin, "private/x", action));
            assert!(!policy.allows(None, "private/x", action));
        }
        assert!(policy.allows(None, "pub/x", Action::Pull));
        assert!(policy.allows(None, "open", Action::Pull));
        assert!(!policy.allows(None, "open/x", Action::Pull));
        assert!(!policy.allows(None, "pubx", Action::Pull));
        assert!(!policy.allows(None, "pub/x", Action::Push));
    }

    #[test]
    fn tokens_carry_only_granted_actions_and_are_tamper_proof() {
        let config = config();
        let scopes = vec![
            "repository:pub/a:pull,push".to_string(),
            "repository:priv:pull".to_string(),
        ];
        let access = Auth::grant(&config, None, &scopes);
        assert_eq!(access[0].actions, ["pull"]);
        assert!(access[1].actions.is_empty());
        let token = Auth::sign(&config, "anonymous", access.clone()).expect("sign");
        assert_eq!(Auth::verify_token(&config, &token), Some(access));
        let mut other = config.clone();
        other.key = vec![8; 32];
        assert!(Auth::verify_token(&other, &token).is_none());
        let forged = format!("{}x", token);
        assert!(Auth::verify_token(&config, &forged).is_none());
    }
}
