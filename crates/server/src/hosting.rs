//! Repositories Skiff hosts itself: a bare repository per hosted repository under
//! `data_dir/repos/OWNER/NAME.git`, served to `git` over its smart HTTP protocol at
//! `/OWNER/NAME.git` (Gitea's and GitHub's URL shape) by git's own `git http-backend` run as a
//! CGI program, so every protocol detail (v0/v2, gzip bodies, shallow fetches) is git's.
//!
//! Reading needs read access on the repository (anonymous for public ones) and pushing needs
//! write access; credentials are HTTP basic (a password or an API token as the password), asked
//! for with a `401` and `WWW-Authenticate: Basic` the way git expects. A push updates refs under
//! a per-repository lock; the refs before and after are compared and every updated branch
//! becomes a `push` build and every new tag a `tag` build, as a forge's webhook would.

use crate::auth::{self, Role};
use crate::builds::{self, Event, Outcome, ZERO_SHA};
use crate::git::run;
use crate::{Error, Shared, State};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State as AxState};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use futures::TryStreamExt;
use skiff_store::{Repo, User};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The basic-auth user a runner clones a hosted repository as; the password is
/// `STAGE_ID.LEASE_TOKEN` of a stage of that repository it holds. Read access only, and only
/// while the lease lasts.
const LEASE_USER: &str = "skiff-stage-lease";

/// The `Authorization` header a runner holding `stage_id`'s lease clones with.
pub(crate) fn lease_auth_header(stage_id: i64, lease_token: &str) -> String {
    use base64::Engine;
    let credentials = format!("{LEASE_USER}:{stage_id}.{lease_token}");
    format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// The lease a request presents as `LEASE_USER` basic credentials, if it does.
fn presented_lease(parts: &Parts) -> Option<(i64, String)> {
    let header = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (user, password) = auth::decode_basic(header.strip_prefix("Basic ")?)?;
    if user != LEASE_USER {
        return None;
    }
    let (id, token) = password.split_once('.')?;
    Some((id.parse().ok()?, token.to_string()))
}

/// Whether `stage_id` is a stage of `repo` that is running under `token` right now.
async fn lease_reads(
    state: &State,
    repo: &Repo,
    stage_id: i64,
    token: &str,
) -> Result<bool, Error> {
    let Some(stage) = state.store.stage(stage_id).await? else {
        return Ok(false);
    };
    if stage.lease_token.is_empty()
        || !crate::crypto::same_secret(&stage.lease_token, token)
        || skiff_store::status::is_done(&stage.status)
    {
        return Ok(false);
    }
    let build = state.store.build_by_id(stage.build_id).await?;
    Ok(build.is_some_and(|b| b.repo_id == repo.id))
}

/// Where hosted repositories live, and one push at a time per repository (the ref comparison
/// that turns a push into builds must not see another push's updates).
pub(crate) struct Hosting {
    root: PathBuf,
    creating: tokio::sync::Mutex<()>,
    pushes: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl Hosting {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            creating: tokio::sync::Mutex::new(()),
            pushes: Mutex::new(HashMap::new()),
        }
    }

    /// The bare repository of `owner/name` (names are checked by `api::valid_name` first).
    pub fn path(&self, owner: &str, name: &str) -> PathBuf {
        bare_repo_path(&self.root, owner, name)
    }

    fn push_lock(&self, repo_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.pushes.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(repo_id).or_default().clone()
    }
}

/// Where under `root` the bare repository of hosted `owner/name` is (also the mirror
/// `git::Git` reads it as).
pub(crate) fn bare_repo_path(root: &FsPath, owner: &str, name: &str) -> PathBuf {
    root.join(owner).join(format!("{name}.git"))
}

/// `/OWNER/NAME.git/info/refs`, `…/git-upload-pack`, `…/git-receive-pack`.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/{owner}/{repo}/info/refs", get(info_refs))
        .route("/{owner}/{repo}/git-upload-pack", post(upload_pack))
        .route("/{owner}/{repo}/git-receive-pack", post(receive_pack))
}

