//! Secrets at rest: AES-256-GCM under a 32-byte server key kept in `data_dir/secret.key`
//! (mode 0600, created on first start). A sealed value is the random 12-byte nonce followed by
//! the ciphertext and tag, as Drone does (research/rust-stack.md §12). Also the random values
//! and hashes the auth code needs.

use crate::Error;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::path::Path;

pub(crate) struct SecretKey {
    key: LessSafeKey,
}

impl SecretKey {
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        let bad = |reason: String| Error::Key {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = random_bytes(32);
                write_private(path, &bytes).map_err(|e| bad(e.to_string()))?;
                bytes
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        if bytes.len() != 32 {
            return Err(bad(format!("must be 32 bytes, found {}", bytes.len())));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| bad("unusable".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypts `plain`; `context` (e.g. the repository id and name) is bound as associated data
    /// so a sealed value copied to another row does not open.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce_bytes = random_bytes(NONCE_LEN);
        let mut nonce_arr = [0u8; NONCE_LEN];
        nonce_arr.copy_from_slice(&nonce_bytes);
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_arr),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| Error::Internal("cannot encrypt a secret".into()))?;
        let mut out = nonce_bytes;
        out.extend_from_slice(&data);
        Ok(out)
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::Internal("a stored secret is truncated".into()));
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let mut nonce_arr = [0u8; NONCE_LEN];
        nonce_arr.copy_from_slice(nonce);
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_arr),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| {
                Error::Internal("a stored secret does not open with the server key".into())
            })?;
        Ok(plain.to_vec())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    // The system RNG failing is not something a server can work around.
    SystemRandom::new()
        .fill(&mut out)
        .expect("the system random number generator works");
    out
}

/// A random token for people to copy: 32 hex characters per 16 bytes.
pub(crate) fn random_token(bytes: usize) -> String {
    hex::encode(random_bytes(bytes))
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// Checks an HMAC-SHA256 `tag` of `body` under `secret` in constant time.
pub(crate) fn hmac_sha256_valid(secret: &[u8], body: &[u8], tag: &[u8]) -> bool {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::verify(&key, body, tag).is_ok()
}

/// Constant-time equality of two secrets (GitLab's plain token).
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_bound_to_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.key");
        let key = SecretKey::load_or_create(&path).expect("create");
        let sealed = key.seal("repo:1:token", b"hunter2").expect("seal");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open("repo:1:token", &sealed).expect("open"), b"hunter2");
        assert!(key.open("repo:2:token", &sealed).is_err());
        let again = SecretKey::load_or_create(&path).expect("load");
        assert_eq!(
            again.open("repo:1:token", &sealed).expect("open"),
            b"hunter2"
        );
    }
}
