//! The deploy engine: resolve kinds, plan (dry-run server-side apply and diff against live
//! state), apply group by group with field manager `skiff`, wait for readiness, prune what left
//! the set, and keep the app record and revision history in the cluster. Also delete and
//! rollback, which are plans of the same shape.

use crate::diff;
use crate::error::{Error, Result, is_not_found, kube_message};
use crate::health::{Health, health};
use crate::inventory::{
    APP_LABEL, AppRecord, FIELD_MANAGER, Inventory, ResourceId, Revision, validate_app_name,
};
use crate::manifest::{Document, split_api_version};
use crate::order;
use crate::progress::Progress;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// How many requests run at once while planning, applying and waiting.
const CONCURRENCY: usize = 8;
/// Interval between readiness checks.
const POLL: Duration = Duration::from_millis(700);

/// What will happen to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Delete,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Delete => "delete",
        })
    }
}

/// One planned change.
#[derive(Debug, Clone)]
pub struct Change {
    pub id: ResourceId,
    pub action: Action,
    /// Unified diff against the live object (creations and updates).
    pub diff: String,
    /// A note for the reader, e.g. why the dry run was done differently.
    pub note: Option<String>,
    pub weight: i64,
}

/// A resource of the set, ready to be applied.
#[derive(Debug, Clone)]
struct Planned {
    id: ResourceId,
    weight: i64,
    object: Value,
    action: Action,
}

/// Everything a deploy will do, computed without changing the cluster.
#[derive(Debug, Clone)]
pub struct Plan {
    pub app: String,
    pub namespace: String,
    /// Creations, updates and unchanged resources in apply order, then deletions (prune).
    pub changes: Vec<Change>,
    pub revision: u64,
    pub description: String,
    resources: Vec<Planned>,
    previous: Option<AppRecord>,
}

impl Plan {
    /// Whether applying would change nothing.
    pub fn is_noop(&self) -> bool {
        self.changes.iter().all(|c| c.action == Action::Unchanged)
    }

    /// `1 create, 2 update, 3 unchanged, 0 delete`.
    pub fn summary(&self) -> String {
        let count = |a| self.changes.iter().filter(|c| c.action == a).count();
        format!(
            "{} create, {} update, {} unchanged, {} delete",
            count(Action::Create),
            count(Action::Update),
            count(Action::Unchanged),
            count(Action::Delete)
        )
    }
}

/// What a finished deploy did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub revision: u64,
    pub summary: String,
}

/// The live state of one app resource, for `inspect`.
#[derive(Debug, Clone)]
pub struct ResourceStatus {
    pub id: ResourceId,
    /// `None` when the resource is missing from the cluster.
    pub health: Option<Health>,
}

/// Where a resource kind is served.
#[derive(Debug, Clone)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

/// A connection to one cluster, with the default namespace (also where app records live).
pub struct Engine {
    client: kube::Client,
    namespace: String,
    inventory: Inventory,
    kinds: tokio::sync::Mutex<HashMap<(String, String), Option<Kind>>>,
    wait: bool,
}

fn api_err(id: &ResourceId, action: &'static str, error: &kube::Error) -> Error {
    Error::Api {
        id: id.to_string(),
        action,
        message: kube_message(error),
    }
}

