//! Forge webhooks at `POST /hook/gitea`, `/hook/github`, `/hook/gitlab`, in each provider's own
//! payload format. The repository is found by its full name in the payload, then the request
//! is authenticated with that repository's secret: Gitea and GitHub sign the body with
//! HMAC-SHA256 (`X-Gitea-Signature` hex, `X-Hub-Signature-256: sha256=hex`), GitLab sends the
//! secret itself (`X-Gitlab-Token`). Push, tag and pull/merge request events become builds; the
//! provider's delivery id makes a redelivered webhook a no-op.

use crate::builds::{self, Event, Outcome, ZERO_SHA};
use crate::{Error, Shared, crypto};
use axum::Json;
use axum::body::Bytes as Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    Gitea,
    GitHub,
    GitLab,
}

pub(crate) async fn gitea(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Error> {
    receive(state, Provider::Gitea, headers, body).await
}

pub(crate) async fn github(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Error> {
    receive(state, Provider::GitHub, headers, body).await
}

pub(crate) async fn gitlab(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Error> {
    receive(state, Provider::GitLab, headers, body).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

async fn receive(
    state: Shared,
    provider: Provider,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Error> {
    let kind_header = match provider {
        Provider::Gitea => "X-Gitea-Event",
        Provider::GitHub => "X-GitHub-Event",
        Provider::GitLab => "X-Gitlab-Event",
    };
    let kind = header(&headers, kind_header)
        .or_else(|| {
            (provider == Provider::Gitea)
                .then(|| header(&headers, "X-Gogs-Event"))
                .flatten()
        })
        .ok_or_else(|| Error::BadRequest(format!("missing the {kind_header} header")))?
        .to_string();
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("the payload is not valid JSON: {e}")))?;
    let slug = match provider {
        Provider::GitLab => text(&payload, "/project/path_with_namespace"),
        _ => text(&payload, "/repository/full_name"),
    };
    let (owner, name) = slug
        .split_once('/')
        .ok_or_else(|| Error::BadRequest("the payload names no repository".into()))?;
    // PostgreSQL cannot compare text with a NUL character; no repository name has one.
    if slug.contains('\0') {
        return Err(Error::NotFound(format!(
            "repository {slug} is not added to Skiff"
        )));
    }
    let repo = state
        .store
        .repo(owner, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("repository {slug} is not added to Skiff")))?;
    verify(provider, &headers, &body, &repo.webhook_secret)?;
    crate::forge::note_from_webhook(&state, &repo, provider, &payload).await;

    if !repo.active {
        return Ok(ignored("the repository is not active"));
    }
    let event = match parse(provider, &kind, &payload)? {
        Parsed::Build(event) => *event,
        Parsed::Ignore(reason) => return Ok(ignored(&reason)),
    };
    if let Some(reason) = crate::gates::ignored_event(&repo, &event) {
        return Ok(ignored(reason));
    }
    let delivery = match provider {
        Provider::Gitea => header(&headers, "X-Gitea-Delivery"),
        Provider::GitHub => header(&headers, "X-GitHub-Delivery"),
        Provider::GitLab => {
            header(&headers, "X-Gitlab-Event-UUID").or_else(|| header(&headers, "Idempotency-Key"))
        }
    }
    .map(String::from)
    // Without a delivery id, the same body twice is the same delivery.
    .unwrap_or_else(|| format!("body:{}", crypto::sha256_hex(&body)));
    tracing::info!(repo = %slug, event = %event.event, sha = %event.sha, delivery = %delivery, "webhook");
    match builds::create(&state, &repo, event, Some(delivery)).await? {
        Outcome::Created(build) => Ok((
            StatusCode::CREATED,
            Json(json!({ "status": "created", "build": build })),
        )),
        Outcome::Duplicate => Ok((
            StatusCode::OK,
            Json(json!({ "status": "duplicate", "reason": "this delivery already made a build" })),
        )),
        Outcome::Skipped(reason) => Ok(ignored(&reason)),
    }
}

fn ignored(reason: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::OK,
        Json(json!({ "status": "ignored", "reason": reason })),
    )
}

/// Checks the request came from the forge that knows the repository's secret.
fn verify(provider: Provider, headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), Error> {
    if secret.is_empty() {
        return Err(Error::Unauthorized(
            "the repository has no webhook secret; set one to receive webhooks".into(),
        ));
    }
    match provider {
        Provider::GitLab => {
            let token = header(headers, "X-Gitlab-Token")
                .ok_or_else(|| Error::Unauthorized("missing the X-Gitlab-Token header".into()))?;
            if crypto::same_secret(token, secret) {
                Ok(())
            } else {
                Err(Error::Unauthorized(
                    "X-Gitlab-Token does not match the repository's secret".into(),
                ))
            }
        }
        Provider::Gitea | Provider::GitHub => {
            let (name, hex_sig) = match (
                provider,
                header(headers, "X-Gitea-Signature"),
                header(headers, "X-Hub-Signature-256"),
            ) {
                (Provider::Gitea, Some(sig), _) => ("X-Gitea-Signature", sig),
                (_, _, Some(sig)) => (
                    "X-Hub-Signature-256",
                    sig.strip_prefix("sha256=").ok_or_else(|| {
                        Error::Unauthorized("X-Hub-Signature-256 must start with sha256=".into())
                    })?,
                ),
                (Provider::Gitea, None, None) => {
                    return Err(Error::Unauthorized(
                        "missing the X-Gitea-Signature header: unsigned webhooks are refused"
                            .into(),
                    ));
                }
                _ => {
                    return Err(Error::Unauthorized(
                        "missing the X-Hub-Signature-256 header: unsigned webhooks are refused"
                            .into(),
                    ));
                }
            };
            let tag = hex::decode(hex_sig)
                .map_err(|_| Error::Unauthorized(format!("{name} is not hexadecimal")))?;
            if crypto::hmac_sha256_valid(secret.as_bytes(), body, &tag) {
                Ok(())
            } else {
                Err(Error::Unauthorized(format!(
                    "{name} does not match the payload signed with the repository's secret"
                )))
            }
        }
    }
}

enum Parsed {
    Build(Box<Event>),
    Ignore(String),
}

fn parse(provider: Provider, kind: &str, p: &Value) -> Result<Parsed, Error> {
    match (provider, kind) {
        (Provider::Gitea | Provider::GitHub, "push") => Ok(push(p, "/after", "/head_commit")),
        (Provider::Gitea | Provider::GitHub, "pull_request") => Ok(pull_request(provider, p)),
        (Provider::GitHub, "ping") => Ok(Parsed::Ignore("ping".into())),
        (Provider::GitLab, "Push Hook" | "Tag Push Hook") => Ok(gitlab_push(p)),
        (Provider::GitLab, "Merge Request Hook") => Ok(gitlab_merge_request(p)),
        (_, other) => Ok(Parsed::Ignore(format!(
            "event `{other}` does not start builds"
        ))),
    }
}

/// Gitea and GitHub pushes; a push of `refs/tags/*` is a tag event.
fn push(p: &Value, after: &str, head: &str) -> Parsed {
    let git_ref = text(p, "/ref");
    let sha = text(p, after);
    if git_ref.is_empty() || sha.is_empty() {
        return Parsed::Ignore("the push names no ref or commit".into());
    }
    if sha == ZERO_SHA || p.pointer("/deleted").and_then(Value::as_bool) == Some(true) {
        return Parsed::Ignore("a deleted ref".into());
    }
    let (event, branch) = match git_ref.strip_prefix("refs/tags/") {
        Some(_) => ("tag", String::new()),
        None => (
            "push",
            git_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(&git_ref)
                .to_string(),
        ),
    };
    let author = {
        let name = text(p, &format!("{head}/author/username"));
        if name.is_empty() {
            text(p, &format!("{head}/author/name"))
        } else {
            name
        }
    };
    Parsed::Build(Box::new(Event {
        event: event.into(),
        action: String::new(),
        git_ref: git_ref.clone(),
        branch: branch.clone(),
        target_branch: branch,
        sha,
        before: text(p, "/before"),
        message: text(p, &format!("{head}/message")),
        author,
        author_email: text(p, &format!("{head}/author/email")),
        fork: false,
        ..Default::default()
    }))
}

fn pull_request(provider: Provider, p: &Value) -> Parsed {
    let action = text(p, "/action");
    let action = match (provider, action.as_str()) {
        (_, "opened" | "reopened") => action,
        (Provider::Gitea, "synchronized") | (Provider::GitHub, "synchronize") => {
            "synchronized".to_string()
        }
        (_, other) => return Parsed::Ignore(format!("pull request action `{other}`")),
    };
    let number = p.pointer("/number").and_then(Value::as_i64).unwrap_or(0);
    let head_repo = text(p, "/pull_request/head/repo/full_name");
    let base_repo = text(p, "/pull_request/base/repo/full_name");
    let sha = text(p, "/pull_request/head/sha");
    if sha.is_empty() || number == 0 {
        return Parsed::Ignore("the pull request names no commit".into());
    }
    Parsed::Build(Box::new(Event {
        event: "pull_request".into(),
        action,
        git_ref: format!("refs/pull/{number}/head"),
        branch: text(p, "/pull_request/head/ref"),
        target_branch: text(p, "/pull_request/base/ref"),
        sha,
        before: String::new(),
        message: text(p, "/pull_request/title"),
        author: text(p, "/pull_request/user/login"),
        author_email: String::new(),
        fork: !head_repo.is_empty() && head_repo != base_repo,
        ..Default::default()
    }))
}

fn gitlab_push(p: &Value) -> Parsed {
    let sha = {
        let checkout = text(p, "/checkout_sha");
        if checkout.is_empty() {
            text(p, "/after")
        } else {
            checkout
        }
    };
    let git_ref = text(p, "/ref");
    if sha.is_empty() || sha == ZERO_SHA || git_ref.is_empty() {
        return Parsed::Ignore("a deleted ref".into());
    }
    let (event, branch) = match git_ref.strip_prefix("refs/tags/") {
        Some(_) => ("tag", String::new()),
        None => (
            "push",
            git_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(&git_ref)
                .to_string(),
        ),
    };
    // The head commit is the one whose id is the pushed sha.
    let head = p
        .pointer("/commits")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(sha.as_str()))
        })
        .cloned()
        .unwrap_or(Value::Null);
    Parsed::Build(Box::new(Event {
        event: event.into(),
        action: String::new(),
        git_ref: git_ref.clone(),
        branch: branch.clone(),
        target_branch: branch,
        sha,
        before: text(p, "/before"),
        message: text(&head, "/message"),
        author: text(p, "/user_username"),
        author_email: text(p, "/user_email"),
        fork: false,
        ..Default::default()
    }))
}