/// Makes the bare repository for a new hosted repository and returns its clone URL. A
/// directory left by an add that never reached the database is replaced.
pub(crate) async fn create(
    state: &State,
    owner: &str,
    name: &str,
    default_branch: &str,
) -> Result<String, Error> {
    check_branch_name(default_branch).await?;
    let _guard = state.hosting.creating.lock().await;
    if state.store.repo(owner, name).await?.is_some() {
        return Err(Error::Conflict(format!(
            "repository {owner}/{name} already exists"
        )));
    }
    let path = state.hosting.path(owner, name);
    let parent = path
        .parent()
        .ok_or_else(|| Error::Internal("a hosted repository has no parent directory".into()))?;
    std::fs::create_dir_all(parent).map_err(Error::Io)?;
    let tmp = parent.join(format!(".{name}.git.new"));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&path);
    run(
        "init",
        Command::new("git")
            .args(["init", "--bare", "--quiet"])
            .arg(format!("--initial-branch={default_branch}"))
            .arg(&tmp),
    )
    .await?;
    // Access is checked here before git runs, so git itself may always accept pushes.
    run(
        "config",
        Command::new("git")
            .arg("--git-dir")
            .arg(&tmp)
            .args(["config", "http.receivepack", "true"]),
    )
    .await?;
    std::fs::rename(&tmp, &path).map_err(Error::Io)?;
    Ok(clone_url(&state.config.public_url, owner, name))
}

/// 400 unless `branch` is a name git accepts for a branch.
pub(crate) async fn check_branch_name(branch: &str) -> Result<(), Error> {
    let checked = Command::new("git")
        .args(["check-ref-format", "--branch", branch])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(Error::Io)?;
    if !checked.status.success() || branch.starts_with('-') {
        return Err(Error::BadRequest(format!(
            "`{branch}` is not a valid branch name"
        )));
    }
    Ok(())
}

/// Points a hosted repository's HEAD at its new default branch, so clones check it out.
pub(crate) async fn set_default_branch(
    state: &State,
    repo: &Repo,
    branch: &str,
) -> Result<(), Error> {
    let dir = state.hosting.path(&repo.owner, &repo.name);
    run(
        "symbolic-ref",
        Command::new("git").arg("--git-dir").arg(&dir).args([
            "symbolic-ref",
            "HEAD",
            &format!("refs/heads/{branch}"),
        ]),
    )
    .await?;
    Ok(())
}

/// Removes the bare repository made for an add the database then refused, unless a hosted
/// repository of that name exists after all (a concurrent add that won).
pub(crate) async fn remove_new(state: &State, owner: &str, name: &str) {
    let _guard = state.hosting.creating.lock().await;
    if let Ok(Some(repo)) = state.store.repo(owner, name).await
        && repo.hosted
    {
        return;
    }
    let _ = std::fs::remove_dir_all(state.hosting.path(owner, name));
}

pub(crate) fn clone_url(public_url: &str, owner: &str, name: &str) -> String {
    format!("{}/{owner}/{name}.git", public_url.trim_end_matches('/'))
}

async fn info_refs(
    AxState(state): AxState<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, Error> {
    let service = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("service="))
        .unwrap_or_default();
    let needed = match service {
        "git-upload-pack" => Role::Read,
        "git-receive-pack" => Role::Write,
        _ => {
            return Err(Error::BadRequest(
                "only git's smart HTTP protocol is served (info/refs?service=git-upload-pack or \
                 git-receive-pack)"
                    .into(),
            ));
        }
    };
    let (parts, body) = request.into_parts();
    let found = find(&state, &owner, &repo, &parts, needed).await?;
    Ok(serve(&state, &found, "info/refs", parts, body).await?.1)
}

