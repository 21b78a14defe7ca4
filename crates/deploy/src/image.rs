//! Image references in manifests and the lock file: finding every container image in a
//! manifest set (any object, including pod templates inside CRs and Helm output), parsing
//! references the way Docker does, rewriting them to `name@sha256:…`, and the lock file that
//! records what each reference resolved to so that locking is repeatable and idempotent.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Docker Hub's name in references, and where its API is served.
pub use skiff_dockerconfig::DOCKER_HUB;
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference as written.
    pub original: String,
    /// `registry.example:5000`, or `docker.io`.
    pub registry: String,
    /// `team/app` (`library/nginx` on Docker Hub for `nginx`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// The name as written, without tag and digest.
    name: String,
}

impl ImageRef {
    /// Parse a reference like `nginx`, `nginx:1.25`, `host:5000/a/b:tag`, `a/b@sha256:…`.
    pub fn parse(reference: &str) -> Result<Self> {
        let bad = |message: &str| Error::Image {
            image: reference.to_string(),
            message: message.to_string(),
        };
        let reference_trimmed = reference.trim();
        if reference_trimmed.is_empty() || reference_trimmed.contains(char::is_whitespace) {
            return Err(bad("not a valid image reference"));
        }
        let (rest, digest) = match reference_trimmed.split_once('@') {
            Some((rest, digest)) => {
                let valid = digest.strip_prefix("sha256:").is_some_and(|hex| {
                    hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
                });
                if !valid {
                    return Err(bad("digest must be sha256:<64 hex digits>"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (reference_trimmed, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if name.is_empty() || tag.as_deref() == Some("") {
            return Err(bad("not a valid image reference"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if repository
            .chars()
            .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)))
        {
            return Err(bad(
                "repository names are lowercase letters, digits and . _ - /",
            ));
        }
        Ok(Self {
            original: reference_trimmed.to_string(),
            registry,
            repository,
            tag,
            digest,
            name: name.to_string(),
        })
    }

    /// The host that serves the registry API.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What to ask the registry for: the tag (default `latest`).
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The name as written, pinned to a digest.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name)
    }
}

/// Call `f` on every container `image` field in an object tree: items of `containers`,
/// `initContainers` and `ephemeralContainers` lists, wherever they are nested.
pub fn for_each_image(value: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let is_list = matches!(
                    key.as_str(),
                    "containers" | "initContainers" | "ephemeralContainers"
                );
                if is_list && let Value::Array(items) = child {
                    for item in items.iter_mut() {
                        if let Some(image) = item.get_mut("image").filter(|i| i.is_string()) {
                            f(image);
                        }
                    }
                }
                for_each_image(child, f);
            }
        }
        Value::Array(items) => {
            for item in items {
                for_each_image(item, f);
            }
        }
        _ => {}
    }
}

/// The lock file: what every image reference resolved to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LockFile {
    pub api_version: String,
    pub kind: String,
    /// Reference as written → digest.
    pub images: BTreeMap<String, String>,
}

impl LockFile {
    pub const API_VERSION: &'static str = "skiff.dev/v1";
    pub const KIND: &'static str = "ImageLock";

    pub fn new() -> Self {
        Self {
            api_version: Self::API_VERSION.into(),
            kind: Self::KIND.into(),
            images: BTreeMap::new(),
        }
    }

    /// Read a lock file; a missing file is an empty lock.
    pub fn read(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let lock: Self = serde_saphyr::from_str(&text).map_err(|e| Error::LockFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if lock.kind != Self::KIND {
            return Err(Error::LockFile {
                path: path.to_path_buf(),
                message: format!("kind is {:?}, expected {}", lock.kind, Self::KIND),
            });
        }
        Ok(lock)
    }

    /// Write the lock file (stable order, so unchanged locks are byte-identical).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_saphyr::to_string(self).map_err(|e| Error::LockFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_like_docker() {
        let r = ImageRef::parse("nginx").expect("valid");
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.tag_or_latest()
            ),
            ("docker.io", "library/nginx", "latest")
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = ImageRef::parse("localhost:5000/team/app:v1").expect("valid");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("localhost:5000", "team/app", Some("v1"))
        );
        assert_eq!(r.pinned(D), format!("localhost:5000/team/app@{D}"));
        let r = ImageRef::parse(&format!("ghcr.io/a/b:1@{D}")).expect("valid");
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(
            ImageRef::parse("user/app:2").expect("valid").repository,
            "user/app"
        );
        assert!(ImageRef::parse("Bad/Name").is_err());
        assert!(ImageRef::parse("app@sha256:xyz").is_err());
        assert!(ImageRef::parse("app:").is_err());
    }

    #[test]
    fn finds_images_in_pod_templates_and_custom_resources() {
        let mut obj = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [{"name": "c", "image": "nginx:1"}, {"name": "d"}]}}},
            "other": {"image": "not-a-container"}});
        let mut seen = Vec::new();
        for_each_image(&mut obj, &mut |v| {
            seen.push(v.as_str().unwrap_or_default().to_string())
        });
        seen.sort();
        assert_eq!(seen, vec!["busybox", "nginx:1"]);
    }
}
