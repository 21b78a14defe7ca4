//! Manifest parsing and checks before a manifest is stored: size limit, JSON validity, a media
//! type that agrees with the document (the CVE-2021-41190 type-confusion guard), and the list of
//! blobs and manifests it references, which must exist in the repository. The stored bytes are
//! always the client's bytes, verbatim.

use crate::error::{Error, Result};
use crate::reference::Digest;
use serde_json::Value;

/// Largest manifest accepted (the spec asks for at least 4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Index,
}

/// A descriptor this manifest points at.
#[derive(Debug, Clone)]
pub struct Reference {
    pub digest: Digest,
    /// Non-distributable layers (with `urls`) need not be in the registry.
    pub external: bool,
}

/// What the registry needs to know about a manifest it is asked to store.
#[derive(Debug)]
pub struct Parsed {
    pub media_type: String,
    pub kind: Kind,
    /// Config and layers (images), which must be blobs of the repository.
    pub blobs: Vec<Reference>,
    /// Child manifests (indexes), which must be manifests of the repository.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or for images without one the config media type.
    pub artifact_type: Option<String>,
    pub annotations: Option<Value>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::ManifestInvalid {
        reason: reason.into(),
    }
}

fn descriptor_digest(desc: &Value, what: &str) -> Result<Digest> {
    let text = desc
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what} has no digest")))?;
    if desc
        .get("size")
        .and_then(Value::as_i64)
        .is_none_or(|s| s < 0)
    {
        return Err(invalid(format!("{what} has no valid size")));
    }
    if desc.get("mediaType").and_then(Value::as_str).is_none() {
        return Err(invalid(format!("{what} has no mediaType")));
    }
    Digest::parse(text).map_err(|_| invalid(format!("{what} has a malformed digest")))
}

/// Parses and checks a manifest pushed with `content_type` (the request's Content-Type).
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Parsed> {
    if body.len() > MAX_MANIFEST_SIZE {
        return Err(Error::ManifestTooLarge {
            limit: MAX_MANIFEST_SIZE,
        });
    }
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let object = doc
        .as_object()
        .ok_or_else(|| invalid("a manifest must be a JSON object"))?;
    let declared = object.get("mediaType").and_then(Value::as_str);
    let content_type = content_type
        .map(|ct| ct.split(';').next().unwrap_or(ct).trim())
        .filter(|ct| !ct.is_empty());
    let media_type = match (content_type, declared) {
        (Some(ct), Some(mt)) if ct != mt => {
            return Err(invalid(format!(
                "mediaType {mt:?} does not match Content-Type {ct:?}"
            )));
        }
        (Some(ct), _) => ct.to_string(),
        (None, Some(mt)) => mt.to_string(),
        (None, None) => return Err(invalid("no Content-Type and no mediaType")),
    };
    if object.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let kind = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => Kind::Image,
        OCI_INDEX | DOCKER_LIST => Kind::Index,
        other => {
            return Err(invalid(format!(
                "unsupported manifest media type {other:?}"
            )));
        }
    };
    let mut parsed = Parsed {
        media_type,
        kind,
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject: None,
        artifact_type: object
            .get("artifactType")
            .and_then(Value::as_str)
            .map(str::to_string),
        annotations: object.get("annotations").cloned(),
    };
    match kind {
        Kind::Image => {
            if object.contains_key("manifests") {
                return Err(invalid("an image manifest must not have `manifests`"));
            }
            let config = object
                .get("config")
                .ok_or_else(|| invalid("image manifest has no config"))?;
            parsed.blobs.push(Reference {
                digest: descriptor_digest(config, "config")?,
                external: false,
            });
            if parsed.artifact_type.is_none() {
                parsed.artifact_type = config
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            let layers = match object.get("layers") {
                Some(Value::Array(layers)) => layers.as_slice(),
                Some(_) => return Err(invalid("`layers` must be an array")),
                None if parsed.media_type == OCI_MANIFEST => &[],
                None => return Err(invalid("image manifest has no layers")),
            };
            for layer in layers {
                let external = layer
                    .get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|urls| !urls.is_empty());
                parsed.blobs.push(Reference {
                    digest: descriptor_digest(layer, "layer")?,
                    external,
                });
            }
        }
        Kind::Index => {
            if object.contains_key("layers") || object.contains_key("config") {
                return Err(invalid("an index must not have `layers` or `config`"));
            }
            let manifests = match object.get("manifests") {
                Some(Value::Array(manifests)) => manifests.as_slice(),
                _ => return Err(invalid("index has no `manifests` array")),
            };
            for child in manifests {
                parsed.manifests.push(descriptor_digest(child, "manifest")?);
            }
        }
    }
    if let Some(subject) = object.get("subject") {
        parsed.subject = Some(descriptor_digest(subject, "subject")?);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(media_type: &str, fill: char) -> Value {
        serde_json::json!({"mediaType": media_type, "size": 1,
            "digest": format!("sha256:{}", fill.to_string().repeat(64))})
    }

    #[test]
    fn image_references_and_artifact_type() {
        let doc = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc("application/x.cfg", 'a'), "layers": [desc("l", 'b')],
            "subject": desc(OCI_MANIFEST, 'c')});
        let parsed = parse(doc.to_string().as_bytes(), Some(OCI_MANIFEST)).expect("parse");
        assert_eq!(parsed.blobs.len(), 2);
        assert_eq!(parsed.artifact_type.as_deref(), Some("application/x.cfg"));
        assert!(parsed.subject.is_some());
    }

    #[test]
    fn rejects_type_confusion_bad_json_and_size() {
        let doc = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        assert!(parse(doc.to_string().as_bytes(), Some(OCI_MANIFEST)).is_err());
        let both = serde_json::json!({"schemaVersion": 2, "manifests": [], "layers": []});
        assert!(parse(both.to_string().as_bytes(), Some(OCI_INDEX)).is_err());
        assert!(parse(b"{not json", Some(OCI_MANIFEST)).is_err());
        let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
        assert!(matches!(
            parse(&big, Some(OCI_MANIFEST)),
            Err(Error::ManifestTooLarge { .. })
        ));
    }
}