fn gitlab_merge_request(p: &Value) -> Parsed {
    let action = text(p, "/object_attributes/action");
    let action = match action.as_str() {
        "open" => "opened",
        "reopen" => "reopened",
        "update" => "synchronized",
        other => return Parsed::Ignore(format!("merge request action `{other}`")),
    };
    let iid = p
        .pointer("/object_attributes/iid")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let sha = text(p, "/object_attributes/last_commit/id");
    if sha.is_empty() || iid == 0 {
        return Parsed::Ignore("the merge request names no commit".into());
    }
    let source = p
        .pointer("/object_attributes/source_project_id")
        .and_then(Value::as_i64);
    let target = p
        .pointer("/object_attributes/target_project_id")
        .and_then(Value::as_i64);
    Parsed::Build(Box::new(Event {
        event: "pull_request".into(),
        action: action.into(),
        git_ref: format!("refs/merge-requests/{iid}/head"),
        branch: text(p, "/object_attributes/source_branch"),
        target_branch: text(p, "/object_attributes/target_branch"),
        sha,
        before: String::new(),
        message: text(p, "/object_attributes/title"),
        author: text(p, "/user/username"),
        author_email: text(p, "/object_attributes/last_commit/author/email"),
        fork: source.is_some() && source != target,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_tag_push_is_a_tag_event() {
        let p = json!({"ref": "refs/tags/v1.0.0", "before": ZERO_SHA, "after": "abc123",
            "head_commit": {"id": "abc123", "message": "release", "author": {"name": "A", "email": "a@x", "username": "a"}},
            "repository": {"full_name": "acme/app"}});
        let Parsed::Build(ev) = parse(Provider::GitHub, "push", &p).expect("parse") else {
            panic!("expected a build");
        };
        assert_eq!(ev.event, "tag");
        assert_eq!(ev.git_ref, "refs/tags/v1.0.0");
        assert_eq!(ev.author, "a");
    }

    #[test]
    fn deleted_branch_is_ignored() {
        let p =
            json!({"ref": "refs/heads/x", "after": ZERO_SHA, "repository": {"full_name": "a/b"}});
        assert!(matches!(
            parse(Provider::Gitea, "push", &p),
            Ok(Parsed::Ignore(_))
        ));
    }

    #[test]
    fn github_fork_pull_request() {
        let p = json!({"action": "synchronize", "number": 7, "pull_request": {"title": "fix",
            "user": {"login": "bob"},
            "head": {"ref": "fix", "sha": "def", "repo": {"full_name": "bob/app"}},
            "base": {"ref": "main", "repo": {"full_name": "acme/app"}}}});
        let Parsed::Build(ev) = parse(Provider::GitHub, "pull_request", &p).expect("parse") else {
            panic!("expected a build");
        };
        assert_eq!(ev.git_ref, "refs/pull/7/head");
        assert_eq!(ev.action, "synchronized");
        assert_eq!(ev.target_branch, "main");
        assert!(ev.fork);
    }

    #[test]
    fn gitlab_merge_request_update() {
        let p = json!({"object_kind": "merge_request", "user": {"username": "eve"},
            "object_attributes": {"iid": 3, "action": "update", "source_branch": "f", "target_branch": "main",
              "title": "t", "source_project_id": 1, "target_project_id": 1,
              "last_commit": {"id": "123", "author": {"email": "e@x"}}}});
        let Parsed::Build(ev) = parse(Provider::GitLab, "Merge Request Hook", &p).expect("parse")
        else {
            panic!("expected a build");
        };
        assert_eq!(ev.git_ref, "refs/merge-requests/3/head");
        assert!(!ev.fork);
    }
}
