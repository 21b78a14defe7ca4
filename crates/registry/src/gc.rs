//! Garbage collection: deletes blobs that no manifest of any repository references, and upload
//! sessions nobody finished. It runs while the registry serves pushes, so it never deletes
//! anything modified within the grace period: a blob being uploaded, mounted or named by a
//! manifest being pushed has a fresh mtime (the registry touches blobs when it links them or
//! checks them for a manifest), and the mtime is read again right before each delete.
//! Manifests themselves are kept; deleting them is the API's job (`DELETE /manifests/`).

use crate::error::Result;
use crate::manifest;
use crate::reference::{Algorithm, Digest};
use crate::registry::blob_key;
use crate::storage::Storage;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    pub grace: Duration,
}

/// What a run deleted (or, in a dry run, would delete).
#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs: Vec<String>,
    pub bytes: u64,
    pub uploads: Vec<String>,
    pub kept: usize,
}

fn is_old(modified: SystemTime, grace: Duration) -> bool {
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age >= grace)
}

/// Runs GC over the configured storage and the upload staging directory.
pub async fn run(config: &crate::Config, options: &GcOptions) -> Result<GcReport> {
    let storage = crate::open_storage(config)?;
    let mut report = collect_blobs(storage.as_ref(), options).await?;
    collect_uploads(&config.data_dir.join("uploads"), options, &mut report).await;
    Ok(report)
}

/// Mark: every manifest revision of every repository, and what it references.
async fn mark(storage: &dyn Storage) -> Result<HashSet<Digest>> {
    let mut live = HashSet::new();
    for (key, _) in storage.list_recursive("repos/").await? {
        let Some((_, tail)) = key.rsplit_once("/_manifests/revisions/") else {
            continue;
        };
        let Some(digest) = tail
            .split_once('/')
            .and_then(|(alg, hex)| Digest::parse(&format!("{alg}:{hex}")).ok())
        else {
            continue;
        };
        let media_type = storage.read(&format!("repos/{key}")).await?;
        if let Some(body) = storage.read(&blob_key(&digest)).await? {
            let media_type = media_type.map(|m| String::from_utf8_lossy(&m).into_owned());
            if let Ok(parsed) = manifest::parse(&body, media_type.as_deref()) {
                live.extend(parsed.blobs.into_iter().map(|b| b.digest));
                live.extend(parsed.manifests);
            }
        }
        live.insert(digest);
    }
    Ok(live)
}

async fn collect_blobs(storage: &dyn Storage, options: &GcOptions) -> Result<GcReport> {
    let live = mark(storage).await?;
    let mut report = GcReport::default();
    let mut deleted = HashSet::new();
    for (key, meta) in storage.list_recursive("blobs/").await? {
        // Keys are `<alg>/<2 hex>/<hex>`; anything else is not ours to judge.
        let mut parts = key.split('/');
        let (Some(alg), Some(_), Some(hex), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(digest) =
            Algorithm::parse(alg).and_then(|_| Digest::parse(&format!("{alg}:{hex}")).ok())
        else {
            continue;
        };
        if live.contains(&digest) || !is_old(meta.modified, options.grace) {
            report.kept += 1;
            continue;
        }
        let full_key = blob_key(&digest);
        if !options.dry_run {
            // Re-check: a push may have touched it since the listing.
            match storage.stat(&full_key).await? {
                Some(now) if is_old(now.modified, options.grace) => {
                    storage.delete(&full_key).await?;
                }
                _ => {
                    report.kept += 1;
                    continue;
                }
            }
        }
        report.bytes += meta.size;
        report.blobs.push(digest.to_string());
        deleted.insert(digest);
    }
    if !options.dry_run && !deleted.is_empty() {
        // Drop repository links to the deleted content.
        for (key, _) in storage.list_recursive("repos/").await? {
            let Some((_, tail)) = key.rsplit_once("/_layers/") else {
                continue;
            };
            let Some(digest) = tail
                .split_once('/')
                .and_then(|(alg, hex)| Digest::parse(&format!("{alg}:{hex}")).ok())
            else {
                continue;
            };
            if deleted.contains(&digest) && storage.stat(&blob_key(&digest)).await?.is_none() {
                storage.delete(&format!("repos/{key}")).await?;
            }
        }
    }
    Ok(report)
}

async fn collect_uploads(root: &std::path::Path, options: &GcOptions, report: &mut GcReport) {
    let Ok(mut entries) = tokio::fs::read_dir(root).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let dir = entry.path();
        let modified = match tokio::fs::metadata(dir.join("data")).await {
            Ok(meta) => meta.modified().ok(),
            Err(_) => entry.metadata().await.ok().and_then(|m| m.modified().ok()),
        };
        if modified.is_some_and(|m| is_old(m, options.grace)) {
            if !options.dry_run {
                let _ = tokio::fs::remove_dir_all(&dir).await;
            }
            report
                .uploads
                .push(entry.file_name().to_string_lossy().into_owned());
        }
    }
}
