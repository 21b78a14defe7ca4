//! Where registry content lives. The registry logic speaks to storage only through the
//! [`Storage`] trait: a flat, `/`-separated key space of immutable blobs and small metadata
//! objects (links, tags, referrer descriptors). The filesystem backend is the default; the S3
//! backend puts the same key space in an object-store bucket. Keys are built only from
//! validated names and digests (see `reference`), never from raw request text.
//! The key layout is documented in docs/registry.md.

pub mod fs;
pub mod s3;

use crate::error::{Error, Result};
use bytes::Bytes;
use futures::Stream;
use std::path::Path;
use std::pin::Pin;
use std::time::SystemTime;

/// A stream of content read from storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Size and modification time of a stored object.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub size: u64,
    pub modified: SystemTime,
}

/// The direct children of a key prefix: objects and sub-prefixes (names only).
#[derive(Debug, Default)]
pub struct Children {
    pub objects: Vec<(String, Meta)>,
    pub prefixes: Vec<String>,
}

#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Size and mtime of an object, or `None` when it does not exist.
    async fn stat(&self, key: &str) -> Result<Option<Meta>>;
    /// Streams an object, or the `len` bytes from `start` when a range is given.
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream>;
    /// Reads a small object whole, or `None` when it does not exist.
    async fn read(&self, key: &str) -> Result<Option<Bytes>>;
    /// Writes a small object atomically (readers see the old or the new content, never a mix).
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;
    /// Moves a finished local file (a verified upload) into storage under `key`, atomically.
    async fn put_file(&self, key: &str, file: &Path) -> Result<()>;
    /// Deletes an object; `false` when there was none.
    async fn delete(&self, key: &str) -> Result<bool>;
    /// Lists the direct children of `prefix` (which ends with `/`).
    async fn list(&self, prefix: &str) -> Result<Children>;
    /// Lists every object under `prefix`, with keys relative to it.
    async fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, Meta)>>;
    /// Marks an object as recently used, so a concurrent GC spares it (best effort).
    async fn touch(&self, _key: &str) -> Result<()> {
        Ok(())
    }
    /// Whether `put_file` is a cheap rename (local files on the same filesystem).
    fn is_local(&self) -> bool {
        false
    }
}

/// Rejects keys that could escape the key space. Callers build keys from validated parts, so
/// this failing means a bug, not bad input.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.split('/').any(|part| part == ".." || part == ".")
        || key.bytes().any(|b| b == 0 || b == b'\\');
    if bad {
        return Err(Error::Internal(format!("refusing storage key {key:?}")));
    }
    Ok(())
}
