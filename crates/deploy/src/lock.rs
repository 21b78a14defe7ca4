//! `skiff lock`: pin every container image of a manifest set to a digest. References already
//! pinned are left alone; references in the lock file are reused without asking the registry
//! (unless updating), so running it again gives the same manifests and the same lock file.

use crate::error::Result;
use crate::image::{ImageRef, LockFile, for_each_image};
use crate::registry::Resolver;
use serde_json::Value;
use std::collections::BTreeMap;

/// What a lock run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockReport {
    /// References resolved against their registry in this run.
    pub resolved: Vec<String>,
    /// References taken from the existing lock file.
    pub reused: Vec<String>,
    /// References already pinned to a digest in the manifests.
    pub pinned: Vec<String>,
}

/// Every distinct image reference in the objects, in first-seen order.
pub fn images(objects: &mut [Value]) -> Vec<String> {
    let mut seen = Vec::new();
    for object in objects.iter_mut() {
        for_each_image(object, &mut |v| {
            if let Some(s) = v.as_str()
                && !seen.iter().any(|x| x == s)
            {
                seen.push(s.to_string());
            }
        });
    }
    seen
}

/// Resolve and rewrite. `lock` is updated to hold exactly the references of this set.
pub async fn lock(
    objects: &mut [Value],
    lock: &mut LockFile,
    resolver: &Resolver,
    update: bool,
) -> Result<LockReport> {
    let mut report = LockReport::default();
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    let mut kept: BTreeMap<String, String> = BTreeMap::new();
    let earlier: BTreeMap<String, (String, String)> = lock
        .images
        .iter()
        .filter_map(|(original, digest)| {
            let pinned = ImageRef::parse(original).ok()?.pinned(digest);
            Some((pinned, (original.clone(), digest.clone())))
        })
        .collect();
    for reference in images(objects) {
        let image = ImageRef::parse(&reference)?;
        if image.digest.is_some() {
            // Pinned by an earlier run: keep its lock entry, so locking twice changes nothing.
            if let Some((original, digest)) = earlier.get(&reference) {
                kept.insert(original.clone(), digest.clone());
            }
            report.pinned.push(reference);
            continue;
        }
        let digest = match lock.images.get(&reference) {
            Some(digest) if !update => {
                report.reused.push(reference.clone());
                digest.clone()
            }
            _ => {
                let digest = resolver.resolve(&image).await?;
                report.resolved.push(reference.clone());
                digest
            }
        };
        digests.insert(reference, digest);
    }
    for object in objects.iter_mut() {
        for_each_image(object, &mut |v| {
            let Some(reference) = v.as_str() else { return };
            if let (Some(digest), Ok(image)) = (digests.get(reference), ImageRef::parse(reference))
            {
                *v = Value::String(image.pinned(digest));
            }
        });
    }
    lock.api_version = LockFile::API_VERSION.into();
    lock.kind = LockFile::KIND.into();
    kept.extend(digests);
    lock.images = kept;
    Ok(report)
}
