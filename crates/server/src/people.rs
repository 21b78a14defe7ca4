//! People and permissions over `/api/v1`: login (API token or browser session), logout, local
//! accounts (site admins manage them; everyone changes their own password), API tokens,
//! repository members, organisation secrets and per-runner tokens. The permission rules
//! themselves live in `auth.rs` ([`crate::auth::require`]).

use crate::auth::{self, Authed, Role, Via};
use crate::{Error, Shared, crypto};
use axum::extract::{FromRequest, Path, Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use skiff_store::{User, UserChanges};

/// How long a browser session lasts.
const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// The shortest password the server accepts.
const MIN_PASSWORD_LEN: usize = 8;

/// Routes under `/api/v1` (merged into the API router by `api.rs`).
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/session", get(session))
        .route("/user", patch(change_own_password))
        .route("/user/tokens", get(list_tokens).post(create_token))
        .route("/user/tokens/{id}", delete(revoke_token))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{login}", patch(update_user).delete(delete_user))
        .route(
            "/repos/{owner}/{name}/members",
            get(list_members).post(put_member),
        )
        .route(
            "/repos/{owner}/{name}/members/{login}",
            delete(delete_member),
        )
        .route(
            "/orgs/{org}/secrets",
            get(list_org_secrets).post(put_org_secret),
        )
        .route("/orgs/{org}/secrets/{secret}", delete(delete_org_secret))
        .route("/runners", get(list_runners).post(create_runner))
        .route("/runners/{runner}", delete(delete_runner))
}

// ---- login, sessions, logout ----

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
    /// Start a browser session (cookie) instead of making an API token.
    #[serde(default)]
    session: bool,
}

/// `POST /login`: with JSON `{username, password}` a new API token (`{token, user}`); with
/// `"session": true`, or as an HTML form post, a browser session: an HttpOnly, SameSite=Lax
/// `skiff_session` cookie and `{user, csrf_token, expires}`.
async fn login(AxState(state): AxState<Shared>, request: Request) -> Result<Response, Error> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let req = if is_form {
        same_origin(request.headers())?;
        let Form(mut req) = Form::<LoginRequest>::from_request(request, &())
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?;
        req.session = true;
        req
    } else {
        Json::<LoginRequest>::from_request(request, &())
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?
            .0
    };
    let user = auth::login(&state.store, &req.username, &req.password).await?;
    if !req.session {
        let token = auth::issue_token(&state.store, &user, "cli").await?;
        return Ok(Json(json!({ "token": token, "user": user })).into_response());
    }
    let now = skiff_store::now_ms();
    state.store.delete_expired_sessions(now).await?;
    let value = crypto::random_token(32);
    let csrf_token = crypto::random_token(16);
    let expires = now + SESSION_TTL_MS;
    state
        .store
        .create_session(
            user.id,
            &crypto::sha256_hex(value.as_bytes()),
            &csrf_token,
            expires,
        )
        .await?;
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        auth::SESSION_COOKIE,
        SESSION_TTL_MS / 1000
    );
    let mut response =
        Json(json!({ "user": user, "csrf_token": csrf_token, "expires": expires })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| Error::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// Refuses a form post sent by another site's page (login CSRF: logging the victim's browser
/// into the attacker's account). Browsers send `Origin` with form posts; without one (curl,
/// old clients) the post is let through.
fn same_origin(headers: &axum::http::HeaderMap) -> Result<(), Error> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "a login form posted from {origin} is refused (not this server's origin)"
        )))
    }
}

/// `POST /logout`: ends the browser session (or, called with a bearer token, revokes that
/// token) and clears the cookie.
async fn logout(
    AxState(state): AxState<Shared>,
    request: axum::http::request::Parts,
) -> Result<Response, Error> {
    match auth::identify(&request, &state).await? {
        Some(identity) => match identity.via {
            Via::Session { hash, .. } => {
                state.store.delete_session(&hash).await?;
            }
            Via::Token(hash) => {
                state.store.delete_token_by_hash(&hash).await?;
            }
            Via::Basic => {}
        },
        None => return Err(Error::Unauthorized("not logged in".into())),
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
            auth::SESSION_COOKIE
        ))
        .map_err(|e| Error::Internal(e.to_string()))?,
    );
    Ok(response)
}

