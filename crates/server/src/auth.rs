//! People and credentials: argon2 password hashes, the first-run admin, API tokens (stored as
//! SHA-256 hashes), browser sessions, and the extractors that authenticate an API request by
//! `Authorization: Bearer TOKEN`, HTTP basic auth (a password, or an API token as the password)
//! or the `skiff_session` cookie.
//!
//! Permissions on repositories are decided in one place, [`require`] (and [`repo_as`], which
//! finds the repository first): every repository handler calls it with the [`Role`] its action
//! needs. Cookie-authenticated requests that change state must carry the session's CSRF token in
//! `X-Skiff-CSRF`; token and basic auth are not affected (a browser never sends those by itself).

use crate::{Error, Shared, crypto};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use skiff_store::{Repo, Store, User};

pub(crate) async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&crypto::random_bytes(16))
            .map_err(|e| Error::Internal(format!("cannot make a salt: {e}")))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("cannot hash a password: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

pub(crate) async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Creates user `admin` when there are no users: with `password` if given, else with a random
/// one printed once to stderr (never a fixed default).
pub(crate) async fn bootstrap_admin(store: &Store, password: Option<&str>) -> Result<(), Error> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match password {
        Some(p) => (p.to_string(), false),
        None => (crypto::random_token(12), true),
    };
    let hash = hash_password(password.clone()).await?;
    match store.create_user("admin", &hash, true).await {
        Ok(_) => {}
        // Another replica made it first.
        Err(skiff_store::StoreError::Conflict { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if generated {
        eprintln!(
            "skiff: created user `admin` with the one-time password {password}\n\
             skiff: it is shown only now; set SKIFF_ADMIN_PASSWORD to choose it instead"
        );
    }
    tracing::info!(user = "admin", generated, "created the first admin");
    Ok(())
}

/// Checks a login and password.
pub(crate) async fn login(store: &Store, user: &str, password: &str) -> Result<User, Error> {
    let denied = || Error::Unauthorized("wrong user or password".into());
    // No login has a NUL character (and PostgreSQL cannot compare text with one).
    if user.contains('\0') {
        return Err(denied());
    }
    let Some(found) = store.user_by_login(user).await? else {
        return Err(denied());
    };
    if !verify_password(password.to_string(), found.password_hash.clone()).await {
        return Err(denied());
    }
    if !found.active {
        return Err(Error::Unauthorized(format!(
            "the account `{user}` is disabled"
        )));
    }
    Ok(found)
}

/// Whether `user` is an admin whose password, or one of whose API tokens, is `secret`.
pub(crate) async fn verify_admin(store: &Store, user: &str, secret: &str) -> bool {
    if let Ok(Some(found)) = store
        .user_by_token_hash(&crypto::sha256_hex(secret.as_bytes()))
        .await
        && found.login == user
    {
        return found.admin && found.active;
    }
    match login(store, user, secret).await {
        Ok(found) => found.admin,
        Err(_) => false,
    }
}

/// Makes a new API token for `user`; only its hash is stored.
pub(crate) async fn issue_token(store: &Store, user: &User, name: &str) -> Result<String, Error> {
    let token = format!("skf_{}", crypto::random_token(20));
    store
        .create_token(user.id, &crypto::sha256_hex(token.as_bytes()), name)
        .await?;
    Ok(token)
}

/// The cookie that carries a browser session.
pub(crate) const SESSION_COOKIE: &str = "skiff_session";
/// The header a cookie-authenticated request that changes state must carry.
pub(crate) const CSRF_HEADER: &str = "x-skiff-csrf";

/// How a request proved who it is.
pub(crate) enum Via {
    /// `Authorization: Bearer`; the SHA-256 of the token.
    Token(String),
    /// `Authorization: Basic` with a password.
    Basic,
    /// The session cookie; the SHA-256 of its value and the session's CSRF token.
    Session { hash: String, csrf_token: String },
}

/// A caller and how they authenticated.
pub(crate) struct Identity {
    pub user: User,
    pub via: Via,
}

/// The value of cookie `name` in the request, if any.
pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The user and password of basic credentials (the base64 after `Basic `), if well formed.
pub(crate) fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Authenticates a request: the `Authorization` header (Bearer token or basic password) if
/// present, else the session cookie. `Ok(None)` is an anonymous caller; a wrong or malformed
/// `Authorization` header is 401, while an unknown or expired cookie counts as anonymous (a
/// browser keeps stale cookies). A cookie-authenticated request with an unsafe method must
/// carry the session's CSRF token in `X-Skiff-CSRF`, else 403.
pub(crate) async fn identify(
    parts: &Parts,
    state: &crate::State,
) -> Result<Option<Identity>, Error> {
    let disabled =
        |user: &User| Error::Unauthorized(format!("the account `{}` is disabled", user.login));
    if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let header = header
            .to_str()
            .map_err(|_| Error::Unauthorized("malformed Authorization header".into()))?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            let hash = crypto::sha256_hex(token.trim().as_bytes());
            return match state.store.user_by_token_hash(&hash).await? {
                Some(user) if !user.active => Err(disabled(&user)),
                Some(user) => Ok(Some(Identity {
                    user,
                    via: Via::Token(hash),
                })),
                None => Err(Error::Unauthorized("unknown token".into())),
            };
        }
        if let Some(encoded) = header.strip_prefix("Basic ") {
            let (user, password) = decode_basic(encoded)
                .ok_or_else(|| Error::Unauthorized("malformed basic credentials".into()))?;
            let (user, password) = (user.as_str(), password.as_str());
            // An API token works as the password too, as git clients and registries expect.
            let hash = crypto::sha256_hex(password.as_bytes());
            if let Some(found) = state.store.user_by_token_hash(&hash).await?
                && found.login == user
            {
                if !found.active {
                    return Err(disabled(&found));
                }
                return Ok(Some(Identity {
                    user: found,
                    via: Via::Token(hash),
                }));
            }
            let user = login(&state.store, user, password).await?;
            return Ok(Some(Identity {
                user,
                via: Via::Basic,
            }));
        }
        return Err(Error::Unauthorized(
            "unsupported Authorization scheme (use Bearer or Basic)".into(),
        ));
    }
    let Some(value) = cookie(parts, SESSION_COOKIE).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let hash = crypto::sha256_hex(value.as_bytes());
    let Some(session) = state.store.session(&hash, skiff_store::now_ms()).await? else {
        return Ok(None);
    };
    if !session.user.active {
        return Err(disabled(&session.user));
    }
    if !parts.method.is_safe() {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if sent.is_empty() || !crypto::same_secret(sent, &session.csrf_token) {
            return Err(Error::Forbidden(
                "a request authenticated by the session cookie must send the session's CSRF \
                 token in X-Skiff-CSRF"
                    .into(),
            ));
        }
    }
    Ok(Some(Identity {
        user: session.user,
        via: Via::Session {
            hash,
            csrf_token: session.csrf_token,
        },
    }))
}

/// An authenticated API caller (401 for anonymous ones).
pub(crate) struct Authed(pub User);

impl FromRequestParts<Shared> for Authed {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        match identify(parts, state).await? {
            Some(identity) => Ok(Authed(identity.user)),
            None => Err(Error::Unauthorized("authentication required".into())),
        }
    }
}

