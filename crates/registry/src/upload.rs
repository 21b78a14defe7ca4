//! Blob upload sessions and the streaming write path. A request body is never held whole in
//! memory: chunks (small ones coalesced to ~1 MiB) are shared, not copied, between a hashing
//! thread and a writing thread that work side by side, so the page-cache copy never waits
//! behind the hash, which is the slowest part of a push. When the body's length is known, the
//! file's blocks are reserved up front (`fallocate`), which spares the filesystem block
//! allocation per write. The hash state lives in memory between PATCH requests; after a
//! restart (or an algorithm the session did not hash with) the file is re-hashed at commit.
//!
//! `bench/RESULTS.md` (Registry) has the measurements behind this shape, and the variants
//! tried against it (one thread hashing then writing; hashing or writing on the async task;
//! larger batches per hand-off), none of which was faster on this 2-core machine.

use crate::error::{Error, Result};
use crate::hash::Hasher;
use crate::reference::{Algorithm, Digest, RepoName};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Chunks smaller than this are coalesced before they cross to the writer and hasher threads.
const COALESCE: usize = 1 << 20;
/// Uploads streaming at the same time. Each holds a blocking thread (hash and write); capping
/// them keeps tokio's blocking pool (512 threads) from filling with half-started
/// pipelines, which could otherwise wait on each other forever.
const MAX_STREAMING: usize = 128;
static STREAMING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_STREAMING);

/// Chunks at least this large are passed on without copying.
const DIRECT: usize = 64 << 10;
/// How many chunks may wait for the hashing and for the writing thread (the chunks are shared
/// between the two queues, so this bounds memory per upload to ~8 MiB).
const QUEUE: usize = 8;
/// Space reserved ahead of an upload is capped: a client may announce more than it sends.
const MAX_PREALLOCATE: u64 = 4 << 30;

/// The state of one upload between requests.
#[derive(Debug)]
pub struct Session {
    pub repo: RepoName,
    pub size: u64,
    /// `None` when the hash state was lost (restart, failed write): re-hash at commit.
    pub hasher: Option<Hasher>,
    pub dir: PathBuf,
}

impl Session {
    pub fn data_path(&self) -> PathBuf {
        self.dir.join("data")
    }
}

pub type SessionRef = Arc<tokio::sync::Mutex<Session>>;

/// All upload sessions of this process, staged under `<data-dir>/uploads/<id>/`.
#[derive(Debug)]
pub struct Uploads {
    root: PathBuf,
    sessions: Mutex<HashMap<uuid::Uuid, SessionRef>>,
}

