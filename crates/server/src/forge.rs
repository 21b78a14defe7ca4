//! A repository's forge: which one it is (`gitea`, `github`, `gitlab`), its API URL and an API
//! token for commit statuses. The token is sealed with the server key like secrets and never
//! returned. Set by `PUT /api/v1/repos/{o}/{n}/forge`, by the `forge*` fields of
//! `POST /api/v1/repos`, and (kind and URL only, if nothing is set) by the first webhook.

use crate::auth::{self, Authed, Role};
use crate::webhook::Provider;
use crate::{Error, Shared, State};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use skiff_store::{ForgeSettings, Repo};

pub(crate) const GITHUB_API: &str = "https://api.github.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForgeKind {
    Gitea,
    GitHub,
    GitLab,
}

impl ForgeKind {
    pub(crate) fn parse(kind: &str) -> Result<Self, Error> {
        match kind {
            "gitea" => Ok(Self::Gitea),
            "github" => Ok(Self::GitHub),
            "gitlab" => Ok(Self::GitLab),
            other => Err(Error::BadRequest(format!(
                "forge `{other}` is not one of gitea, github, gitlab"
            ))),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Gitea => "gitea",
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
        }
    }

    /// The path the forge's own API lives under, which users may or may not include.
    fn api_suffix(self) -> &'static str {
        match self {
            Self::Gitea => "/api/v1",
            Self::GitHub => "",
            Self::GitLab => "/api/v4",
        }
    }
}

/// The associated data a forge token is sealed with: bound to its repository.
pub(crate) fn token_context(repo_id: i64) -> String {
    format!("forge-token:{repo_id}")
}

/// What a caller may set. `token`: absent keeps the stored one, `""` removes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgeInput {
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// The server URL as stored: `http(s)://host[/path]`, no trailing slash and without the
/// forge's API path (Gitea `/api/v1`, GitLab `/api/v4`), which the reporter adds.
fn normalize_url(kind: ForgeKind, url: Option<&str>) -> Result<String, Error> {
    let url = url.map(str::trim).filter(|u| !u.is_empty());
    let url = match (kind, url) {
        (_, Some(url)) => url,
        (ForgeKind::GitHub, None) => GITHUB_API,
        (kind, None) => {
            return Err(Error::BadRequest(format!(
                "a {} forge needs its URL (`url`, e.g. https://{}.example.com)",
                kind.name(),
                kind.name()
            )));
        }
    };
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Err(Error::BadRequest(format!(
            "forge URL `{url}` must start with http:// or https://"
        )));
    };
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err(Error::BadRequest(format!("forge URL `{url}` has no host")));
    }
    let mut url = url.trim_end_matches('/');
    if !kind.api_suffix().is_empty() {
        url = url.strip_suffix(kind.api_suffix()).unwrap_or(url);
    }
    Ok(url.to_string())
}

/// The `forge`, `forge_url` and `forge_token` fields of `POST /repos`, checked before the
/// repository is created.
pub(crate) fn input_of(
    kind: Option<String>,
    url: Option<String>,
    token: Option<String>,
) -> Result<Option<ForgeInput>, Error> {
    let Some(kind) = kind.filter(|k| !k.is_empty()) else {
        if url.is_some() || token.is_some() {
            return Err(Error::BadRequest(
                "forge_url and forge_token need forge (gitea, github or gitlab)".into(),
            ));
        }
        return Ok(None);
    };
    normalize_url(ForgeKind::parse(&kind)?, url.as_deref())?;
    Ok(Some(ForgeInput { kind, url, token }))
}

/// Validates and stores a repository's forge settings.
pub(crate) async fn apply(
    state: &State,
    repo: &Repo,
    input: &ForgeInput,
) -> Result<ForgeSettings, Error> {
    let kind = ForgeKind::parse(&input.kind)?;
    let url = normalize_url(kind, input.url.as_deref())?;
    let sealed = match input.token.as_deref() {
        None => None,
        Some("") => Some(Vec::new()),
        Some(token) => {
            if token.chars().any(|c| c.is_control() || c == ' ') {
                return Err(Error::BadRequest(
                    "the forge token has spaces or control characters".into(),
                ));
            }
            Some(state.key.seal(&token_context(repo.id), token.as_bytes())?)
        }
    };
    let settings = state
        .store
        .put_forge(repo.id, kind.name(), &url, sealed.as_deref())
        .await?;
    tracing::info!(repo = %repo.slug(), forge = %settings.kind, url = %settings.api_url,
        token = settings.has_token(), "forge settings");
    Ok(settings)
}