/// A caller who may be anonymous: for what public repositories show to anyone.
pub(crate) struct Caller(pub Option<User>);

impl FromRequestParts<Shared> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        Ok(Caller(identify(parts, state).await?.map(|i| i.user)))
    }
}

/// What a caller may do on a repository; each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    /// See the repository, its builds and logs, and list cron jobs.
    Read,
    /// Run, cancel, restart, promote/roll back, approve/decline builds; add and remove crons.
    Write,
    /// Change settings, secrets and members.
    Admin,
}

impl Role {
    pub(crate) fn parse(text: &str) -> Option<Role> {
        match text {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// The caller's own role on a repository: every role for a site admin, `admin` for the user who
/// added it, else their member role. Visibility is not a role (see [`require`]).
pub(crate) async fn role_on(
    state: &crate::State,
    repo: &Repo,
    caller: Option<&User>,
) -> Result<Option<Role>, Error> {
    let Some(user) = caller else { return Ok(None) };
    if user.admin {
        return Ok(Some(Role::Admin));
    }
    Ok(state
        .store
        .repo_role(repo.id, user.id)
        .await?
        .as_deref()
        .and_then(Role::parse))
}

/// The one permission check on a repository; every repository handler calls it (or
/// [`repo_as`]) before doing anything.
///
/// - Reading: site admins, the owner and members always; anyone (also anonymous) when the
///   repository is `public`; any logged-in user when it is `internal`.
/// - [`Role::Write`] and [`Role::Admin`] need that member role (the owner and site admins have
///   every role).
///
/// A caller who may not even read the repository gets the same 404 as for a repository that
/// does not exist, so private names do not leak. A reader who lacks the role gets 403 with the
/// reason, or 401 when anonymous.
///
/// ```ignore
/// let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
/// ```
pub(crate) async fn require(
    state: &crate::State,
    repo: &Repo,
    caller: Option<&User>,
    needed: Role,
) -> Result<(), Error> {
    let role = role_on(state, repo, caller).await?;
    let readable = role.is_some()
        || match repo.visibility.as_str() {
            "public" => true,
            "internal" => caller.is_some(),
            _ => false,
        };
    if !readable {
        return Err(not_found(&repo.owner, &repo.name));
    }
    if needed == Role::Read || role.is_some_and(|r| r >= needed) {
        return Ok(());
    }
    match caller {
        None => Err(Error::Unauthorized("authentication required".into())),
        Some(user) => Err(Error::Forbidden(format!(
            "{} needs {} access to {} (has {})",
            user.login,
            needed.as_str(),
            repo.slug(),
            role.map(Role::as_str).unwrap_or("read"),
        ))),
    }
}

/// Finds repository `owner/name` and checks the caller has `needed` on it ([`require`]).
pub(crate) async fn repo_as(
    state: &crate::State,
    owner: &str,
    name: &str,
    caller: Option<&User>,
    needed: Role,
) -> Result<Repo, Error> {
    // A name no repository can have is not looked up (PostgreSQL refuses a NUL in text).
    if !crate::api::valid_name(owner) || !crate::api::valid_name(name) {
        return Err(not_found(owner, name));
    }
    let repo = state
        .store
        .repo(owner, name)
        .await?
        .ok_or_else(|| not_found(owner, name))?;
    require(state, &repo, caller, needed).await?;
    Ok(repo)
}

fn not_found(owner: &str, name: &str) -> Error {
    Error::NotFound(format!("repository {owner}/{name} not found"))
}

/// Site-wide actions (users, organisation secrets, runners, trusted repositories).
pub(crate) fn require_site_admin(user: &User) -> Result<(), Error> {
    if user.admin {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "{} is not a site admin; this needs one",
            user.login
        )))
    }
}

/// A caller of `/rpc/v1`: a runner by its own token (`POST /api/v1/runners`), or, for
/// compatibility with runners set up before per-runner tokens, a site admin's API token.
pub(crate) struct RunnerAuthed;

impl FromRequestParts<Shared> for RunnerAuthed {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(Error::Unauthorized(
                "runners authenticate with `Authorization: Bearer RUNNER_TOKEN`".into(),
            ));
        };
        if let Some(token) = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")) {
            let hash = crypto::sha256_hex(token.trim().as_bytes());
            if let Some(runner) = state.store.runner_by_token_hash(&hash).await? {
                let now = skiff_store::now_ms();
                state.store.touch_runner(runner.id, now, 5_000).await?;
                return Ok(RunnerAuthed);
            }
        }
        match identify(parts, state).await {
            Ok(Some(identity)) if identity.user.admin => Ok(RunnerAuthed),
            Ok(Some(_)) => Err(Error::Forbidden(
                "runners need a runner token (or a site admin's API token)".into(),
            )),
            Ok(None) | Err(Error::Unauthorized(_)) => {
                Err(Error::Unauthorized("unknown runner token".into()))
            }
            Err(other) => Err(other),
        }
    }
}
