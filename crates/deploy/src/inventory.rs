//! The app record kept in the cluster, so no state lives on the deploying machine: one Secret
//! per app (`skiff-app.<app>`) with the current resource list, and one Secret per revision
//! (`skiff-app.<app>.<n>`) with the applied manifests, used for history, prune and rollback.
//! Secrets rather than ConfigMaps because the manifests may themselves contain Secrets.

use crate::error::{Error, Result};
use crate::manifest::split_api_version;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Label set on every resource an app applied; its value is the app name.
pub const APP_LABEL: &str = "skiff.dev/app";
/// Label on the app record Secret.
pub const RECORD_LABEL: &str = "skiff.dev/app-record";
/// Label on the revision Secrets.
pub const REVISION_LABEL: &str = "skiff.dev/app-revision";
/// Field manager used for every server-side apply.
pub const FIELD_MANAGER: &str = "skiff";
/// How many revisions are kept per app.
pub const KEEP_REVISIONS: usize = 20;

/// Identity of one resource: API version, kind, namespace (none if cluster-scoped) and name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ResourceId {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ResourceId {
    /// The API group.
    pub fn group(&self) -> &str {
        split_api_version(&self.api_version).0
    }
    /// Identity regardless of API version, for comparing sets.
    pub fn key(&self) -> (String, String, Option<String>, String) {
        (
            self.group().to_string(),
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = self.group();
        let kind = if group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{group}", self.kind)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{kind} {ns}/{}", self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

/// The app record: what is deployed now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppRecord {
    pub app: String,
    pub namespace: String,
    /// Revision of the last deploy (successful or not).
    pub revision: u64,
    /// `succeeded`, `failed` or `applying`.
    pub status: String,
    /// Every resource the app may own in the cluster.
    pub resources: Vec<ResourceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// One deploy of an app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub revision: u64,
    pub status: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub resources: Vec<ResourceId>,
    /// The objects as applied (labels and namespaces filled in).
    pub manifests: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Check an app name: it becomes a label value and part of Secret names.
pub fn validate_app_name(app: &str) -> Result<()> {
    let ok = !app.is_empty()
        && app.len() <= 40
        && app
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !app.starts_with('-')
        && !app.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::AppName {
            app: app.to_string(),
        })
    }
}

fn record_name(app: &str) -> String {
    format!("skiff-app.{app}")
}

fn revision_name(app: &str, revision: u64) -> String {
    format!("skiff-app.{app}.{revision}")
}

/// Reads and writes app records in one namespace.
#[derive(Clone)]
pub struct Inventory {
    secrets: Api<Secret>,
    namespace: String,
}

impl Inventory {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            secrets: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    fn err(&self, app: &str, error: impl std::fmt::Display) -> Error {
        Error::Inventory {
            app: app.to_string(),
            message: error.to_string(),
        }
    }

