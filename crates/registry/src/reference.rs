//! Validation of everything a client puts in a URL: repository names, tags and digests.
//! These parsers are the security boundary between request paths and storage keys
//! (CVE-2014-9358 class): a value that passes them contains no `..`, no leading `/`
//! and only the characters the OCI distribution spec allows.

use crate::error::{Error, Result};
use std::fmt;

/// Longest repository name accepted (clients cap host + name at 255 bytes).
pub const MAX_NAME_LEN: usize = 255;

/// A repository name that matches the spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(name: &str) -> Result<Self> {
        let invalid = || Error::NameInvalid {
            name: name.chars().take(300).collect(),
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(invalid());
        }
        if name.split('/').all(valid_component) {
            Ok(RepoName(name.to_string()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One path component: alphanumerics separated by `.`, `_`, `__` or runs of `-`.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or `-+`, always followed by an alphanumeric
        // (guaranteed for the last run by the check on the final byte above).
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).copied().is_some_and(alnum) {
            return false;
        }
    }
    true
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let first = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let rest = |b: u8| first(b) || b == b'.' || b == b'-';
    !bytes.is_empty()
        && bytes.len() <= 128
        && first(bytes[0])
        && bytes[1..].iter().all(|&b| rest(b))
}

/// The digest algorithms the registry computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest `alg:hex` with a supported algorithm and lowercase hex of exact length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::DigestInvalid {
            reason: format!("{reason}: {:?}", text.chars().take(200).collect::<String>()),
        };
        let (alg, hex) = text
            .split_once(':')
            .ok_or_else(|| invalid("no algorithm"))?;
        let algorithm = Algorithm::parse(alg).ok_or_else(|| invalid("unsupported algorithm"))?;
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("malformed hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    pub fn from_parts(algorithm: Algorithm, hex: String) -> Self {
        Digest { algorithm, hex }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Hashes a whole in-memory buffer (manifests only; blobs are hashed while streaming).
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Self {
        let mut hasher = crate::hash::Hasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// What follows `/manifests/`: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(text: &str) -> Result<Self> {
        if text.contains(':') {
            Digest::parse(text).map(Reference::Digest)
        } else if valid_tag(text) {
            Ok(Reference::Tag(text.to_string()))
        } else {
            Err(Error::TagInvalid {
                tag: text.chars().take(200).collect(),
            })
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => f.write_str(tag),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_grammar() {
        for ok in ["a", "library/busybox", "a.b_c__d---e/f0", "x/y/z/w/v/u/t/s"] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "..", "a/../b", "A", "a_", "a___b", "a.-b", "-a", "a/.b",
            "a%2fb", "a b", "a\0b", "é",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags_and_digests() {
        assert!(valid_tag("v1.0_rc-1") && valid_tag("_x") && !valid_tag(".x") && !valid_tag("a+b"));
        assert!(!valid_tag(&"a".repeat(129)));
        let hex = "a".repeat(64);
        assert!(Digest::parse(&format!("sha256:{hex}")).is_ok());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha512:{hex}")).is_err());
        assert!(Digest::parse(&format!("md5:{hex}")).is_err());
        assert!(Digest::parse("sha256:../../etc").is_err());
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        assert!(Reference::parse("sha256:zz").is_err());
    }
}
