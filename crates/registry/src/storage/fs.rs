//! The default storage backend: a directory tree under the data directory. Small objects are
//! written to a temporary file and renamed into place; uploads are renamed from the staging
//! area on the same filesystem, so commits are atomic and copy nothing.

use super::{ByteStream, Children, Meta, Storage, check_key};
use crate::error::{Error, Result};
use bytes::Bytes;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Chunk size for streaming reads: large enough to amortize syscalls and channel hops.
const READ_CHUNK: usize = 2 << 20;

#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("_tmp")).map_err(|e| Error::io("_tmp", e))?;
        Ok(FsStorage { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key.trim_end_matches('/')))
    }
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        size: m.len(),
        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::NotADirectory
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
}

/// Streams a file from a blocking thread in large chunks.
pub(crate) fn stream_file(mut file: std::fs::File, mut remaining: u64) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        while remaining > 0 {
            let want = remaining.min(READ_CHUNK as u64);
            // `read_to_end` into reserved capacity: no zero-filling, one copy from the page cache.
            let mut buf = Vec::with_capacity(want as usize);
            match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => {
                    let _ = tx.blocking_send(Err(std::io::ErrorKind::UnexpectedEof.into()));
                    return;
                }
                Ok(n) => remaining -= n as u64,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

fn write_atomic(root: &Path, target: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = root.join("_tmp").join(uuid::Uuid::new_v4().to_string());
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[async_trait::async_trait]
impl Storage for FsStorage {
    async fn stat(&self, key: &str) -> Result<Option<Meta>> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(meta_of(&m))),
            Ok(_) => Ok(None),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(Error::io(key, e)),
        }
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let path = self.path(key)?;
        let owned = key.to_string();
        blocking(move || {
            let mut file = std::fs::File::open(&path).map_err(|e| Error::io(&owned, e))?;
            let size = file.metadata().map_err(|e| Error::io(&owned, e))?.len();
            let len = match range {
                Some((start, len)) => {
                    file.seek(SeekFrom::Start(start))
                        .map_err(|e| Error::io(&owned, e))?;
                    len
                }
                None => size,
            };
            Ok(stream_file(file, len))
        })
        .await
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if not_found(&e) || e.kind() == std::io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(Error::io(key, e)),
        }
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let root = self.root.clone();
        let owned = key.to_string();
        blocking(move || write_atomic(&root, &path, &data).map_err(|e| Error::io(owned, e))).await
    }

    async fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        let path = self.path(key)?;
        let from = file.to_path_buf();
        let owned = key.to_string();
        blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(&owned, e))?;
            }
            std::fs::rename(&from, &path).map_err(|e| Error::io(&owned, e))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(Error::io(key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Children> {
        let path = self.path(prefix)?;
        let owned = prefix.to_string();
        blocking(move || {
            let mut children = Children::default();
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if not_found(&e) => return Ok(children),
                Err(e) => return Err(Error::io(owned, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&owned, e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let meta = entry.metadata().map_err(|e| Error::io(&owned, e))?;
                if meta.is_dir() {
                    children.prefixes.push(name);
                } else {
                    children.objects.push((name, meta_of(&meta)));
                }
            }
            children.objects.sort_by(|a, b| a.0.cmp(&b.0));
            children.prefixes.sort();
            Ok(children)
        })
        .await
    }

    async fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, Meta)>> {
        let path = self.path(prefix)?;
        let owned = prefix.to_string();
        blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![(path, String::new())];
            while let Some((dir, rel)) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if not_found(&e) => continue,
                    Err(e) => return Err(Error::io(&owned, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io(&owned, e))?;
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    let key = if rel.is_empty() {
                        name
                    } else {
                        format!("{rel}/{name}")
                    };
                    let meta = entry.metadata().map_err(|e| Error::io(&owned, e))?;
                    if meta.is_dir() {
                        stack.push((entry.path(), key));
                    } else {
                        out.push((key, meta_of(&meta)));
                    }
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .await
    }

    async fn touch(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let owned = key.to_string();
        blocking(move || {
            let file = match std::fs::File::options().write(true).open(&path) {
                Ok(file) => file,
                Err(e) if not_found(&e) => return Ok(()),
                Err(e) => return Err(Error::io(owned, e)),
            };
            file.set_modified(SystemTime::now())
                .map_err(|e| Error::io(owned, e))
        })
        .await
    }

    fn is_local(&self) -> bool {
        true
    }
}