async fn upload_pack(
    AxState(state): AxState<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    request: Request,
) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let found = find(&state, &owner, &repo, &parts, Role::Read).await?;
    Ok(serve(&state, &found, "git-upload-pack", parts, body)
        .await?
        .1)
}

/// A push: refs before, git's receive-pack, refs after, a build for each updated ref.
async fn receive_pack(
    AxState(state): AxState<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    request: Request,
) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let found = find(&state, &owner, &repo, &parts, Role::Write).await?;
    let lock = state.hosting.push_lock(found.id);
    let _guard = lock.lock().await;
    let dir = state.hosting.path(&found.owner, &found.name);
    let before = refs(&dir).await?;
    let (ok, response) = serve(&state, &found, "git-receive-pack", parts, body).await?;
    if !ok {
        return Ok(response);
    }
    let after = refs(&dir).await?;
    for (git_ref, new) in &after {
        let old = before.get(git_ref).map_or(ZERO_SHA, String::as_str);
        if old != new {
            build_for(&state, &found, &dir, git_ref, old, new).await;
        }
    }
    Ok(response)
}

/// Makes the build a ref update asks for; a failure is logged, the push has happened anyway.
async fn build_for(state: &State, repo: &Repo, dir: &FsPath, git_ref: &str, old: &str, new: &str) {
    let event = match event_for(dir, git_ref, old, new).await {
        Ok(Some(event)) => event,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(repo = %repo.slug(), git_ref, "cannot read the push: {e}");
            return;
        }
    };
    match builds::create(state, repo, event, None).await {
        Ok(Outcome::Created(build)) => {
            tracing::info!(repo = %repo.slug(), git_ref, number = build.number, "push made a build")
        }
        Ok(Outcome::Skipped(why)) => {
            tracing::info!(repo = %repo.slug(), git_ref, "no build: {why}")
        }
        Ok(Outcome::Duplicate) => {}
        Err(e) => tracing::warn!(repo = %repo.slug(), git_ref, "cannot make a build: {e}"),
    }
}

/// The event a ref update is, as Drone names them: branches are pushes, new tags are tags;
/// other refs (notes, a tag moved) make no build.
async fn event_for(
    dir: &FsPath,
    git_ref: &str,
    old: &str,
    new: &str,
) -> Result<Option<Event>, Error> {
    let (event, branch) = if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
        ("push", branch.to_string())
    } else if git_ref.starts_with("refs/tags/") && old == ZERO_SHA {
        ("tag", String::new())
    } else {
        return Ok(None);
    };
    let out = run(
        "log",
        Command::new("git").arg("--git-dir").arg(dir).args([
            "log",
            "-1",
            "--format=%an%x00%ae%x00%B",
            new,
            "--",
        ]),
    )
    .await?;
    let mut fields = out.splitn(3, '\0');
    let author = fields.next().unwrap_or_default().to_string();
    let author_email = fields.next().unwrap_or_default().to_string();
    let message = fields.next().unwrap_or_default().trim_end().to_string();
    Ok(Some(Event {
        event: event.into(),
        git_ref: git_ref.into(),
        branch,
        sha: new.into(),
        before: old.into(),
        message,
        author,
        author_email,
        ..Default::default()
    }))
}

/// Every ref of a bare repository and the object it points at.
async fn refs(dir: &FsPath) -> Result<BTreeMap<String, String>, Error> {
    let out = run(
        "for-each-ref",
        Command::new("git")
            .arg("--git-dir")
            .arg(dir)
            .args(["for-each-ref", "--format=%(refname) %(objectname)"]),
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, sha)| (name.to_string(), sha.to_string()))
        .collect())
}

