//! S3-compatible object storage for registry content, through the Apache Arrow project's
//! `object_store` crate. The key space is the same as the filesystem backend's. Uploads are
//! still staged on local disk (hashing needs the bytes in order, and an OCI upload spans many
//! requests); a verified upload is streamed to the bucket as a multipart upload and then the
//! local copy is removed. `touch` is a no-op here: GC relies on objects' LastModified times.

use super::{ByteStream, Children, Meta, Storage, check_key};
use crate::error::{Error, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// Part size of multipart uploads, and the size below which a single PUT is used.
const PART: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Endpoint URL for S3-compatible servers (MinIO); `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
}

/// Opens the bucket; credentials come from the usual `AWS_*` environment variables.
pub fn open(config: &S3Config) -> Result<Arc<dyn Storage>> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(&config.bucket)
        .with_region(&config.region);
    if let Some(endpoint) = &config.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    let store = builder.build().map_err(object_error)?;
    Ok(Arc::new(S3Storage {
        store: Arc::new(store),
    }))
}

pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
}

fn object_error(e: object_store::Error) -> Error {
    Error::ObjectStore(e.to_string())
}

fn meta_of(meta: &object_store::ObjectMeta) -> Meta {
    Meta {
        size: meta.size,
        modified: SystemTime::from(meta.last_modified),
    }
}

fn path(key: &str) -> Result<ObjectPath> {
    check_key(key)?;
    Ok(ObjectPath::from(key.trim_end_matches('/')))
}

#[async_trait::async_trait]
impl Storage for S3Storage {
    async fn stat(&self, key: &str) -> Result<Option<Meta>> {
        match self.store.head(&path(key)?).await {
            Ok(meta) => Ok(Some(meta_of(&meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error(e)),
        }
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteStream> {
        let options = GetOptions {
            range: range.map(|(start, len)| GetRange::Bounded(start..start + len)),
            ..Default::default()
        };
        let result = self
            .store
            .get_opts(&path(key)?, options)
            .await
            .map_err(object_error)?;
        Ok(Box::pin(
            result
                .into_stream()
                .map_err(|e| std::io::Error::other(e.to_string())),
        ))
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(&path(key)?).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(object_error)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error(e)),
        }
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.store
            .put(&path(key)?, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(object_error)
    }

    async fn put_file(&self, key: &str, file: &Path) -> Result<()> {
        let location = path(key)?;
        let local = file.to_path_buf();
        let size = tokio::fs::metadata(&local)
            .await
            .map_err(|e| Error::io(local.display().to_string(), e))?
            .len();
        if size < PART as u64 {
            let data = tokio::fs::read(&local)
                .await
                .map_err(|e| Error::io(local.display().to_string(), e))?;
            self.put(key, Bytes::from(data)).await?;
        } else {
            let upload = self
                .store
                .put_multipart(&location)
                .await
                .map_err(object_error)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
            let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
            let reader_path = local.clone();
            tokio::task::spawn_blocking(move || {
                let mut f = match std::fs::File::open(&reader_path) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                loop {
                    let mut buf = vec![0u8; PART];
                    match f.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            buf.truncate(n);
                            if tx.blocking_send(Ok(buf)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                    }
                }
            });
            while let Some(chunk) = rx.recv().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(Error::io(local.display().to_string(), e));
                    }
                };
                writer.wait_for_capacity(4).await.map_err(object_error)?;
                writer.write(&chunk);
            }
            writer.finish().await.map_err(object_error)?;
        }
        let _ = tokio::fs::remove_file(&local).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let location = path(key)?;
        if self.stat(key).await?.is_none() {
            return Ok(false);
        }
        match self.store.delete(&location).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(object_error(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Children> {
        let base = path(prefix)?;
        let listing = self
            .store
            .list_with_delimiter(Some(&base))
            .await
            .map_err(object_error)?;
        let name = |p: &ObjectPath| p.filename().map(str::to_string);
        let mut children = Children {
            objects: listing
                .objects
                .iter()
                .filter_map(|m| name(&m.location).map(|n| (n, meta_of(m))))
                .collect(),
            prefixes: listing.common_prefixes.iter().filter_map(name).collect(),
        };
        children.objects.sort_by(|a, b| a.0.cmp(&b.0));
        children.prefixes.sort();
        Ok(children)
    }

    async fn list_recursive(&self, prefix: &str) -> Result<Vec<(String, Meta)>> {
        let base = path(prefix)?;
        let strip = format!("{}/", base.as_ref());
        let mut out: Vec<(String, Meta)> = self
            .store
            .list(Some(&base))
            .map_ok(|m| {
                let key = m.location.as_ref();
                (
                    key.strip_prefix(&strip).unwrap_or(key).to_string(),
                    meta_of(&m),
                )
            })
            .try_collect()
            .await
            .map_err(object_error)?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