/// The settings as the API shows them: never the token, only whether there is one.
pub(crate) fn settings_json(settings: Option<&ForgeSettings>) -> Value {
    match settings {
        Some(s) => json!({
            "kind": s.kind,
            "url": s.api_url,
            "token_set": s.has_token(),
            "reports_statuses": s.has_token(),
            "since": s.since,
        }),
        None => json!({ "kind": null, "url": null, "token_set": false, "reports_statuses": false }),
    }
}

/// `GET /api/v1/repos/{o}/{n}/forge`.
pub(crate) async fn get_settings(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Read).await?;
    let settings = state.store.forge(repo.id).await?;
    Ok(Json(settings_json(settings.as_ref())))
}

/// `PUT /api/v1/repos/{o}/{n}/forge {kind, url?, token?}`.
pub(crate) async fn put_settings(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
    Json(input): Json<ForgeInput>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    let settings = apply(&state, &repo, &input).await?;
    Ok(Json(settings_json(Some(&settings))))
}

/// `DELETE /api/v1/repos/{o}/{n}/forge`: no more statuses for this repository.
pub(crate) async fn delete_settings(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    if state.store.delete_forge(repo.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!(
            "repository {owner}/{name} has no forge settings"
        )))
    }
}

/// Records the forge an authenticated webhook came from, with its URL when the payload names
/// it, if the repository has no forge settings yet. Never fails the webhook.
pub(crate) async fn note_from_webhook(
    state: &State,
    repo: &Repo,
    provider: Provider,
    payload: &Value,
) {
    let (kind, url) = match provider {
        Provider::Gitea => (
            ForgeKind::Gitea,
            server_of(payload, "/repository/html_url", &repo.slug()),
        ),
        Provider::GitHub => (ForgeKind::GitHub, github_api_of(payload)),
        Provider::GitLab => (
            ForgeKind::GitLab,
            server_of(
                payload,
                "/project/web_url",
                payload
                    .pointer("/project/path_with_namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
        ),
    };
    let Some(url) = url.and_then(|u| normalize_url(kind, Some(&u)).ok()) else {
        return;
    };
    match state
        .store
        .note_forge_kind(repo.id, kind.name(), &url)
        .await
    {
        Ok(true) => {
            tracing::info!(repo = %repo.slug(), forge = kind.name(), %url, "forge noted from a webhook")
        }
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, "cannot note the forge of a webhook"),
    }
}

/// `https://host/owner/name` → `https://host`.
fn server_of(payload: &Value, pointer: &str, path: &str) -> Option<String> {
    let web = payload.pointer(pointer)?.as_str()?.trim_end_matches('/');
    let base = web.strip_suffix(path)?.trim_end_matches('/');
    (!base.is_empty()).then(|| base.to_string())
}

/// GitHub's `repository.url` is the API URL of the repository (`…/repos/owner/name`; GitHub
/// Enterprise: `https://host/api/v3/repos/owner/name`).
fn github_api_of(payload: &Value) -> Option<String> {
    let url = payload.pointer("/repository/url")?.as_str()?;
    match url.find("/repos/") {
        Some(i) => Some(url[..i].to_string()),
        None => Some(GITHUB_API.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_per_forge() {
        let gitea = normalize_url(ForgeKind::Gitea, Some("https://git.example.com/api/v1/"));
        assert_eq!(gitea.ok().as_deref(), Some("https://git.example.com"));
        let gitlab = normalize_url(ForgeKind::GitLab, Some("http://gl.local:8080/gitlab"));
        assert_eq!(gitlab.ok().as_deref(), Some("http://gl.local:8080/gitlab"));
        let github = normalize_url(ForgeKind::GitHub, None);
        assert_eq!(github.ok().as_deref(), Some(GITHUB_API));
        assert!(normalize_url(ForgeKind::Gitea, None).is_err());
        assert!(normalize_url(ForgeKind::GitLab, Some("ftp://x")).is_err());
        assert!(normalize_url(ForgeKind::GitLab, Some("https:///x")).is_err());
    }

    #[test]
    fn webhook_payloads_name_the_server() {
        let gitea = json!({"repository": {"html_url": "http://gitea.local:3000/acme/app"}});
        assert_eq!(
            server_of(&gitea, "/repository/html_url", "acme/app").as_deref(),
            Some("http://gitea.local:3000")
        );
        let ghe = json!({"repository": {"url": "https://ghe.local/api/v3/repos/acme/app"}});
        assert_eq!(
            github_api_of(&ghe).as_deref(),
            Some("https://ghe.local/api/v3")
        );
    }
}