/// `GET /session`: the session's user and CSRF token, for a page loaded after login.
async fn session(
    AxState(state): AxState<Shared>,
    request: axum::http::request::Parts,
) -> Result<Json<Value>, Error> {
    match auth::identify(&request, &state).await? {
        Some(auth::Identity {
            user,
            via: Via::Session { csrf_token, .. },
        }) => Ok(Json(json!({ "user": user, "csrf_token": csrf_token }))),
        _ => Err(Error::Unauthorized("no browser session".into())),
    }
}

// ---- accounts ----

fn check_password(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::BadRequest(format!(
            "a password has at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// Checks a login, organisation, secret or runner name; `what` names it in the error.
fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if crate::api::valid_name(name) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{what} `{name}` is not letters, digits, '-', '_' and '.'"
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeOwnPassword {
    current_password: String,
    password: String,
}

/// `PATCH /user {current_password, password}`: anyone changes their own password.
async fn change_own_password(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Json(req): Json<ChangeOwnPassword>,
) -> Result<StatusCode, Error> {
    if !auth::verify_password(req.current_password, user.password_hash.clone()).await {
        return Err(Error::Forbidden("the current password is wrong".into()));
    }
    check_password(&req.password)?;
    let changes = UserChanges {
        password_hash: Some(auth::hash_password(req.password).await?),
        ..Default::default()
    };
    state.store.update_user(&user.login, &changes).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_users(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
) -> Result<Json<Vec<User>>, Error> {
    auth::require_site_admin(&user)?;
    Ok(Json(state.store.users().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    login: String,
    /// Absent: a random one, answered once as `password`.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    admin: bool,
}

async fn create_user(
    AxState(state): AxState<Shared>,
    Authed(caller): Authed,
    Json(req): Json<CreateUser>,
) -> Result<(StatusCode, Json<Value>), Error> {
    auth::require_site_admin(&caller)?;
    check_name("login", &req.login)?;
    let (password, generated) = match req.password {
        Some(p) => {
            check_password(&p)?;
            (p, false)
        }
        None => (crypto::random_token(12), true),
    };
    let hash = auth::hash_password(password.clone()).await?;
    let user = state
        .store
        .create_user(&req.login, &hash, req.admin)
        .await?;
    tracing::info!(user = %user.login, admin = user.admin, by = %caller.login, "created a user");
    let mut body = json!(user);
    if generated {
        body["password"] = json!(password);
    }
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    admin: Option<bool>,
    #[serde(default)]
    active: Option<bool>,
}

/// Refuses a change that would leave the server with no active site admin.
async fn keep_an_admin(state: &Shared, target: &User, stays_admin: bool) -> Result<(), Error> {
    if target.admin
        && target.active
        && !stays_admin
        && state.store.count_other_active_admins(target.id).await? == 0
    {
        return Err(Error::Conflict(format!(
            "{} is the last active site admin",
            target.login
        )));
    }
    Ok(())
}

async fn update_user(
    AxState(state): AxState<Shared>,
    Authed(caller): Authed,
    Path(login): Path<String>,
    Json(req): Json<UpdateUser>,
) -> Result<Json<User>, Error> {
    auth::require_site_admin(&caller)?;
    let target = state
        .store
        .user_by_login(&login)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user `{login}` not found")))?;
    let stays_admin = req.admin.unwrap_or(target.admin) && req.active.unwrap_or(target.active);
    keep_an_admin(&state, &target, stays_admin).await?;
    let password_hash = match req.password {
        Some(p) => {
            check_password(&p)?;
            Some(auth::hash_password(p).await?)
        }
        None => None,
    };
    let changes = UserChanges {
        password_hash,
        admin: req.admin,
        active: req.active,
    };
    let user = state
        .store
        .update_user(&login, &changes)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user `{login}` not found")))?;
    Ok(Json(user))
}

async fn delete_user(
    AxState(state): AxState<Shared>,
    Authed(caller): Authed,
    Path(login): Path<String>,
) -> Result<StatusCode, Error> {
    auth::require_site_admin(&caller)?;
    if login == caller.login {
        return Err(Error::BadRequest("you cannot delete yourself".into()));
    }
    let target = state
        .store
        .user_by_login(&login)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user `{login}` not found")))?;
    keep_an_admin(&state, &target, false).await?;
    state.store.delete_user(&login).await?;
    tracing::info!(user = %login, by = %caller.login, "deleted a user");
    Ok(StatusCode::NO_CONTENT)
}

// ---- API tokens ----

async fn list_tokens(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
) -> Result<Json<Value>, Error> {
    Ok(Json(json!(state.store.tokens_of(user.id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
}

/// A new API token of the caller: its value is in this answer only.
async fn create_token(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Json(req): Json<CreateToken>,
) -> Result<(StatusCode, Json<Value>), Error> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::BadRequest(
            "a token name has 1 to 100 characters".into(),
        ));
    }
    let token = format!("skf_{}", crypto::random_token(20));
    let info = state
        .store
        .add_token(user.id, &crypto::sha256_hex(token.as_bytes()), name)
        .await?;
    let mut body = json!(info);
    body["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(body)))
}

async fn revoke_token(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path(id): Path<i64>,
) -> Result<StatusCode, Error> {
    if state.store.delete_token(user.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!("you have no token {id}")))
    }
}

// ---- repository members ----

/// The owner (role `admin`, `"owner": true`) and the members of a repository.
async fn list_members(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    let mut out = Vec::new();
    if let Some(owner) = state.store.repo_owner(repo.id).await? {
        out.push(json!({ "login": owner.login, "role": "admin", "owner": true }));
    }
    for member in state.store.members(repo.id).await? {
        let mut value = json!(member);
        value["owner"] = json!(false);
        out.push(value);
    }
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutMember {
    login: String,
    /// `read`, `write` or `admin`.
    role: String,
}

/// Adds a member or changes their role.
async fn put_member(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
    Json(req): Json<PutMember>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    let role = Role::parse(&req.role)
        .ok_or_else(|| Error::BadRequest("role is read, write or admin".into()))?;
    let member = state
        .store
        .user_by_login(&req.login)
        .await?
        .ok_or_else(|| Error::BadRequest(format!("there is no user `{}`", req.login)))?;
    state
        .store
        .put_member(repo.id, member.id, role.as_str())
        .await?;
    Ok(Json(
        json!({ "login": member.login, "role": role.as_str() }),
    ))
}

async fn delete_member(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name, login)): Path<(String, String, String)>,
) -> Result<StatusCode, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    let removed = match state.store.user_by_login(&login).await? {
        Some(member) => state.store.delete_member(repo.id, member.id).await?,
        None => false,
    };
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!(
            "`{login}` is not a member of {}",
            repo.slug()
        )))
    }
}

// ---- organisation secrets ----

/// Associated data of an organisation secret: a sealed value copied to another row does not open.
pub(crate) fn org_secret_context(org: &str, name: &str) -> String {
    format!("org:{org}:{name}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutSecret {
    name: String,
    value: String,
    #[serde(default)]
    pull_request: bool,
}

async fn put_org_secret(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path(org): Path<String>,
    Json(req): Json<PutSecret>,
) -> Result<StatusCode, Error> {
    auth::require_site_admin(&user)?;
    check_name("organisation", &org)?;
    check_name("secret name", &req.name)?;
    let sealed = state
        .key
        .seal(&org_secret_context(&org, &req.name), req.value.as_bytes())?;
    state
        .store
        .put_org_secret(&org, &req.name, &sealed, req.pull_request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_org_secrets(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path(org): Path<String>,
) -> Result<Json<Value>, Error> {
    auth::require_site_admin(&user)?;
    let names: Vec<Value> = state
        .store
        .org_secrets(&org)
        .await?
        .into_iter()
        .map(|s| json!({ "name": s.name, "pull_request": s.pull_request }))
        .collect();
    Ok(Json(json!(names)))
}

async fn delete_org_secret(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((org, secret)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    auth::require_site_admin(&user)?;
    if state.store.delete_org_secret(&org, &secret).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!(
            "organisation secret `{org}/{secret}` not found"
        )))
    }
}

// ---- runner tokens ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRunner {
    name: String,
}

/// Registers a remote runner; its token is in this answer only (the server keeps its SHA-256).
async fn create_runner(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Json(req): Json<CreateRunner>,
) -> Result<(StatusCode, Json<Value>), Error> {
    auth::require_site_admin(&user)?;
    check_name("runner name", &req.name)?;
    let token = format!("skr_{}", crypto::random_token(20));
    let runner = state
        .store
        .create_runner(&req.name, &crypto::sha256_hex(token.as_bytes()))
        .await?;
    let mut body = json!(runner);
    body["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(body)))
}

async fn list_runners(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
) -> Result<Json<Value>, Error> {
    auth::require_site_admin(&user)?;
    Ok(Json(json!(state.store.runners().await?)))
}

async fn delete_runner(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path(runner): Path<String>,
) -> Result<StatusCode, Error> {
    auth::require_site_admin(&user)?;
    if state.store.delete_runner(&runner).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!("runner `{runner}` not found")))
    }
}
