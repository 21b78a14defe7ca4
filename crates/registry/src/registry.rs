//! The registry's content model on top of a [`Storage`]: a global content-addressed blob
//! store, per-repository links (which blobs and manifests a repository may serve), tags and
//! referrer descriptors. Every HTTP handler goes through here; nothing here knows HTTP.
//! Immutable manifests and tag lookups are cached in memory, so manifest reads are cheap.

use crate::error::{Error, Result};
use crate::manifest;
use crate::reference::{Algorithm, Digest, Reference, RepoName, valid_tag};
use crate::storage::{ByteStream, Meta, Storage};
use crate::upload::{self, Uploads};
use bytes::Bytes;
use futures::Stream;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Upper bound for `n` on tag and catalog listings (CVE-2023-2253: never trust `n`).
pub const MAX_PAGE: usize = 1000;
/// Cached manifests and tags beyond this many entries are dropped wholesale.
const CACHE_LIMIT: usize = 20_000;

pub fn blob_key(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("blobs/{}/{}/{}", digest.algorithm().name(), &hex[..2], hex)
}
fn repo_key(repo: &RepoName) -> String {
    format!("repos/{repo}/")
}
fn layer_key(repo: &RepoName, digest: &Digest) -> String {
    format!(
        "repos/{repo}/_layers/{}/{}",
        digest.algorithm().name(),
        digest.hex()
    )
}
fn revision_key(repo: &RepoName, digest: &Digest) -> String {
    format!(
        "repos/{repo}/_manifests/revisions/{}/{}",
        digest.algorithm().name(),
        digest.hex()
    )
}
fn tags_prefix(repo: &RepoName) -> String {
    format!("repos/{repo}/_manifests/tags/")
}
fn tag_key(repo: &RepoName, tag: &str) -> String {
    format!("repos/{repo}/_manifests/tags/{tag}")
}
fn referrers_prefix(repo: &RepoName, subject: &Digest) -> String {
    format!(
        "repos/{repo}/_referrers/{}/{}/",
        subject.algorithm().name(),
        subject.hex()
    )
}
fn referrer_key(repo: &RepoName, subject: &Digest, referrer: &Digest) -> String {
    format!(
        "{}{}-{}",
        referrers_prefix(repo, subject),
        referrer.algorithm().name(),
        referrer.hex()
    )
}

/// A manifest as served: its bytes and the media type it was pushed with.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// The result of storing a manifest.
#[derive(Debug)]
pub struct PutManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub tags: Vec<String>,
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<String>,
    /// The `last` value for the next page, when there is one.
    pub next: Option<String>,
}

/// Registry-wide policy knobs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Allow `mount` without `from` (automatic content discovery) to link any existing blob.
    pub anonymous_mount: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            anonymous_mount: true,
        }
    }
}

pub struct Registry {
    storage: Arc<dyn Storage>,
    uploads: Uploads,
    options: Options,
    manifests: RwLock<HashMap<(RepoName, Digest), StoredManifest>>,
    tags: RwLock<HashMap<(RepoName, String), Digest>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn cache_insert<K: std::hash::Hash + Eq, V>(lock: &RwLock<HashMap<K, V>>, key: K, value: V) {
    let mut map = lock.write().unwrap_or_else(|p| p.into_inner());
    if map.len() >= CACHE_LIMIT {
        map.clear();
    }
    map.insert(key, value);
}

fn cache_get<K: std::hash::Hash + Eq, V: Clone>(
    lock: &RwLock<HashMap<K, V>>,
    key: &K,
) -> Option<V> {
    lock.read()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .cloned()
}

fn cache_remove<K: std::hash::Hash + Eq, V>(lock: &RwLock<HashMap<K, V>>, key: &K) {
    lock.write().unwrap_or_else(|p| p.into_inner()).remove(key);
}

impl Registry {
    /// A registry over `storage`, staging uploads in `uploads_dir` (a local directory).
    pub fn new(storage: Arc<dyn Storage>, uploads_dir: PathBuf, options: Options) -> Result<Self> {
        Ok(Registry {
            storage,
            uploads: Uploads::new(uploads_dir)?,
            options,
            manifests: RwLock::new(HashMap::new()),
            tags: RwLock::new(HashMap::new()),
        })
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn uploads(&self) -> &Uploads {
        &self.uploads
    }

    // ---- blobs ----

    /// Size of a blob the repository may serve (a pushed/mounted layer, or a manifest).
    pub async fn blob_stat(&self, repo: &RepoName, digest: &Digest) -> Result<Meta> {
        let linked = self.storage.stat(&layer_key(repo, digest)).await?.is_some()
            || self
                .storage
                .stat(&revision_key(repo, digest))
                .await?
                .is_some();
        if linked && let Some(meta) = self.storage.stat(&blob_key(digest)).await? {
            return Ok(meta);
        }
        Err(Error::BlobUnknown {
            digest: digest.to_string(),
        })
    }

    pub async fn blob_read(
        &self,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream> {
        self.storage.get(&blob_key(digest), range).await
    }

    /// Unlinks a blob from a repository (the content goes at the next GC).
    pub async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        if self.storage.delete(&layer_key(repo, digest)).await? {
            Ok(())
        } else {
            Err(Error::BlobUnknown {
                digest: digest.to_string(),
            })
        }
    }

    async fn link_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        self.storage
            .put(&layer_key(repo, digest), Bytes::new())
            .await?;
        // A fresh mtime tells a concurrent GC this blob was just (re)used.
        self.storage.touch(&blob_key(digest)).await
    }

