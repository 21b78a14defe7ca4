//! People and credentials: argon2 password hashes, the first-run admin, API tokens (stored as
//! SHA-256 hashes), and the extractor that authenticates an API request by
//! `Authorization: Bearer TOKEN` or HTTP basic auth.

use crate::{Error, Shared, crypto};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use skiff_store::{Store, User};

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
    if verify_password(password.to_string(), found.password_hash.clone()).await {
        Ok(found)
    } else {
        Err(denied())
    }
}

/// Whether `user` is an admin whose password, or one of whose API tokens, is `secret`.
pub(crate) async fn verify_admin(store: &Store, user: &str, secret: &str) -> bool {
    if let Ok(Some(found)) = store
        .user_by_token_hash(&crypto::sha256_hex(secret.as_bytes()))
        .await
        && found.login == user
    {
        return found.admin;
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

/// An authenticated API caller.
pub(crate) struct Authed(pub User);

impl FromRequestParts<Shared> for Authed {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Error> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Unauthorized("authentication required".into()))?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            let hash = crypto::sha256_hex(token.trim().as_bytes());
            return match state.store.user_by_token_hash(&hash).await? {
                Some(user) => Ok(Authed(user)),
                None => Err(Error::Unauthorized("unknown token".into())),
            };
        }
        if let Some(encoded) = header.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Error::Unauthorized("malformed basic credentials".into()))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| Error::Unauthorized("malformed basic credentials".into()))?;
            return login(&state.store, user, password).await.map(Authed);
        }
        Err(Error::Unauthorized(
            "unsupported Authorization scheme (use Bearer or Basic)".into(),
        ))
    }
}