impl Engine {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            inventory: Inventory::new(client.clone(), namespace),
            client,
            namespace: namespace.to_string(),
            kinds: tokio::sync::Mutex::new(HashMap::new()),
            wait: true,
        }
    }

    /// Do not wait for readiness after applying (CRDs are still waited for, since their
    /// custom resources cannot be applied before).
    pub fn without_wait(mut self) -> Self {
        self.wait = false;
        self
    }

    /// The default namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The app records in the namespace.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    async fn kind(&self, api_version: &str, kind: &str, refresh: bool) -> Result<Option<Kind>> {
        let key = (api_version.to_string(), kind.to_string());
        let mut kinds = self.kinds.lock().await;
        if !refresh && let Some(found) = kinds.get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = split_api_version(api_version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((resource, caps)) => Some(Kind {
                resource,
                namespaced: caps.scope == Scope::Namespaced,
            }),
            Err(e) if is_not_found(&e) => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(e) => {
                return Err(Error::Api {
                    id: format!("{kind} ({api_version})"),
                    action: "discovery",
                    message: kube_message(&e),
                });
            }
        };
        kinds.insert(key, found.clone());
        Ok(found)
    }

    /// The kind of a resource about to be applied. A kind from a CRD of this deploy may show
    /// up in discovery a moment after the CRD is established: ask again for a few seconds.
    async fn served_kind(&self, id: &ResourceId) -> Result<Kind> {
        if let Some(kind) = self.kind(&id.api_version, &id.kind, false).await? {
            return Ok(kind);
        }
        for _ in 0..20 {
            if let Some(kind) = self.kind(&id.api_version, &id.kind, true).await? {
                return Ok(kind);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(Error::UnknownKind {
            id: id.to_string(),
            kind: id.kind.clone(),
            api_version: id.api_version.clone(),
        })
    }

    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if kind.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }

    async fn live(&self, kind: &Kind, id: &ResourceId) -> Result<Option<Value>> {
        let api = self.api(kind, id.namespace.as_deref());
        match api.get_opt(&id.name).await {
            Ok(found) => Ok(found.map(|o| serde_json::to_value(o).unwrap_or_default())),
            Err(e) => Err(api_err(id, "get", &e)),
        }
    }

    async fn ssa(
        &self,
        kind: &Kind,
        id: &ResourceId,
        object: &Value,
        dry_run: bool,
    ) -> Result<Value, kube::Error> {
        let api = self.api(kind, id.namespace.as_deref());
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        if dry_run {
            params = params.dry_run();
        }
        let applied = api.patch(&id.name, &params, &Patch::Apply(object)).await?;
        Ok(serde_json::to_value(applied).unwrap_or_default())
    }

    /// Plan a deploy of `documents` as `app`: resolve, dry-run, diff, and find what to prune.
    /// Nothing in the cluster changes. Every problem found is reported at once.
    pub async fn plan(&self, app: &str, documents: &[Document], description: &str) -> Result<Plan> {
        validate_app_name(app)?;
        let previous = self.inventory.record(app).await?;
        let mut problems = Vec::new();

        // CRDs of the set, so their custom resources can be planned before they are served.
        let crd_kinds: HashSet<(String, String)> = documents
            .iter()
            .filter(|d| {
                d.group() == "apiextensions.k8s.io" && d.kind() == "CustomResourceDefinition"
            })
            .map(|d| {
                let spec = &d.object["spec"];
                (
                    spec["group"].as_str().unwrap_or_default().to_string(),
                    spec["names"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        // Namespaces the set creates (they may not exist yet).
        let set_namespaces: HashSet<&str> = documents
            .iter()
            .filter(|d| d.group().is_empty() && d.kind() == "Namespace")
            .map(Document::name)
            .collect();

        let mut resources: Vec<(Planned, Option<Kind>, String)> = Vec::new();
        let mut seen: HashMap<(String, String, Option<String>, String), String> = HashMap::new();
        for doc in documents {
            let kind = self.kind(doc.api_version(), doc.kind(), false).await?;
            let deferred = kind.is_none()
                && crd_kinds.contains(&(doc.group().to_string(), doc.kind().to_string()));
            if kind.is_none() && !deferred {
                problems.push(
                    Error::UnknownKind {
                        id: format!("{} ({})", doc.name(), doc.origin),
                        kind: doc.kind().to_string(),
                        api_version: doc.api_version().to_string(),
                    }
                    .to_string(),
                );
                continue;
            }
            // A custom resource whose CRD is not served yet is namespaced unless it says otherwise.
            let namespaced = kind.as_ref().map(|k| k.namespaced).unwrap_or_else(|| {
                documents
                    .iter()
                    .find(|d| {
                        d.kind() == "CustomResourceDefinition"
                            && d.object["spec"]["names"]["kind"].as_str() == Some(doc.kind())
                    })
                    .is_none_or(|crd| crd.object["spec"]["scope"].as_str() != Some("Cluster"))
            });
            let namespace =
                namespaced.then(|| doc.namespace().unwrap_or(&self.namespace).to_string());
            let id = ResourceId {
                api_version: doc.api_version().to_string(),
                kind: doc.kind().to_string(),
                namespace: namespace.clone(),
                name: doc.name().to_string(),
            };
            if let Some(first) = seen.insert(id.key(), doc.origin.clone()) {
                problems.push(
                    Error::Duplicate {
                        id: id.to_string(),
                        first,
                        second: doc.origin.clone(),
                    }
                    .to_string(),
                );
                continue;
            }
            if let Some(problem) = order::invalid_order_annotation(&doc.object) {
                problems.push(format!("{id} ({}): {problem}", doc.origin));
            }
            let mut object = doc.object.clone();
            if let Some(meta) = object["metadata"].as_object_mut() {
                match &namespace {
                    Some(ns) => meta.insert("namespace".into(), Value::String(ns.clone())),
                    None => meta.remove("namespace"),
                };
                let labels = meta
                    .entry("labels")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(labels) = labels.as_object_mut() {
                    labels.insert(APP_LABEL.into(), Value::String(app.to_string()));
                }
            }
            let weight = order::weight(doc.group(), doc.kind(), namespaced, &object);
            resources.push((
                Planned {
                    id,
                    weight,
                    object,
                    action: Action::Create,
                },
                kind,
                doc.origin.clone(),
            ));
        }

        // Dry-run every resource that is served; compare with the live object.
        let checks = stream::iter(resources.iter().map(|(planned, kind, origin)| {
            let set_namespaces = &set_namespaces;
            async move {
                let Some(kind) = kind else {
                    let note = "its CustomResourceDefinition is in the set: validated when applied";
                    return Ok::<_, String>((
                        Action::Create,
                        diff::unified(None, &planned.object),
                        Some(note.to_string()),
                    ));
                };
                let live = self
                    .live(kind, &planned.id)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(live) = &live {
                    let owner = live["metadata"]["labels"][APP_LABEL].as_str();
                    if let Some(owner) = owner.filter(|o| *o != app) {
                        return Err(Error::Ownership {
                            id: planned.id.to_string(),
                            owner: owner.to_string(),
                            app: app.to_string(),
                        }
                        .to_string());
                    }
                }
                // A namespace created by this set does not exist yet: validate the object in
                // the default namespace instead (the server checks the same schema).
                let mut note = None;
                let mut target = planned.id.clone();
                let mut object = planned.object.clone();
                if let Some(ns) = &planned.id.namespace
                    && live.is_none()
                    && set_namespaces.contains(ns.as_str())
                    && !self.namespace_exists(ns).await.map_err(|e| e.to_string())?
                {
                    target.namespace = Some(self.namespace.clone());
                    object["metadata"]["namespace"] = Value::String(self.namespace.clone());
                    note = Some(format!(
                        "namespace {ns} is created by this deploy: dry run done in {}",
                        self.namespace
                    ));
                }
                let dry = self
                    .ssa(kind, &target, &object, true)
                    .await
                    .map_err(|e| format!("{} ({origin}): {}", planned.id, kube_message(&e)))?;
                match live {
                    None => Ok((Action::Create, diff::unified(None, &planned.object), note)),
                    Some(live) if diff::normalize(&live) == diff::normalize(&dry) => {
                        Ok((Action::Unchanged, String::new(), note))
                    }
                    Some(live) => Ok((Action::Update, diff::unified(Some(&live), &dry), note)),
                }
            }
        }))
        .buffered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;

        let mut changes = Vec::new();
        let mut planned_set = Vec::new();
        for ((mut planned, _, _), check) in resources.into_iter().zip(checks) {
            match check {
                Ok((action, diff, note)) => {
                    planned.action = action;
                    changes.push(Change {
                        id: planned.id.clone(),
                        action,
                        diff,
                        note,
                        weight: planned.weight,
                    });
                    planned_set.push(planned);
                }
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Rejected { problems });
        }
        changes.sort_by(|a, b| a.weight.cmp(&b.weight).then_with(|| a.id.cmp(&b.id)));
        planned_set.sort_by(|a, b| a.weight.cmp(&b.weight).then_with(|| a.id.cmp(&b.id)));

        // Prune: what the app owned before and is no longer in the set.
        let keep: HashSet<_> = planned_set.iter().map(|p| p.id.key()).collect();
        if let Some(record) = &previous {
            let mut gone: Vec<&ResourceId> = record
                .resources
                .iter()
                .filter(|id| !keep.contains(&id.key()))
                .collect();
            gone.sort_by_key(|id| std::cmp::Reverse(static_weight(id)));
            for id in gone {
                if self.owned_live(app, id).await?.is_some() {
                    changes.push(Change {
                        id: id.clone(),
                        action: Action::Delete,
                        diff: String::new(),
                        note: None,
                        weight: static_weight(id),
                    });
                }
            }
        }
        let revision = previous.as_ref().map(|r| r.revision).unwrap_or(0) + 1;
        Ok(Plan {
            app: app.to_string(),
            namespace: self.namespace.clone(),
            changes,
            revision,
            description: description.to_string(),
            resources: planned_set,
            previous,
        })
    }

    async fn namespace_exists(&self, name: &str) -> Result<bool> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        api.get_opt(name)
            .await
            .map(|n| n.is_some())
            .map_err(|e| Error::Api {
                id: format!("Namespace {name}"),
                action: "get",
                message: kube_message(&e),
            })
    }

    /// The live object of a resource, if it exists and belongs to `app`.
    async fn owned_live(&self, app: &str, id: &ResourceId) -> Result<Option<(Kind, Value)>> {
        let Some(kind) = self.kind(&id.api_version, &id.kind, false).await? else {
            return Ok(None);
        };
        let Some(live) = self.live(&kind, id).await? else {
            return Ok(None);
        };
        if live["metadata"]["labels"][APP_LABEL].as_str() != Some(app) {
            return Ok(None);
        }
        Ok(Some((kind, live)))
    }

    /// Carry out a plan: record the revision, apply and wait group by group, prune, and record
    /// the outcome. Stops at the first group that fails, before the next group is applied.
    pub async fn apply(
        &self,
        plan: &Plan,
        timeout: Duration,
        progress: &dyn Progress,
    ) -> Result<Outcome> {
        let deadline = Instant::now() + timeout;
        let ids: Vec<ResourceId> = plan.resources.iter().map(|p| p.id.clone()).collect();
        let mut revision = Revision {
            revision: plan.revision,
            status: "applying".into(),
            description: format!("{} ({})", plan.description, plan.summary()),
            message: None,
            resources: ids.clone(),
            manifests: plan.resources.iter().map(|p| p.object.clone()).collect(),
            created_at: None,
        };
        // Until the deploy is done the app may own both the old and the new resources.
        let mut union = ids.clone();
        if let Some(previous) = &plan.previous {
            let known: HashSet<_> = ids.iter().map(ResourceId::key).collect();
            union.extend(
                previous
                    .resources
                    .iter()
                    .filter(|id| !known.contains(&id.key()))
                    .cloned(),
            );
        }
        let mut record = AppRecord {
            app: plan.app.clone(),
            namespace: plan.namespace.clone(),
            revision: plan.revision,
            status: "applying".into(),
            resources: union,
            updated_at: None,
        };
        self.inventory.save_revision(&plan.app, &revision).await?;
        self.inventory.save_record(&record).await?;

        let result = self.run(plan, deadline, timeout, progress).await;
        let (status, message) = match &result {
            Ok(()) => ("succeeded", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        revision.status = status.into();
        revision.message = message;
        record.status = status.into();
        if result.is_ok() {
            record.resources = ids;
        }
        self.inventory.save_revision(&plan.app, &revision).await?;
        self.inventory.save_record(&record).await?;
        self.inventory.trim(&plan.app).await?;
        result?;
        Ok(Outcome {
            revision: plan.revision,
            summary: plan.summary(),
        })
    }

    async fn run(
        &self,
        plan: &Plan,
        deadline: Instant,
        timeout: Duration,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut groups: BTreeMap<i64, Vec<&Planned>> = BTreeMap::new();
        for planned in &plan.resources {
            if planned.action != Action::Unchanged {
                groups.entry(planned.weight).or_default().push(planned);
            }
        }
        for (weight, group) in groups {
            progress.group(weight, group.len());
            let applied: Vec<(Kind, &Planned, bool)> =
                stream::iter(group.into_iter().map(|planned| async move {
                    // Kinds from CRDs of this set are served only now.
                    let kind = self.served_kind(&planned.id).await?;
                    let applied = self
                        .ssa(&kind, &planned.id, &planned.object, false)
                        .await
                        .map_err(|e| api_err(&planned.id, "apply", &e))?;
                    let what = if planned.action == Action::Create {
                        "created"
                    } else {
                        "configured"
                    };
                    progress.applied(&planned.id, what);
                    // The object the server answered with may already be ready (kinds without
                    // status); only the others are polled.
                    let ready =
                        health(planned.id.group(), &planned.id.kind, &applied) == Health::Ready;
                    if ready {
                        progress.ready(&planned.id);
                    }
                    Ok::<_, Error>((kind, planned, ready))
                }))
                .buffered(CONCURRENCY)
                .try_collect()
                .await?;
            let pending: Vec<(Kind, &Planned)> = applied
                .into_iter()
                .filter(|(_, planned, ready)| {
                    !ready && (self.wait || planned.id.kind == "CustomResourceDefinition")
                })
                .map(|(kind, planned, _)| (kind, planned))
                .collect();
            self.wait(&pending, deadline, timeout, progress).await?;
        }
        let gone: Vec<ResourceId> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Delete)
            .map(|c| c.id.clone())
            .collect();
        self.delete_ordered(&plan.app, &gone, progress).await
    }

    /// Delete resources group by group, highest weight first, each group concurrently.
    async fn delete_ordered(
        &self,
        app: &str,
        ids: &[ResourceId],
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut groups: BTreeMap<std::cmp::Reverse<i64>, Vec<&ResourceId>> = BTreeMap::new();
        for id in ids {
            groups
                .entry(std::cmp::Reverse(static_weight(id)))
                .or_default()
                .push(id);
        }
        for group in groups.into_values() {
            stream::iter(group.into_iter().map(|id| async move {
                self.delete_one(app, id).await?;
                progress.deleted(id);
                Ok::<_, Error>(())
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        }
        Ok(())
    }

    async fn delete_one(&self, app: &str, id: &ResourceId) -> Result<()> {
        let Some((kind, _)) = self.owned_live(app, id).await? else {
            return Ok(());
        };
        let api = self.api(&kind, id.namespace.as_deref());
        match api.delete(&id.name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_err(id, "delete", &e)),
        }
    }

    /// Wait until every resource is ready, one fails, or the deadline passes.
    async fn wait(
        &self,
        resources: &[(Kind, &Planned)],
        deadline: Instant,
        timeout: Duration,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut pending: Vec<&(Kind, &Planned)> = resources.iter().collect();
        let mut last: HashMap<ResourceId, String> = HashMap::new();
        let mut lives: HashMap<ResourceId, Value> = HashMap::new();
        loop {
            let verdicts: Vec<Result<(Health, Option<Value>)>> =
                stream::iter(pending.iter().map(|(kind, planned)| async move {
                    let live = self.live(kind, &planned.id).await?;
                    Ok(match live {
                        Some(live) => (
                            health(planned.id.group(), &planned.id.kind, &live),
                            Some(live),
                        ),
                        None => (Health::Progressing("not found".into()), None),
                    })
                }))
                .buffered(CONCURRENCY)
                .collect()
                .await;
            let mut still = Vec::new();
            for (entry, verdict) in pending.into_iter().zip(verdicts) {
                let planned = entry.1;
                let (verdict, live) = verdict?;
                if let Some(live) = live {
                    lives.insert(planned.id.clone(), live);
                }
                match verdict {
                    Health::Ready => progress.ready(&planned.id),
                    Health::Failed(reason) => {
                        progress.failed(&planned.id, &reason);
                        let why = self.explain(planned, lives.get(&planned.id)).await;
                        return Err(Error::NotReady {
                            id: planned.id.to_string(),
                            reason: join_reason(&reason, &why),
                        });
                    }
                    Health::Progressing(message) => {
                        progress.waiting(&planned.id, &message);
                        last.insert(planned.id.clone(), message);
                        still.push(entry);
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut reasons = Vec::new();
                for (_, planned) in &pending {
                    let message = last.get(&planned.id).cloned().unwrap_or_default();
                    progress.failed(&planned.id, &format!("timed out: {message}"));
                    let why = self.explain(planned, lives.get(&planned.id)).await;
                    reasons.push(format!("{} ({})", planned.id, join_reason(&message, &why)));
                }
                return Err(Error::Timeout {
                    seconds: timeout.as_secs(),
                    pending: reasons,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Why a resource is not ready: failing conditions of its pods and its recent events.
    async fn explain(&self, planned: &Planned, live: Option<&Value>) -> Vec<String> {
        let mut out = Vec::new();
        let Some(ns) = planned.id.namespace.as_deref() else {
            return out;
        };
        let mut names = vec![planned.id.name.clone()];
        // The live object has server-made selectors too (a Job's `controller-uid`).
        let source = live.unwrap_or(&planned.object);
        let selector = source["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty());
        if let Some(selector) = selector {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
                for pod in list.items.iter().take(3) {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
                    for c in conditions.into_iter().flatten() {
                        if c.status == "False" {
                            out.push(format!(
                                "pod {name}: {}=False {} {}",
                                c.type_,
                                c.reason.clone().unwrap_or_default(),
                                c.message.clone().unwrap_or_default()
                            ));
                        }
                    }
                    names.push(name);
                }
            }
        }
        let events: Api<Event> = Api::namespaced(self.client.clone(), ns);
        for name in names {
            let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
            if let Ok(list) = events.list(&params).await {
                let mut items = list.items;
                items.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
                for event in items.iter().rev().take(3) {
                    out.push(format!(
                        "event on {}: {} {}",
                        name,
                        event.reason.clone().unwrap_or_default(),
                        event.message.clone().unwrap_or_default().trim()
                    ));
                }
            }
        }
        out.dedup();
        out
    }

    /// Plan a rollback: the manifests of revision `to`, deployed as a new revision.
    pub async fn plan_rollback(&self, app: &str, to: u64) -> Result<Plan> {
        validate_app_name(app)?;
        let revision = self.inventory.revision(app, to).await?;
        let documents: Vec<Document> = revision
            .manifests
            .into_iter()
            .enumerate()
            .map(|(i, object)| Document {
                origin: format!("revision {to}#{}", i + 1),
                object,
            })
            .collect();
        self.plan(app, &documents, &format!("rollback to revision {to}"))
            .await
    }

    /// The resources an app owns, in deletion order (for `delete`).
    pub async fn plan_delete(&self, app: &str) -> Result<Vec<ResourceId>> {
        validate_app_name(app)?;
        let record = self
            .inventory
            .record(app)
            .await?
            .ok_or_else(|| Error::AppNotFound {
                app: app.to_string(),
                namespace: self.namespace.clone(),
            })?;
        let mut ids = Vec::new();
        for id in record.resources {
            if self.owned_live(app, &id).await?.is_some() {
                ids.push(id);
            }
        }
        ids.sort_by_key(|id| std::cmp::Reverse(static_weight(id)));
        Ok(ids)
    }

    /// Delete an app: its resources (last group first) and its record.
    pub async fn delete(
        &self,
        app: &str,
        ids: &[ResourceId],
        progress: &dyn Progress,
    ) -> Result<()> {
        self.delete_ordered(app, ids, progress).await?;
        self.inventory.forget(app).await
    }

    /// The live health of every resource of an app.
    pub async fn status(&self, app: &str) -> Result<(AppRecord, Vec<ResourceStatus>)> {
        validate_app_name(app)?;
        let record = self
            .inventory
            .record(app)
            .await?
            .ok_or_else(|| Error::AppNotFound {
                app: app.to_string(),
                namespace: self.namespace.clone(),
            })?;
        let mut out = Vec::new();
        for id in &record.resources {
            let health = self
                .owned_live(app, id)
                .await?
                .map(|(_, live)| health(id.group(), &id.kind, &live));
            out.push(ResourceStatus {
                id: id.clone(),
                health,
            });
        }
        Ok((record, out))
    }
}

fn join_reason(reason: &str, why: &[String]) -> String {
    if why.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}\n    {}", why.join("\n    "))
    }
}

/// The weight of a recorded resource (no annotations at hand), for deletion order.
fn static_weight(id: &ResourceId) -> i64 {
    order::weight(id.group(), &id.kind, id.namespace.is_some(), &Value::Null)
}