    fn decode<T: for<'de> Deserialize<'de>>(
        &self,
        app: &str,
        secret: &Secret,
        key: &str,
    ) -> Result<T> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| self.err(app, format!("Secret has no {key}")))?;
        serde_json::from_slice(&bytes.0).map_err(|e| self.err(app, e))
    }

    async fn put(
        &self,
        app: &str,
        name: String,
        label: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<()> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(label.to_string(), app.to_string())])),
                ..ObjectMeta::default()
            },
            type_: Some("skiff.dev/app".into()),
            data: Some(BTreeMap::from([(key.to_string(), ByteString(body))])),
            ..Secret::default()
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.secrets
            .patch(&name, &params, &Patch::Apply(&secret))
            .await
            .map_err(|e| self.err(app, crate::error::kube_message(&e)))?;
        Ok(())
    }

    /// The record of an app, if it was ever deployed here.
    pub async fn record(&self, app: &str) -> Result<Option<AppRecord>> {
        let secret = self
            .secrets
            .get_opt(&record_name(app))
            .await
            .map_err(|e| self.err(app, crate::error::kube_message(&e)))?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        let mut record: AppRecord = self.decode(app, &secret, "record.json")?;
        record.updated_at = secret.metadata.creation_timestamp.map(|t| t.0.to_string());
        Ok(Some(record))
    }

    /// Write the app record.
    pub async fn save_record(&self, record: &AppRecord) -> Result<()> {
        let body = serde_json::to_vec(record).map_err(|e| self.err(&record.app, e))?;
        self.put(
            &record.app,
            record_name(&record.app),
            RECORD_LABEL,
            "record.json",
            body,
        )
        .await
    }

    /// Write one revision (created or updated).
    pub async fn save_revision(&self, app: &str, revision: &Revision) -> Result<()> {
        let body = serde_json::to_vec(revision).map_err(|e| self.err(app, e))?;
        self.put(
            app,
            revision_name(app, revision.revision),
            REVISION_LABEL,
            "revision.json",
            body,
        )
        .await
    }

    /// One revision with its manifests.
    pub async fn revision(&self, app: &str, revision: u64) -> Result<Revision> {
        let secret = self
            .secrets
            .get_opt(&revision_name(app, revision))
            .await
            .map_err(|e| self.err(app, crate::error::kube_message(&e)))?
            .ok_or_else(|| Error::NoRevision {
                app: app.to_string(),
                revision,
            })?;
        let mut rev: Revision = self.decode(app, &secret, "revision.json")?;
        rev.created_at = secret.metadata.creation_timestamp.map(|t| t.0.to_string());
        Ok(rev)
    }

    /// Every revision of an app, oldest first.
    pub async fn revisions(&self, app: &str) -> Result<Vec<Revision>> {
        let params = ListParams::default().labels(&format!("{REVISION_LABEL}={app}"));
        let list = self
            .secrets
            .list(&params)
            .await
            .map_err(|e| self.err(app, crate::error::kube_message(&e)))?;
        let mut out = Vec::new();
        for secret in &list.items {
            let mut rev: Revision = self.decode(app, secret, "revision.json")?;
            rev.created_at = secret
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string());
            out.push(rev);
        }
        out.sort_by_key(|r| r.revision);
        Ok(out)
    }

    /// Every app recorded in this namespace.
    pub async fn apps(&self) -> Result<Vec<AppRecord>> {
        let params = ListParams::default().labels(RECORD_LABEL);
        let list = self
            .secrets
            .list(&params)
            .await
            .map_err(|e| self.err("*", crate::error::kube_message(&e)))?;
        let mut out = Vec::new();
        for secret in &list.items {
            let app = secret
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(RECORD_LABEL))
                .cloned()
                .unwrap_or_default();
            let mut record: AppRecord = self.decode(&app, secret, "record.json")?;
            record.updated_at = secret
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string());
            out.push(record);
        }
        out.sort_by(|a, b| a.app.cmp(&b.app));
        Ok(out)
    }

    /// Drop the oldest revisions beyond [`KEEP_REVISIONS`].
    pub async fn trim(&self, app: &str) -> Result<()> {
        let revisions = self.revisions(app).await?;
        if revisions.len() <= KEEP_REVISIONS {
            return Ok(());
        }
        let excess = revisions.len() - KEEP_REVISIONS;
        for rev in revisions.iter().take(excess) {
            self.delete_secret(app, &revision_name(app, rev.revision))
                .await?;
        }
        Ok(())
    }

    async fn delete_secret(&self, app: &str, name: &str) -> Result<()> {
        match self.secrets.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if crate::error::is_not_found(&e) => Ok(()),
            Err(e) => Err(self.err(app, crate::error::kube_message(&e))),
        }
    }

    /// Remove the record and every revision of an app.
    pub async fn forget(&self, app: &str) -> Result<()> {
        for rev in self.revisions(app).await? {
            self.delete_secret(app, &revision_name(app, rev.revision))
                .await?;
        }
        self.delete_secret(app, &record_name(app)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        assert!(validate_app_name("web-1").is_ok());
        assert!(validate_app_name("Web").is_err());
        assert!(validate_app_name("").is_err());
        assert!(validate_app_name("-a").is_err());
    }

    #[test]
    fn ids_display_and_compare_without_version() {
        let a = ResourceId {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("prod".into()),
            name: "web".into(),
        };
        assert_eq!(a.to_string(), "Deployment.apps prod/web");
        let b = ResourceId {
            api_version: "apps/v1beta2".into(),
            ..a.clone()
        };
        assert_eq!(a.key(), b.key());
        let ns = ResourceId {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: "prod".into(),
        };
        assert_eq!(ns.to_string(), "Namespace prod");
    }
}