    /// Cross-repository mount. `from: None` is automatic content discovery. Returns whether
    /// the blob was mounted (otherwise the caller starts a normal upload).
    pub async fn mount(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<bool> {
        let available = match from {
            Some(from) => self.blob_stat(from, digest).await.is_ok(),
            None => {
                self.options.anonymous_mount
                    && self.storage.stat(&blob_key(digest)).await?.is_some()
            }
        };
        if available {
            self.link_blob(repo, digest).await?;
        }
        Ok(available)
    }

    // ---- uploads ----

    /// Streams a body into an upload session and returns the session's new size.
    /// `expected_len` is the body's announced length, if any (used to reserve disk space).
    pub async fn upload_append<S, E>(
        &self,
        repo: &RepoName,
        id: &str,
        body: S,
        expected_start: Option<u64>,
        expected_len: Option<u64>,
    ) -> Result<u64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let session = self.uploads.get(repo, id).await?;
        let mut session = session.lock().await;
        if !tokio::fs::try_exists(session.data_path())
            .await
            .unwrap_or(false)
        {
            // Collected by GC (or removed by hand) since the last request.
            drop(session);
            self.uploads.remove(id).await;
            return Err(Error::UploadUnknown { id: id.to_string() });
        }
        if let Some(start) = expected_start
            && start != session.size
        {
            return Err(Error::RangeNotSatisfiable {
                reason: format!("chunk starts at {start}, upload is at {}", session.size),
                size: session.size,
            });
        }
        let hasher = session.hasher.take();
        let appended =
            upload::append_stream(&session.data_path(), body, hasher, expected_len).await;
        match appended {
            Ok(appended) => {
                session.size += appended.written;
                session.hasher = appended.hasher;
                match appended.interrupted {
                    Some(error) => Err(error),
                    None => Ok(session.size),
                }
            }
            Err(error) => {
                // Unknown how much reached the disk: trust the file, re-hash at commit.
                if let Ok(meta) = tokio::fs::metadata(session.data_path()).await {
                    session.size = meta.len();
                }
                Err(error)
            }
        }
    }

    /// Current size of an upload session.
    pub async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        let session = self.uploads.get(repo, id).await?;
        let size = session.lock().await.size;
        Ok(size)
    }

    /// Verifies an upload against `digest` and commits it as a blob of `repo`. On a mismatch
    /// the upload is discarded and nothing is stored.
    pub async fn upload_commit(&self, repo: &RepoName, id: &str, digest: &Digest) -> Result<()> {
        let session_ref = self.uploads.get(repo, id).await?;
        let mut session = session_ref.lock().await;
        let computed = match session.hasher.take() {
            Some(hasher) if hasher.algorithm() == digest.algorithm() => hasher.finish(),
            _ => upload::hash_file(&session.data_path(), digest.algorithm()).await?,
        };
        if computed != *digest {
            drop(session);
            self.uploads.remove(id).await;
            return Err(Error::DigestInvalid {
                reason: format!("content hashes to {computed}, not {digest}"),
            });
        }
        let key = blob_key(digest);
        if self.storage.stat(&key).await?.is_none() {
            self.storage.put_file(&key, &session.data_path()).await?;
        }
        drop(session);
        self.uploads.remove(id).await;
        self.link_blob(repo, digest).await
    }