impl Uploads {
    pub fn new(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&root).map_err(|e| Error::io("uploads", e))?;
        Ok(Uploads {
            root,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<uuid::Uuid, SessionRef>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a session for `repo`, hashing with `algorithm` as data arrives.
    pub async fn create(&self, repo: &RepoName, algorithm: Algorithm) -> Result<uuid::Uuid> {
        let id = uuid::Uuid::new_v4();
        let dir = self.root.join(id.to_string());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(format!("uploads/{id}"), e))?;
        tokio::fs::write(dir.join("repo"), repo.as_str())
            .await
            .map_err(|e| Error::io(format!("uploads/{id}/repo"), e))?;
        tokio::fs::write(dir.join("data"), b"")
            .await
            .map_err(|e| Error::io(format!("uploads/{id}/data"), e))?;
        let session = Session {
            repo: repo.clone(),
            size: 0,
            hasher: Some(Hasher::new(algorithm)),
            dir,
        };
        self.map()
            .insert(id, Arc::new(tokio::sync::Mutex::new(session)));
        Ok(id)
    }

    /// Finds a session of `repo` by its id, reloading it from disk after a restart.
    pub async fn get(&self, repo: &RepoName, id: &str) -> Result<SessionRef> {
        let unknown = || Error::UploadUnknown {
            id: id.chars().take(64).collect(),
        };
        let uuid = uuid::Uuid::parse_str(id).map_err(|_| unknown())?;
        let existing = self.map().get(&uuid).cloned();
        let session = match existing {
            Some(session) => session,
            None => {
                let dir = self.root.join(uuid.to_string());
                let owner = tokio::fs::read_to_string(dir.join("repo"))
                    .await
                    .map_err(|_| unknown())?;
                let size = tokio::fs::metadata(dir.join("data"))
                    .await
                    .map_err(|_| unknown())?
                    .len();
                let session = Session {
                    repo: RepoName::parse(&owner).map_err(|_| unknown())?,
                    size,
                    hasher: None,
                    dir,
                };
                let session = Arc::new(tokio::sync::Mutex::new(session));
                self.map().entry(uuid).or_insert(session).clone()
            }
        };
        if session.lock().await.repo != *repo {
            return Err(unknown());
        }
        Ok(session)
    }

    /// Forgets a session and removes its staging directory.
    pub async fn remove(&self, id: &str) {
        if let Ok(uuid) = uuid::Uuid::parse_str(id) {
            self.map().remove(&uuid);
            let _ = tokio::fs::remove_dir_all(self.root.join(uuid.to_string())).await;
        }
    }
}

/// What a streamed append did: bytes written, the hash state after them, and the body error
/// that cut it short (the written part stays, so the client can resume from the new size).
pub struct Appended {
    pub written: u64,
    pub hasher: Option<Hasher>,
    pub interrupted: Option<Error>,
}

/// Appends a request body to `path` while hashing it, without buffering it whole.
/// `expected_len` (the request's Content-Length) lets the file's blocks be reserved first.
pub async fn append_stream<S, E>(
    path: &Path,
    body: S,
    hasher: Option<Hasher>,
    expected_len: Option<u64>,
) -> Result<Appended>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    let _permit = STREAMING
        .acquire()
        .await
        .map_err(|e| Error::Internal(format!("upload limiter closed: {e}")))?;
    let file_path = path.to_path_buf();
    let file = tokio::task::spawn_blocking(move || {
        std::fs::File::options()
            .append(true)
            .create(true)
            .open(file_path)
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
    .map_err(|e| Error::io(path.display().to_string(), e))?;

    // Hashing and writing run on their own threads, side by side: the hash is the slowest
    // part of a push, and the write (a copy into the page cache) then costs it nothing.
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
    let hashing = hasher.map(|mut hasher| {
        tokio::task::spawn_blocking(move || {
            while let Some(chunk) = hash_rx.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher
        })
    });
    let hash_tx = hashing.is_some().then_some(hash_tx);
    let (write_tx, mut write_rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut file = file;
        let reserved = expected_len.and_then(|len| preallocate(&file, len));
        let mut written = 0u64;
        let mut result = Ok(());
        while let Some(chunk) = write_rx.blocking_recv() {
            if let Err(e) = file.write_all(&chunk) {
                result = Err(e);
                break;
            }
            written += chunk.len() as u64;
        }
        if let Some((start, len)) = reserved
            && written < len
        {
            release_reserved(&file, start + written, len - written);
        }
        result.map(|()| written)
    });

    let mut interrupted = None;
    let mut pending = BytesMut::new();
    let mut body = std::pin::pin!(body);
    let mut thread_gone = false;
    loop {
        let next = body.next().await;
        let flush = match &next {
            Some(Ok(chunk)) => {
                if pending.is_empty() && chunk.len() >= DIRECT {
                    // Large chunks cross as they are: no copy.
                    Some(chunk.clone())
                } else {
                    if pending.capacity() - pending.len() < chunk.len() {
                        pending.reserve(COALESCE.max(chunk.len()));
                    }
                    pending.extend_from_slice(chunk);
                    (pending.len() >= COALESCE).then(|| pending.split().freeze())
                }
            }
            Some(Err(e)) => {
                interrupted = Some(Error::Body(e.to_string()));
                (!pending.is_empty()).then(|| pending.split().freeze())
            }
            None => (!pending.is_empty()).then(|| pending.split().freeze()),
        };
        if let Some(chunk) = flush {
            if let Some(hash_tx) = &hash_tx
                && hash_tx.send(chunk.clone()).await.is_err()
            {
                thread_gone = true;
                break;
            }
            if write_tx.send(chunk).await.is_err() {
                thread_gone = true;
                break;
            }
        }
        match next {
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    drop(write_tx);
    drop(hash_tx);
    let write_result = writer
        .await
        .map_err(|e| Error::Internal(format!("upload writer failed: {e}")))?;
    let hasher = match hashing {
        Some(task) => Some(
            task.await
                .map_err(|e| Error::Internal(format!("upload hasher failed: {e}")))?,
        ),
        None => None,
    };
    match write_result {
        Ok(written) if !thread_gone => Ok(Appended {
            written,
            hasher,
            interrupted,
        }),
        Ok(_) => Err(Error::Internal(
            "an upload hashing or writing thread stopped early".into(),
        )),
        Err(e) => Err(Error::io(path.display().to_string(), e)),
    }
}

/// Reserves the blocks for `len` more bytes at the end of `file` without changing its size,
/// so appends need no block allocation. Returns the reserved range, or `None` where the
/// filesystem cannot (the writes then allocate as usual).
#[cfg(target_os = "linux")]
fn preallocate(file: &std::fs::File, len: u64) -> Option<(u64, u64)> {
    let start = file.metadata().ok()?.len();
    let len = len.min(MAX_PREALLOCATE);
    if len == 0 {
        return None;
    }
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, start, len)
        .ok()
        .map(|()| (start, len))
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &std::fs::File, _len: u64) -> Option<(u64, u64)> {
    None
}

/// Gives back reserved blocks a short body did not fill (best effort: they are also freed
/// when the upload is removed).
#[cfg(target_os = "linux")]
fn release_reserved(file: &std::fs::File, offset: u64, len: u64) {
    let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
    if let Err(e) = rustix::fs::fallocate(file, flags, offset, len) {
        tracing::debug!("could not release reserved upload space: {e}");
    }
}

#[cfg(not(target_os = "linux"))]
fn release_reserved(_file: &std::fs::File, _offset: u64, _len: u64) {}

/// Hashes a staged file from disk (used when the in-memory hash state is not usable).
pub async fn hash_file(path: &Path, algorithm: Algorithm) -> Result<Digest> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<Digest> {
        let mut file =
            std::fs::File::open(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
        let mut hasher = Hasher::new(algorithm);
        let mut buf = vec![0u8; COALESCE];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io(path.display().to_string(), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher.finish())
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_and_hashes_across_requests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        let parts: Vec<std::result::Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from(vec![b'x'; 3 << 20])),
        ];
        let first = append_stream(
            &path,
            futures::stream::iter(parts),
            Some(Hasher::new(Algorithm::Sha256)),
            // Announces more than it sends: the reserved rest must not show in the file.
            Some(6 + (3 << 20) + 4096),
        )
        .await
        .expect("append");
        assert_eq!(first.written, 6 + (3 << 20));
        let second = append_stream(
            &path,
            futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(b"!"))]),
            first.hasher,
            Some(1),
        )
        .await
        .expect("append");
        let streamed = second.hasher.expect("hasher").finish();
        let on_disk = hash_file(&path, Algorithm::Sha256).await.expect("hash");
        assert_eq!(streamed, on_disk);
        let len = std::fs::metadata(&path).expect("metadata").len();
        assert_eq!(len, 6 + (3 << 20) + 1, "reserved space is not content");
    }

    #[tokio::test]
    async fn an_interrupted_body_keeps_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data");
        let parts: Vec<std::result::Result<Bytes, String>> =
            vec![Ok(Bytes::from_static(b"abc")), Err("reset".to_string())];
        let out = append_stream(&path, futures::stream::iter(parts), None, None)
            .await
            .expect("append");
        assert_eq!(out.written, 3);
        assert!(out.interrupted.is_some());
    }
}