/// The hosted repository behind a git URL path (`NAME.git` or `NAME`), if the caller may use
/// it so.
async fn find(
    state: &State,
    owner: &str,
    repo: &str,
    parts: &Parts,
    needed: Role,
) -> Result<Repo, Error> {
    let name = repo.strip_suffix(".git").unwrap_or(repo);
    if let Some((stage_id, token)) = presented_lease(parts) {
        let denied =
            || Error::Unauthorized("no running stage of this repository holds that lease".into());
        if needed != Role::Read || !crate::api::valid_name(owner) || !crate::api::valid_name(name) {
            return Err(denied());
        }
        let found = state.store.repo(owner, name).await?.ok_or_else(denied)?;
        if !found.hosted || !lease_reads(state, &found, stage_id, &token).await? {
            return Err(denied());
        }
        return Ok(found);
    }
    let caller: Option<User> = auth::identify(parts, state).await?.map(|i| i.user);
    let repo = auth::repo_as(state, owner, name, caller.as_ref(), needed)
        .await
        .map_err(|e| match (&e, &caller) {
            // Anonymous git clients send credentials only after a challenge, so a repository
            // they may not see answers them 401 (with the challenge) rather than the API's 404.
            (Error::NotFound(_), None) => Error::Unauthorized("authentication required".into()),
            _ => e,
        })?;
    if !repo.hosted {
        return Err(Error::NotFound(format!(
            "{} is not hosted by Skiff (it is cloned from {})",
            repo.slug(),
            repo.git_url
        )));
    }
    Ok(repo)
}

/// Runs `git http-backend` for one request whose access was checked. Returns whether git
/// answered 200 (and, for a push, exited cleanly) and its response; upload-pack output (a
/// clone's pack) is streamed, the rest is small and read whole.
async fn serve(
    state: &State,
    repo: &Repo,
    service_path: &str,
    parts: Parts,
    body: Body,
) -> Result<(bool, Response), Error> {
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &state.hosting.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env(
            "PATH_INFO",
            format!("/{}/{}.git/{service_path}", repo.owner, repo.name),
        )
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header_text("content-type"))
        .env("HTTP_CONTENT_ENCODING", header_text("content-encoding"))
        .env("GIT_PROTOCOL", header_text("git-protocol"))
        .env("REMOTE_USER", "skiff")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let length = header_text("content-length");
    if !length.is_empty() {
        command.env("CONTENT_LENGTH", length);
    }
    let mut child = command.spawn().map_err(|e| Error::Git {
        action: "http-backend".into(),
        reason: format!("cannot run git: {e}"),
    })?;
    feed_stdin(&mut child, body);
    log_stderr(&mut child, repo.slug());
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Internal("git http-backend has no stdout".into()))?;
    let mut stdout = BufReader::new(stdout);
    let (status, headers) = read_cgi_headers(&mut stdout).await?;
    let (ok, body) = if service_path == "git-upload-pack" {
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let stream = tokio_util::io::ReaderStream::new(stdout);
        (status == StatusCode::OK, Body::from_stream(stream))
    } else {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).await.map_err(Error::Io)?;
        let exit = child.wait().await.map_err(Error::Io)?;
        (
            status == StatusCode::OK && exit.success(),
            Body::from(bytes),
        )
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok((ok, response))
}

/// Copies the request body into git's stdin, then closes it (git reads to the end).
fn feed_stdin(child: &mut Child, body: Body) {
    let Some(mut stdin) = child.stdin.take() else {
        return;
    };
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Ok(Some(chunk)) = stream.try_next().await {
            if stdin.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = stdin.shutdown().await;
    });
}

fn log_stderr(child: &mut Child, slug: String) {
    let Some(stderr) = child.stderr.take() else {
        return;
    };
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::warn!(repo = %slug, "git http-backend: {line}");
        }
    });
}

/// The CGI response header block: `Status:` (200 when absent) and the HTTP headers.
async fn read_cgi_headers<R: tokio::io::AsyncBufRead + Unpin>(
    out: &mut R,
) -> Result<(StatusCode, HeaderMap), Error> {
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).await.map_err(Error::Io)? == 0 {
            return Err(Error::Git {
                action: "http-backend".into(),
                reason: "git ended before sending its response headers".into(),
            });
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok((status, headers));
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().unwrap_or_default();
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        } else if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
}