    pub async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        self.uploads.get(repo, id).await?;
        self.uploads.remove(id).await;
        Ok(())
    }

    // ---- manifests ----

    async fn resolve_tag(&self, repo: &RepoName, tag: &str) -> Result<Digest> {
        let cache_key = (repo.clone(), tag.to_string());
        if let Some(digest) = cache_get(&self.tags, &cache_key) {
            return Ok(digest);
        }
        let unknown = || Error::ManifestUnknown {
            reference: tag.to_string(),
        };
        let text = self
            .storage
            .read(&tag_key(repo, tag))
            .await?
            .ok_or_else(unknown)?;
        let digest = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| Digest::parse(t.trim()).ok())
            .ok_or_else(unknown)?;
        cache_insert(&self.tags, cache_key, digest.clone());
        Ok(digest)
    }

    /// Fetches a manifest by tag or digest.
    pub async fn manifest_get(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        let digest = match reference {
            Reference::Tag(tag) => self.resolve_tag(repo, tag).await?,
            Reference::Digest(digest) => digest.clone(),
        };
        let cache_key = (repo.clone(), digest.clone());
        if let Some(found) = cache_get(&self.manifests, &cache_key) {
            return Ok(found);
        }
        let unknown = || Error::ManifestUnknown {
            reference: reference.to_string(),
        };
        let media_type = self
            .storage
            .read(&revision_key(repo, &digest))
            .await?
            .ok_or_else(unknown)?;
        let body = self
            .storage
            .read(&blob_key(&digest))
            .await?
            .ok_or_else(unknown)?;
        let found = StoredManifest {
            digest,
            media_type: String::from_utf8_lossy(&media_type).into_owned(),
            body,
        };
        cache_insert(&self.manifests, cache_key, found.clone());
        Ok(found)
    }

    async fn manifest_exists(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        if cache_get(&self.manifests, &(repo.clone(), digest.clone())).is_some() {
            return Ok(true);
        }
        Ok(self
            .storage
            .stat(&revision_key(repo, digest))
            .await?
            .is_some())
    }

    /// Checks and stores a manifest under a tag or digest (plus any extra `tags`).
    pub async fn manifest_put(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: &[String],
    ) -> Result<PutManifest> {
        let parsed = manifest::parse(&body, content_type)?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &body);
                if actual != *expected {
                    return Err(Error::DigestInvalid {
                        reason: format!("manifest hashes to {actual}, not {expected}"),
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::of(Algorithm::Sha256, &body),
        };
        for tag in extra_tags {
            if !valid_tag(tag) {
                return Err(Error::TagInvalid { tag: tag.clone() });
            }
        }
        for blob in &parsed.blobs {
            if blob.external {
                continue;
            }
            if self.blob_stat(repo, &blob.digest).await.is_err() {
                return Err(Error::ManifestBlobUnknown {
                    digest: blob.digest.to_string(),
                });
            }
            self.storage.touch(&blob_key(&blob.digest)).await?;
        }
        for child in &parsed.manifests {
            if !self.manifest_exists(repo, child).await? {
                return Err(Error::ManifestBlobUnknown {
                    digest: child.to_string(),
                });
            }
        }
        // Content first, then the revision link, then tags: a reader never sees a tag whose
        // manifest is missing.
        let key = blob_key(&digest);
        if self.storage.stat(&key).await?.is_none() {
            self.storage.put(&key, body.clone()).await?;
        } else {
            self.storage.touch(&key).await?;
        }
        self.storage
            .put(
                &revision_key(repo, &digest),
                Bytes::from(parsed.media_type.clone()),
            )
            .await?;
        if let Some(subject) = &parsed.subject {
            let mut descriptor = serde_json::json!({
                "mediaType": parsed.media_type,
                "digest": digest.to_string(),
                "size": body.len(),
            });
            if let Some(artifact_type) = &parsed.artifact_type {
                descriptor["artifactType"] = Value::String(artifact_type.clone());
            }
            if let Some(annotations) = &parsed.annotations {
                descriptor["annotations"] = annotations.clone();
            }
            self.storage
                .put(
                    &referrer_key(repo, subject, &digest),
                    Bytes::from(descriptor.to_string()),
                )
                .await?;
        }
        let mut tags: Vec<String> = extra_tags.to_vec();
        if let Reference::Tag(tag) = reference {
            tags.insert(0, tag.clone());
        }
        for tag in &tags {
            self.storage
                .put(&tag_key(repo, tag), Bytes::from(digest.to_string()))
                .await?;
            cache_insert(&self.tags, (repo.clone(), tag.clone()), digest.clone());
        }
        cache_insert(
            &self.manifests,
            (repo.clone(), digest.clone()),
            StoredManifest {
                digest: digest.clone(),
                media_type: parsed.media_type.clone(),
                body,
            },
        );
        Ok(PutManifest {
            digest,
            subject: parsed.subject,
            tags,
        })
    }

    /// Deletes a tag, or a manifest with every tag pointing at it and its referrer entry.
    pub async fn manifest_delete(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        match reference {
            Reference::Tag(tag) => {
                cache_remove(&self.tags, &(repo.clone(), tag.clone()));
                if self.storage.delete(&tag_key(repo, tag)).await? {
                    Ok(())
                } else {
                    Err(Error::ManifestUnknown {
                        reference: tag.clone(),
                    })
                }
            }
            Reference::Digest(digest) => {
                let stored = self.manifest_get(repo, reference).await?;
                cache_remove(&self.manifests, &(repo.clone(), digest.clone()));
                let tags = self.storage.list(&tags_prefix(repo)).await?;
                for (tag, _) in tags.objects {
                    let points_here = self
                        .storage
                        .read(&tag_key(repo, &tag))
                        .await?
                        .is_some_and(|t| t.as_ref() == digest.to_string().as_bytes());
                    if points_here {
                        cache_remove(&self.tags, &(repo.clone(), tag.clone()));
                        self.storage.delete(&tag_key(repo, &tag)).await?;
                    }
                }
                if let Ok(parsed) = manifest::parse(&stored.body, Some(&stored.media_type))
                    && let Some(subject) = parsed.subject
                {
                    self.storage
                        .delete(&referrer_key(repo, &subject, digest))
                        .await?;
                }
                self.storage.delete(&revision_key(repo, digest)).await?;
                Ok(())
            }
        }
    }

    // ---- discovery ----

    /// Whether a repository has ever received content.
    pub async fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        Ok(!self
            .storage
            .list(&repo_key(repo))
            .await?
            .prefixes
            .is_empty())
    }

    pub async fn tags(
        &self,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Page> {
        if !self.repo_exists(repo).await? {
            return Err(Error::NameUnknown {
                name: repo.to_string(),
            });
        }
        let listing = self.storage.list(&tags_prefix(repo)).await?;
        let names = listing.objects.into_iter().map(|(name, _)| name);
        Ok(paginate(names, n, last))
    }

    pub async fn catalog(&self, n: Option<usize>, last: Option<&str>) -> Result<Page> {
        let mut repos = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(path) = stack.pop() {
            let prefix = if path.is_empty() {
                "repos/".to_string()
            } else {
                format!("repos/{path}/")
            };
            let children = self.storage.list(&prefix).await?;
            if children.prefixes.iter().any(|p| p == "_manifests") {
                repos.push(path.clone());
            }
            for child in children.prefixes {
                if !child.starts_with('_') {
                    stack.push(if path.is_empty() {
                        child
                    } else {
                        format!("{path}/{child}")
                    });
                }
            }
        }
        repos.sort();
        Ok(paginate(repos.into_iter(), n, last))
    }

    /// Descriptors of the manifests whose `subject` is `subject`, optionally filtered.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Value>> {
        let prefix = referrers_prefix(repo, subject);
        let listing = self.storage.list(&prefix).await?;
        let mut out = Vec::new();
        for (name, _) in listing.objects {
            let Some(data) = self.storage.read(&format!("{prefix}{name}")).await? else {
                continue;
            };
            let Ok(descriptor) = serde_json::from_slice::<Value>(&data) else {
                continue;
            };
            if let Some(wanted) = artifact_type
                && descriptor.get("artifactType").and_then(Value::as_str) != Some(wanted)
            {
                continue;
            }
            out.push(descriptor);
        }
        Ok(out)
    }
}

/// Applies `last` (exclusive start) and `n` (capped at [`MAX_PAGE`]) to a sorted listing.
fn paginate(items: impl Iterator<Item = String>, n: Option<usize>, last: Option<&str>) -> Page {
    let limit = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let mut rest = items.filter(|item| last.is_none_or(|last| item.as_str() > last));
    let page: Vec<String> = rest.by_ref().take(limit).collect();
    let next = if limit > 0 && rest.next().is_some() {
        page.last().cloned()
    } else {
        None
    };
    Page { items: page, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination() {
        let items = || ["a", "b", "c"].iter().map(|s| s.to_string());
        let page = paginate(items(), Some(2), None);
        assert_eq!(page.items, ["a", "b"]);
        assert_eq!(page.next.as_deref(), Some("b"));
        let page = paginate(items(), Some(2), Some("b"));
        assert_eq!(page.items, ["c"]);
        assert!(page.next.is_none());
        assert!(paginate(items(), Some(0), None).items.is_empty());
    }
}
