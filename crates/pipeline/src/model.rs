//! The typed `.drone.yml` model and its reader. The reader walks the position-keeping YAML tree
//! and records every problem it meets as a [`Diagnostic`] instead of stopping at the first, so
//! that `skiff lint` can print them all. Unknown keys that look like typos of a known key are
//! errors with a suggestion; other unknown keys are warnings (Drone silently ignores both).

use crate::cond::{Condition, Conditions, compile_glob};
use crate::error::{Diagnostic, Pos};
use crate::plan::{BackendKind, FailurePolicy, Platform, PullPolicy, Resources, VolumeSource};
use crate::settings::{encode_settings, yaml11_bool, yaml11_int};
use crate::yaml::{Entry, Node, Value};
use std::collections::BTreeMap;

/// A parsed file: its resources in document order.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub resources: Vec<Resource>,
}

impl Manifest {
    pub fn pipelines(&self) -> impl Iterator<Item = &Pipeline> {
        self.resources.iter().filter_map(|r| match r {
            Resource::Pipeline(p) => Some(p.as_ref()),
            _ => None,
        })
    }

    pub fn secrets(&self) -> impl Iterator<Item = &SecretDoc> {
        self.resources.iter().filter_map(|r| match r {
            Resource::Secret(s) => Some(s),
            _ => None,
        })
    }
}

#[derive(Debug, Clone)]
pub enum Resource {
    Pipeline(Box<Pipeline>),
    Secret(SecretDoc),
    Signature(SignatureDoc),
}

/// `kind: secret`: either encrypted `data` or a `get` from a secret extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretDoc {
    pub name: String,
    pub data: Option<String>,
    pub get: Option<SecretGet>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretGet {
    pub path: String,
    pub name: String,
}

/// `kind: signature` (the HMAC of a protected repository's file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureDoc {
    pub hmac: String,
}

/// An environment value: literal text, or the name of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Secret(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub pos: Pos,
    pub name: String,
    pub name_pos: Pos,
    pub backend: BackendKind,
    /// `type:` as written (`docker` when absent).
    pub type_name: String,
    pub platform: Platform,
    pub workspace_base: String,
    pub workspace_path: String,
    pub clone_disable: bool,
    pub clone_depth: Option<u32>,
    pub clone_retries: Option<u32>,
    pub clone_skip_verify: bool,
    pub clone_trace: bool,
    pub steps: Vec<StepSpec>,
    pub services: Vec<StepSpec>,
    pub volumes: Vec<VolumeSpec>,
    pub trigger: Conditions,
    pub depends_on: Vec<Named>,
    pub node: BTreeMap<String, String>,
    pub concurrency: Option<u64>,
    pub image_pull_secrets: Vec<String>,
    pub environment: Vec<(String, EnvValue)>,
    /// False for pipeline types of other Drone runners (ssh, vm, digitalocean, ...): kept so
    /// that dependencies on them resolve, but never compiled or run.
    pub supported: bool,
}

/// Pipeline types of Drone runners that Skiff does not provide.
const OTHER_RUNNER_TYPES: &[&str] = &[
    "ssh",
    "vm",
    "digitalocean",
    "macstadium",
    "aws",
    "nomad",
    "windows",
    "podman",
];

#[derive(Debug, Clone, Default)]
pub struct StepSpec {
    pub pos: Pos,
    pub name: String,
    pub name_pos: Pos,
    pub image: Option<String>,
    pub pull: PullPolicy,
    pub commands: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub environment: Vec<(String, EnvValue)>,
    /// Encoded `PLUGIN_*` variables.
    pub settings_env: BTreeMap<String, String>,
    /// `PLUGIN_*` variables from `from_secret`: env name → secret name.
    pub settings_secrets: BTreeMap<String, String>,
    pub has_settings: bool,
    pub privileged: bool,
    pub privileged_pos: Pos,
    pub volumes: Vec<MountSpec>,
    pub detach: bool,
    pub failure: FailurePolicy,
    pub user: Option<String>,
    pub network_mode: Option<String>,
    pub shm_size: Option<u64>,
    pub resources: Resources,
    pub depends_on: Vec<Named>,
    pub when: Conditions,
    pub working_dir: Option<String>,
    pub shell: Option<String>,
    /// Keys only trusted repositories may use (besides `privileged`), with their position.
    pub trusted_keys: Vec<Named>,
    /// Known keys that appear misspelt (already reported), so follow-up errors can be skipped.
    pub misspelt: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub name: String,
    pub path: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub pos: Pos,
    /// `None` for kinds Skiff does not support (kubernetes `claim`, `config_map`, `secret`).
    pub source: Option<VolumeSource>,
}

const PIPELINE_KEYS: &[&str] = &[
    "kind",
    "type",
    "name",
    "platform",
    "workspace",
    "clone",
    "steps",
    "services",
    "volumes",
    "trigger",
    "depends_on",
    "node",
    "concurrency",
    "image_pull_secrets",
    "environment",
];
/// Keys of other runners (kubernetes, digitalocean, ...) that Skiff accepts and ignores.
const PIPELINE_IGNORED: &[&str] = &[
    "metadata",
    "service_account_name",
    "service_account",
    "node_selector",
    "tolerations",
    "dns_config",
    "host_aliases",
    "node_name",
    "version",
    "pool",
    "server",
    "token",
    "labels",
];
const STEP_KEYS: &[&str] = &[
    "name",
    "image",
    "pull",
    "commands",
    "entrypoint",
    "command",
    "environment",
    "settings",
    "privileged",
    "volumes",
    "detach",
    "failure",
    "user",
    "network_mode",
    "shm_size",
    "resources",
    "depends_on",
    "when",
    "working_dir",
    "shell",
    "devices",
    "dns",
    "dns_search",
    "extra_hosts",
];
const STEP_IGNORED: &[&str] = &[
    "cpu_period",
    "cpu_quota",
    "cpu_shares",
    "cpu_set",
    "mem_limit",
    "memswap_limit",
    "ports",
    "group",
    "secrets",
    "security_context",
    "image_pull_policy",
    "network",
];
const CONDITION_KEYS: &[&str] = &[
    "action", "branch", "cron", "event", "instance", "paths", "ref", "repo", "status", "target",
];
const EVENTS: &[&str] = &[
    "push",
    "pull_request",
    "tag",
    "promote",
    "rollback",
    "cron",
    "custom",
];

/// Reads typed values out of the tree, collecting diagnostics.
pub struct Reader<'a> {
    pub file: &'a str,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a str) -> Self {
        Self {
            file,
            diags: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(self.file, pos, msg));
    }

    pub fn warn(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::warning(self.file, pos, msg));
    }

    /// Report an unknown key, as an error when it looks like a typo of a known one.
    fn unknown_key(&mut self, e: &Entry, known: &[&str], ignored: &[&str], what: &str) {
        self.unknown_key_meant(e, known, ignored, what);
    }

    /// [`Self::unknown_key`], returning the known key it probably meant.
    fn unknown_key_meant(
        &mut self,
        e: &Entry,
        known: &[&str],
        ignored: &[&str],
        what: &str,
    ) -> Option<String> {
        if e.key == "secrets" {
            self.warn(
                e.key_pos,
                format!("`secrets` in {what} is Drone 0.8 syntax and is ignored; use `environment` with `from_secret`"),
            );
            return None;
        }
        if ignored.contains(&e.key.as_str()) {
            self.warn(
                e.key_pos,
                format!(
                    "`{}` in {what} is not supported by Skiff and is ignored",
                    e.key
                ),
            );
            return None;
        }
        match suggest(&e.key, known) {
            Some(s) => {
                self.error(
                    e.key_pos,
                    format!("unknown key `{}` in {what}; did you mean `{s}`?", e.key),
                );
                Some(s.to_string())
            }
            None => {
                self.warn(
                    e.key_pos,
                    format!(
                        "unknown key `{}` in {what} is ignored (as Drone does)",
                        e.key
                    ),
                );
                None
            }
        }
    }

    fn entries<'n>(&mut self, node: &'n Node, what: &str) -> &'n [Entry] {
        match &node.value {
            Value::Map(e) => e,
            Value::Null => &[],
            _ => {
                self.error(
                    node.pos,
                    format!("{what} must be a mapping, found {}", node.kind_name()),
                );
                &[]
            }
        }
    }

    fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } => Some(text.clone()),
            Value::Null => None,
            _ => {
                self.error(
                    node.pos,
                    format!("`{key}` must be a string, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, key: &str) -> bool {
        match &node.value {
            Value::Null => false,
            Value::Scalar { text, .. } => match yaml11_bool(text) {
                Some(b) => b,
                None => {
                    self.error(
                        node.pos,
                        format!("`{key}` must be true or false, found `{text}`"),
                    );
                    false
                }
            },
            _ => {
                self.error(node.pos, format!("`{key}` must be true or false"));
                false
            }
        }
    }

    fn uint(&mut self, node: &Node, key: &str) -> Option<u64> {
        match &node.value {
            Value::Null => None,
            Value::Scalar { text, .. } => {
                match yaml11_int(text).and_then(|i| u64::try_from(i).ok()) {
                    Some(v) => Some(v),
                    None => {
                        self.error(
                            node.pos,
                            format!("`{key}` must be a non-negative integer, found `{text}`"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.error(node.pos, format!("`{key}` must be an integer"));
                None
            }
        }
    }

    fn u32(&mut self, node: &Node, key: &str) -> Option<u32> {
        let v = self.uint(node, key)?;
        match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                self.error(node.pos, format!("`{key}` is too large"));
                None
            }
        }
    }

    /// A string or a list of strings (Drone's string-slice fields).
    fn strings(&mut self, node: &Node, key: &str) -> Vec<String> {
        match &node.value {
            Value::Null => vec![],
            Value::Scalar { text, .. } => vec![text.clone()],
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| match &i.value {
                    Value::Scalar { text, .. } => Some(text.clone()),
                    Value::Null => None,
                    _ => {
                        self.error(i.pos, format!("items of `{key}` must be strings"));
                        None
                    }
                })
                .collect(),
            Value::Map(_) => {
                self.error(
                    node.pos,
                    format!("`{key}` must be a string or a list of strings"),
                );
                vec![]
            }
        }
    }

    fn named_list(&mut self, node: &Node, key: &str) -> Vec<Named> {
        match &node.value {
            Value::Null => vec![],
            Value::Scalar { text, .. } => vec![Named {
                name: text.clone(),
                pos: node.pos,
            }],
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| match &i.value {
                    Value::Scalar { text, .. } => Some(Named {
                        name: text.clone(),
                        pos: i.pos,
                    }),
                    _ => {
                        self.error(i.pos, format!("items of `{key}` must be names"));
                        None
                    }
                })
                .collect(),
            Value::Map(_) => {
                self.error(node.pos, format!("`{key}` must be a list of names"));
                vec![]
            }
        }
    }

    fn condition(&mut self, node: &Node, key: &str) -> Condition {
        let mut c = Condition::default();
        match &node.value {
            Value::Map(entries) => {
                for e in entries {
                    match e.key.as_str() {
                        "include" => c.include = self.strings(&e.value, "include"),
                        "exclude" => c.exclude = self.strings(&e.value, "exclude"),
                        _ => self.unknown_key(e, &["include", "exclude"], &[], &format!("`{key}`")),
                    }
                }
            }
            _ => c.include = self.strings(node, key),
        }
        for p in c.include.iter().chain(c.exclude.iter()) {
            if compile_glob(p).is_none() {
                self.warn(
                    node.pos,
                    format!("`{key}` pattern `{p}` is not a valid glob and never matches"),
                );
            }
        }
        c
    }

    /// A `when:` or `trigger:` block.
    fn conditions(&mut self, node: &Node, what: &str) -> Conditions {
        let mut c = Conditions::default();
        for e in self.entries(node, &format!("`{what}`")) {
            let v = &e.value;
            match e.key.as_str() {
                "action" => c.action = self.condition(v, "action"),
                "branch" => c.branch = self.condition(v, "branch"),
                "cron" => c.cron = self.condition(v, "cron"),
                "event" => {
                    c.event = self.condition(v, "event");
                    for ev in c.event.include.iter().chain(c.event.exclude.iter()) {
                        if !EVENTS.contains(&ev.as_str())
                            && compile_glob(ev).is_some()
                            && !ev.contains(['*', '?', '[', '{'])
                        {
                            let hint = suggest(ev, EVENTS)
                                .map(|s| format!("; did you mean `{s}`?"))
                                .unwrap_or_else(|| format!("; events are {}", EVENTS.join(", ")));
                            self.warn(v.pos, format!("unknown event `{ev}` never matches{hint}"));
                        }
                    }
                }
                "instance" => {
                    c.instance = self.condition(v, "instance");
                    if what == "trigger" {
                        self.warn(
                            e.key_pos,
                            "`trigger.instance` is never evaluated by Drone; Skiff ignores it too",
                        );
                    }
                }
                "paths" => {
                    c.paths = self.condition(v, "paths");
                    self.warn(
                        e.key_pos,
                        format!("Drone ignores `{what}.paths`; Skiff evaluates it against the changed files when it knows them"),
                    );
                }
                "ref" => c.ref_ = self.condition(v, "ref"),
                "repo" => c.repo = self.condition(v, "repo"),
                "status" => {
                    c.status = self.condition(v, "status");
                    for s in c.status.include.iter().chain(c.status.exclude.iter()) {
                        if s != "success" && s != "failure" {
                            self.warn(
                                v.pos,
                                format!("status `{s}` is neither `success` nor `failure`"),
                            );
                        }
                    }
                }
                "target" => c.target = self.condition(v, "target"),
                _ => self.unknown_key(e, CONDITION_KEYS, &[], &format!("`{what}`")),
            }
        }
        c
    }

    fn environment(&mut self, node: &Node) -> Vec<(String, EnvValue)> {
        let mut out = Vec::new();
        for e in self.entries(node, "`environment`") {
            let value = match &e.value.value {
                Value::Null => EnvValue::Plain(String::new()),
                Value::Scalar { text, .. } => EnvValue::Plain(text.clone()),
                Value::Map(_) => match e.value.get("from_secret").and_then(Node::scalar) {
                    Some(s) => EnvValue::Secret(s.to_string()),
                    None => {
                        self.error(
                            e.value.pos,
                            format!(
                                "environment `{}` must be a string or `from_secret: NAME`",
                                e.key
                            ),
                        );
                        continue;
                    }
                },
                Value::Seq(_) => {
                    self.error(
                        e.value.pos,
                        format!("environment `{}` must be a string, found a list", e.key),
                    );
                    continue;
                }
            };
            out.push((e.key.clone(), value));
        }
        out
    }
}

/// The closest known key within a small edit distance.
pub fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let limit = match word.chars().count() {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    // Optimal string alignment distance: insertions, deletions, substitutions and adjacent
    // transpositions ("comamnds") each cost one.
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// Read one document into a resource; `None` when it cannot be used at all.
pub fn read_resource(r: &mut Reader<'_>, root: &Node) -> Option<Resource> {
    if root.entries().is_none() {
        r.error(
            root.pos,
            format!("a document must be a mapping, found {}", root.kind_name()),
        );
        return None;
    }
    if root.get("pipeline").is_some() && root.get("kind").is_none() {
        r.error(
            root.pos,
            "this looks like a Drone 0.8 file (top-level `pipeline:`); convert it to the 1.x format with `kind: pipeline` and `steps:`",
        );
        return None;
    }
    let kind = match root.get("kind") {
        Some(k) => r.string(k, "kind").unwrap_or_default(),
        None => {
            r.error(
                root.pos,
                "missing `kind` (expected `pipeline`, `secret` or `signature`)",
            );
            return None;
        }
    };
    match kind.as_str() {
        "pipeline" => read_pipeline(r, root).map(|p| Resource::Pipeline(Box::new(p))),
        "secret" => read_secret(r, root).map(Resource::Secret),
        "signature" => {
            let mut hmac = String::new();
            for e in root.entries().unwrap_or(&[]) {
                match e.key.as_str() {
                    "kind" => {}
                    "hmac" => hmac = r.string(&e.value, "hmac").unwrap_or_default(),
                    _ => r.unknown_key(e, &["kind", "hmac"], &[], "the signature"),
                }
            }
            Some(Resource::Signature(SignatureDoc { hmac }))
        }
        "approval" | "deployment" | "template" => {
            r.warn(
                root.pos,
                format!("`kind: {kind}` is not supported and is ignored"),
            );
            None
        }
        other => {
            let hint = suggest(other, &["pipeline", "secret", "signature"])
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let pos = root.get("kind").map_or(root.pos, |k| k.pos);
            r.error(pos, format!("unknown kind `{other}`{hint}"));
            None
        }
    }
}

fn read_secret(r: &mut Reader<'_>, root: &Node) -> Option<SecretDoc> {
    let mut s = SecretDoc::default();
    for e in root.entries().unwrap_or(&[]) {
        match e.key.as_str() {
            "kind" | "type" => {}
            "name" => s.name = r.string(&e.value, "name").unwrap_or_default(),
            "data" => s.data = r.string(&e.value, "data"),
            "get" => {
                let mut g = SecretGet::default();
                for ge in r.entries(&e.value, "`get`") {
                    match ge.key.as_str() {
                        "path" => g.path = r.string(&ge.value, "path").unwrap_or_default(),
                        "name" => g.name = r.string(&ge.value, "name").unwrap_or_default(),
                        _ => r.unknown_key(ge, &["path", "name"], &[], "`get`"),
                    }
                }
                s.get = Some(g);
            }
            _ => r.unknown_key(
                e,
                &["kind", "type", "name", "data", "get"],
                &[],
                "the secret",
            ),
        }
    }
    if s.name.is_empty() {
        r.error(root.pos, "a secret needs a `name`");
    }
    if s.data.is_none() && s.get.is_none() {
        r.error(
            root.pos,
            format!("secret `{}` needs `data` or `get`", s.name),
        );
    }
    Some(s)
}

fn read_pipeline(r: &mut Reader<'_>, root: &Node) -> Option<Pipeline> {
    let mut p = Pipeline {
        pos: root.pos,
        name: "default".into(),
        name_pos: root.pos,
        backend: BackendKind::Docker,
        type_name: "docker".into(),
        platform: Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            version: None,
        },
        workspace_base: String::new(),
        workspace_path: String::new(),
        clone_disable: false,
        clone_depth: None,
        clone_retries: None,
        clone_skip_verify: false,
        clone_trace: false,
        steps: vec![],
        services: vec![],
        volumes: vec![],
        trigger: Conditions::default(),
        depends_on: vec![],
        node: BTreeMap::new(),
        concurrency: None,
        image_pull_secrets: vec![],
        environment: vec![],
        supported: true,
    };
    // The type decides how steps are read, so take it first.
    if let Some(t) = root.get("type") {
        let t_text = r.string(t, "type").unwrap_or_default();
        match t_text.as_str() {
            "" | "docker" => {}
            "kubernetes" => p.backend = BackendKind::Kubernetes,
            "exec" => p.backend = BackendKind::Exec,
            other if OTHER_RUNNER_TYPES.contains(&other) => {
                let name = root.get("name").and_then(Node::scalar).unwrap_or("default");
                r.warn(
                    t.pos,
                    format!("pipeline `{name}` has type `{other}`, which Skiff does not run; it is skipped"),
                );
                p.supported = false;
            }
            other => {
                let hint = suggest(other, &["docker", "kubernetes", "exec"])
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_else(|| {
                        "; Skiff runs `docker`, `kubernetes` and `exec` pipelines".into()
                    });
                r.error(t.pos, format!("unsupported pipeline type `{other}`{hint}"));
                return None;
            }
        }
        if !t_text.is_empty() {
            p.type_name = t_text;
        }
    }
    for e in root.entries().unwrap_or(&[]) {
        let v = &e.value;
        match e.key.as_str() {
            "kind" | "type" => {}
            "name" => {
                if let Some(n) = r.string(v, "name") {
                    p.name = n;
                    p.name_pos = v.pos;
                }
            }
            "platform" => {
                for pe in r.entries(v, "`platform`") {
                    let val = r.string(&pe.value, &pe.key);
                    match pe.key.as_str() {
                        "os" => p.platform.os = val.unwrap_or_else(|| "linux".into()),
                        "arch" => p.platform.arch = val.unwrap_or_else(|| "amd64".into()),
                        "variant" => p.platform.variant = val,
                        "version" => p.platform.version = val,
                        _ => r.unknown_key(
                            pe,
                            &["os", "arch", "variant", "version"],
                            &[],
                            "`platform`",
                        ),
                    }
                }
            }
            "workspace" => {
                for we in r.entries(v, "`workspace`") {
                    match we.key.as_str() {
                        "base" => {
                            p.workspace_base = r.string(&we.value, "base").unwrap_or_default()
                        }
                        "path" => {
                            p.workspace_path = r.string(&we.value, "path").unwrap_or_default()
                        }
                        _ => r.unknown_key(we, &["base", "path"], &[], "`workspace`"),
                    }
                }
            }
            "clone" => {
                for ce in r.entries(v, "`clone`") {
                    match ce.key.as_str() {
                        "disable" => p.clone_disable = r.boolean(&ce.value, "disable"),
                        "depth" => p.clone_depth = r.u32(&ce.value, "depth"),
                        "retries" => p.clone_retries = r.u32(&ce.value, "retries"),
                        "skip_verify" => p.clone_skip_verify = r.boolean(&ce.value, "skip_verify"),
                        "trace" => p.clone_trace = r.boolean(&ce.value, "trace"),
                        _ => r.unknown_key(
                            ce,
                            &["disable", "depth", "retries", "skip_verify", "trace"],
                            &[],
                            "`clone`",
                        ),
                    }
                }
            }
            "steps" | "services" if !p.supported => {}
            "steps" => p.steps = read_steps(r, v, false),
            "services" => p.services = read_steps(r, v, true),
            "volumes" => p.volumes = read_volumes(r, v),
            "trigger" => p.trigger = r.conditions(v, "trigger"),
            "depends_on" => p.depends_on = r.named_list(v, "depends_on"),
            "node" => {
                for ne in r.entries(v, "`node`") {
                    let val = r.string(&ne.value, &ne.key).unwrap_or_default();
                    p.node.insert(ne.key.clone(), val);
                }
            }
            "concurrency" => {
                for ce in r.entries(v, "`concurrency`") {
                    match ce.key.as_str() {
                        "limit" => p.concurrency = r.uint(&ce.value, "limit"),
                        _ => r.unknown_key(ce, &["limit"], &[], "`concurrency`"),
                    }
                }
            }
            "image_pull_secrets" => p.image_pull_secrets = r.strings(v, "image_pull_secrets"),
            "environment" => p.environment = r.environment(v),
            "when" => r.warn(
                e.key_pos,
                "a pipeline-level `when` is ignored by Drone and by Skiff; use `trigger`",
            ),
            _ if !p.supported => {}
            _ => r.unknown_key(e, PIPELINE_KEYS, PIPELINE_IGNORED, "the pipeline"),
        }
    }
    if root.get("steps").is_none() && p.supported {
        r.error(p.name_pos, format!("pipeline `{}` has no `steps`", p.name));
    }
    Some(p)
}

fn read_steps(r: &mut Reader<'_>, node: &Node, services: bool) -> Vec<StepSpec> {
    let what = if services { "services" } else { "steps" };
    let items = match &node.value {
        Value::Seq(items) => items,
        Value::Null => return vec![],
        _ => {
            r.error(node.pos, format!("`{what}` must be a list"));
            return vec![];
        }
    };
    items
        .iter()
        .filter_map(|item| read_step(r, item, services))
        .collect()
}

fn read_step(r: &mut Reader<'_>, node: &Node, service: bool) -> Option<StepSpec> {
    let what = if service { "a service" } else { "a step" };
    let Some(entries) = node.entries() else {
        r.error(
            node.pos,
            format!("{what} must be a mapping, found {}", node.kind_name()),
        );
        return None;
    };
    let mut s = StepSpec {
        pos: node.pos,
        name_pos: node.pos,
        ..Default::default()
    };
    for e in entries {
        let v = &e.value;
        match e.key.as_str() {
            "name" => {
                s.name = r.string(v, "name").unwrap_or_default();
                s.name_pos = v.pos;
            }
            "image" => s.image = r.string(v, "image"),
            "pull" => {
                let text = r.string(v, "pull").unwrap_or_default();
                s.pull = match text.as_str() {
                    "" | "default" => PullPolicy::Default,
                    "always" => PullPolicy::Always,
                    "if-not-exists" => PullPolicy::IfNotExists,
                    "never" => PullPolicy::Never,
                    other => {
                        let hint = suggest(other, &["always", "if-not-exists", "never"])
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default();
                        r.warn(
                            v.pos,
                            format!(
                                "unknown pull policy `{other}` is treated as the default{hint}"
                            ),
                        );
                        PullPolicy::Default
                    }
                };
            }
            "commands" => s.commands = r.strings(v, "commands"),
            "entrypoint" => s.entrypoint = Some(r.strings(v, "entrypoint")),
            "command" => s.command = Some(r.strings(v, "command")),
            "environment" => s.environment = r.environment(v),
            "settings" => {
                let mut pairs = Vec::new();
                for se in r.entries(v, "`settings`") {
                    pairs.push((se.key.clone(), se.value.clone()));
                }
                s.has_settings = !pairs.is_empty();
                encode_settings(&pairs, &mut s.settings_env, &mut s.settings_secrets);
            }
            "privileged" => {
                s.privileged = r.boolean(v, "privileged");
                s.privileged_pos = e.key_pos;
            }
            "volumes" => s.volumes = read_mounts(r, v),
            "detach" => s.detach = r.boolean(v, "detach"),
            "failure" => {
                let text = r.string(v, "failure").unwrap_or_default();
                s.failure = match text.as_str() {
                    "" | "fail" => FailurePolicy::Fail,
                    "ignore" => FailurePolicy::Ignore,
                    "fast" | "fast-fail" | "fail-fast" => FailurePolicy::Fast,
                    other => {
                        r.warn(
                            v.pos,
                            format!("unknown failure policy `{other}` is treated as the default (as Drone does); use `ignore` or `fast`"),
                        );
                        FailurePolicy::Fail
                    }
                };
            }
            "user" => s.user = r.string(v, "user"),
            "network_mode" => {
                s.network_mode = r.string(v, "network_mode");
                s.trusted_keys.push(Named {
                    name: "network_mode".into(),
                    pos: e.key_pos,
                });
            }
            "shm_size" => {
                s.shm_size = read_bytes(r, v, "shm_size");
                s.trusted_keys.push(Named {
                    name: "shm_size".into(),
                    pos: e.key_pos,
                });
            }
            "devices" | "dns" | "dns_search" | "extra_hosts" => {
                s.trusted_keys.push(Named {
                    name: e.key.clone(),
                    pos: e.key_pos,
                });
                r.warn(
                    e.key_pos,
                    format!("`{}` is not supported by Skiff yet and is ignored", e.key),
                );
            }
            "resources" => s.resources = read_resources(r, v),
            "depends_on" => s.depends_on = r.named_list(v, "depends_on"),
            "when" => s.when = r.conditions(v, "when"),
            "working_dir" => s.working_dir = r.string(v, "working_dir"),
            "shell" => s.shell = r.string(v, "shell"),
            _ => {
                let label = format!("{what} `{}`", step_label(entries));
                if let Some(meant) = r.unknown_key_meant(e, STEP_KEYS, STEP_IGNORED, &label) {
                    s.misspelt.push(meant);
                }
            }
        }
    }
    if s.name.is_empty() {
        r.error(node.pos, format!("{what} needs a `name`"));
    }
    Some(s)
}

fn step_label(entries: &[Entry]) -> String {
    entries
        .iter()
        .find(|e| e.key == "name")
        .and_then(|e| e.value.scalar())
        .unwrap_or("?")
        .to_string()
}

fn read_mounts(r: &mut Reader<'_>, node: &Node) -> Vec<MountSpec> {
    let Value::Seq(items) = &node.value else {
        if !node.is_null() {
            r.error(node.pos, "step `volumes` must be a list of `{name, path}`");
        }
        return vec![];
    };
    let mut out = Vec::new();
    for item in items {
        let mut m = MountSpec {
            name: String::new(),
            path: String::new(),
            pos: item.pos,
        };
        for e in r.entries(item, "a volume mount") {
            match e.key.as_str() {
                "name" => m.name = r.string(&e.value, "name").unwrap_or_default(),
                "path" => m.path = r.string(&e.value, "path").unwrap_or_default(),
                _ => r.unknown_key(e, &["name", "path"], &[], "a volume mount"),
            }
        }
        if m.name.is_empty() || m.path.is_empty() {
            r.error(item.pos, "a volume mount needs `name` and `path`");
            continue;
        }
        out.push(m);
    }
    out
}

fn read_volumes(r: &mut Reader<'_>, node: &Node) -> Vec<VolumeSpec> {
    let Value::Seq(items) = &node.value else {
        if !node.is_null() {
            r.error(node.pos, "pipeline `volumes` must be a list");
        }
        return vec![];
    };
    let mut out = Vec::new();
    for item in items {
        let mut v = VolumeSpec {
            name: String::new(),
            pos: item.pos,
            source: None,
        };
        let mut kinds = 0;
        for e in r.entries(item, "a volume") {
            match e.key.as_str() {
                "name" => v.name = r.string(&e.value, "name").unwrap_or_default(),
                "host" => {
                    kinds += 1;
                    let mut path = String::new();
                    for he in r.entries(&e.value, "`host`") {
                        match he.key.as_str() {
                            "path" => path = r.string(&he.value, "path").unwrap_or_default(),
                            _ => r.unknown_key(he, &["path"], &[], "`host`"),
                        }
                    }
                    if path.is_empty() {
                        r.error(e.key_pos, "a host volume needs a `path`");
                    }
                    v.source = Some(VolumeSource::Host { path });
                }
                "temp" => {
                    kinds += 1;
                    let mut in_memory = false;
                    for te in r.entries(&e.value, "`temp`") {
                        match te.key.as_str() {
                            "medium" => {
                                let m = r.string(&te.value, "medium").unwrap_or_default();
                                match m.as_str() {
                                    "memory" => in_memory = true,
                                    "" => {}
                                    other => r.warn(te.value.pos, format!("unknown temp medium `{other}`; only `memory` is special")),
                                }
                            }
                            "size_limit" => {}
                            _ => r.unknown_key(te, &["medium", "size_limit"], &[], "`temp`"),
                        }
                    }
                    v.source = Some(VolumeSource::Temp { in_memory });
                }
                "claim" | "config_map" | "secret" => {
                    kinds += 1;
                    r.warn(e.key_pos, format!("`{}` volumes are not supported by Skiff; steps mounting it get an empty directory", e.key));
                    v.source = Some(VolumeSource::Temp { in_memory: false });
                }
                _ => r.unknown_key(e, &["name", "host", "temp"], &[], "a volume"),
            }
        }
        if v.name.is_empty() {
            r.error(item.pos, "a volume needs a `name`");
            continue;
        }
        if kinds == 0 {
            r.error(
                item.pos,
                format!("volume `{}` needs `host` or `temp`", v.name),
            );
        } else if kinds > 1 {
            r.error(
                item.pos,
                format!(
                    "volume `{}` must have only one of `host` and `temp`",
                    v.name
                ),
            );
        }
        out.push(v);
    }
    out
}

fn read_resources(r: &mut Reader<'_>, node: &Node) -> Resources {
    let mut res = Resources::default();
    for e in r.entries(node, "`resources`") {
        let (cpu, mem) = match e.key.as_str() {
            "limits" => (&mut res.cpu_limit_millis, &mut res.memory_limit_bytes),
            "requests" => (&mut res.cpu_request_millis, &mut res.memory_request_bytes),
            _ => {
                r.unknown_key(e, &["limits", "requests"], &[], "`resources`");
                continue;
            }
        };
        let mut c = None;
        let mut m = None;
        for re in r.entries(&e.value, &format!("`{}`", e.key)) {
            match re.key.as_str() {
                "cpu" => c = read_cpu(r, &re.value),
                "memory" => m = read_bytes(r, &re.value, "memory"),
                _ => r.unknown_key(re, &["cpu", "memory"], &[], &format!("`{}`", e.key)),
            }
        }
        *cpu = c;
        *mem = m;
    }
    res
}

/// CPU in millicores. An integer is millicores, as in both Drone runners (`cpu: 1000` is one
/// CPU); `500m` is millicores too; a decimal like `1.5` is whole CPUs (Drone rejects it).
fn read_cpu(r: &mut Reader<'_>, node: &Node) -> Option<u64> {
    let text = r.string(node, "cpu")?;
    let parsed = if let Some(m) = text.strip_suffix('m') {
        m.parse::<f64>().ok()
    } else if text.contains('.') {
        text.parse::<f64>().ok().map(|n| n * 1000.0)
    } else {
        let n = text.parse::<f64>().ok();
        if n.is_some_and(|n| n > 0.0 && n < 100.0) {
            r.warn(
                node.pos,
                format!("`cpu: {text}` means {text} millicores (Drone's unit); write `{text}000` for {text} CPUs"),
            );
        }
        n
    };
    match parsed {
        Some(v) if v >= 0.0 && v.is_finite() => Some(v.round() as u64),
        _ => {
            r.error(
                node.pos,
                format!("`cpu` must be millicores like `1000` or `500m`, found `{text}`"),
            );
            None
        }
    }
}

/// Bytes from an integer or a quantity: Kubernetes suffixes (`Ki`, `Mi`, `Gi`, `Ti`, `k`, `M`,
/// `G`, `T`) and docker-style ones (`kb`, `mb`, `gb`, `MiB`, ... binary multiples).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let mult: f64 = match unit {
        "" | "b" | "B" => 1.0,
        "Ki" | "KiB" => 1024.0,
        "Mi" | "MiB" => 1024f64.powi(2),
        "Gi" | "GiB" => 1024f64.powi(3),
        "Ti" | "TiB" => 1024f64.powi(4),
        "Pi" | "PiB" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        other => match other.to_ascii_lowercase().as_str() {
            "k" | "kb" | "kib" => 1024.0,
            "m" | "mb" | "mib" => 1024f64.powi(2),
            "g" | "gb" | "gib" => 1024f64.powi(3),
            "t" | "tb" | "tib" => 1024f64.powi(4),
            _ => return None,
        },
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0).then(|| v.round() as u64)
}

fn read_bytes(r: &mut Reader<'_>, node: &Node, key: &str) -> Option<u64> {
    let text = r.string(node, key)?;
    match parse_bytes(&text) {
        Some(v) => Some(v),
        None => {
            r.error(
                node.pos,
                format!(
                    "`{key}` must be a size like `512Mi`, `1Gi` or `1073741824`, found `{text}`"
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cond::Condition;

    fn manifest(text: &str) -> (Manifest, Vec<Diagnostic>) {
        crate::parse("f.yml", text)
    }

    fn first_pipeline(text: &str) -> Pipeline {
        let (m, d) = manifest(text);
        assert!(d.iter().all(|d| !d.is_error()), "{d:?}");
        m.pipelines().next().cloned().expect("a pipeline")
    }

    fn messages(text: &str) -> Vec<String> {
        manifest(text).1.iter().map(ToString::to_string).collect()
    }

    fn cond(include: &[&str], exclude: &[&str]) -> Condition {
        Condition {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn condition_forms() {
        let p = first_pipeline(
            "kind: pipeline\ntrigger:\n  branch: main\n  event: [push, tag]\n  ref:\n    include: [refs/heads/*]\n    exclude:\n    - refs/heads/wip*\nsteps:\n- name: a\n  image: x\n  when:\n    status: [failure]\n    cron: nightly\n",
        );
        assert_eq!(p.trigger.branch, cond(&["main"], &[]));
        assert_eq!(p.trigger.event, cond(&["push", "tag"], &[]));
        assert_eq!(
            p.trigger.ref_,
            cond(&["refs/heads/*"], &["refs/heads/wip*"])
        );
        assert_eq!(p.steps[0].when.status, cond(&["failure"], &[]));
        assert_eq!(p.steps[0].when.cron, cond(&["nightly"], &[]));
    }

    #[test]
    fn condition_problems_are_reported() {
        let m = messages(
            "kind: pipeline\ntrigger:\n  event: [pull-request]\n  branch:\n    includes: [main]\n  brnach: main\n  status: [done]\nsteps:\n- name: a\n  image: x\n",
        );
        assert!(m.iter().any(|m| m.contains("3:10: warning: unknown event `pull-request` never matches; did you mean `pull_request`?")), "{m:?}");
        assert!(
            m.iter().any(|m| m.contains(
                "5:5: error: unknown key `includes` in `branch`; did you mean `include`?"
            )),
            "{m:?}"
        );
        assert!(
            m.iter().any(|m| m
                .contains("6:3: error: unknown key `brnach` in `trigger`; did you mean `branch`?")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|m| m.contains("status `done` is neither")),
            "{m:?}"
        );
    }

    #[test]
    fn value_type_errors_have_positions() {
        let m = messages(
            "kind: pipeline\nclone:\n  depth: deep\nsteps:\n- name: a\n  image: x\n  privileged: maybe\n  environment:\n    LIST: [1, 2]\n    MAP:\n      value: 1\n    EMPTY:\n  commands: {a: b}\n- just a string\n",
        );
        let want = [
            "3:10: error: `depth` must be a non-negative integer, found `deep`",
            "7:15: error: `privileged` must be true or false, found `maybe`",
            "9:11: error: environment `LIST` must be a string, found a list",
            "11:7: error: environment `MAP` must be a string or `from_secret: NAME`",
            "13:13: error: `commands` must be a string or a list of strings",
            "14:3: error: a step must be a mapping, found a scalar",
        ];
        for w in want {
            assert!(m.iter().any(|m| m.contains(w)), "missing {w:?} in {m:?}");
        }
    }

    #[test]
    fn secrets_and_signatures() {
        let (m, d) = manifest(
            "kind: pipeline\nsteps: []\n---\nkind: secret\nname: token\ndata: abc==\n---\nkind: secret\nname: vault\nget:\n  path: secret/ci\n  name: token\n---\nkind: secret\n---\nkind: signature\nhmac: deadbeef\n",
        );
        let secrets: Vec<&SecretDoc> = m.secrets().collect();
        assert_eq!(secrets[0].data.as_deref(), Some("abc=="));
        assert_eq!(
            secrets[1].get,
            Some(SecretGet {
                path: "secret/ci".into(),
                name: "token".into()
            })
        );
        let errors: Vec<String> = d
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("14:1: error: a secret needs a `name`")),
            "{errors:?}"
        );
        assert!(
            m.resources
                .iter()
                .any(|r| matches!(r, Resource::Signature(s) if s.hmac == "deadbeef"))
        );
    }

    #[test]
    fn volume_forms() {
        let (m, d) = manifest(
            "kind: pipeline\nsteps: []\nvolumes:\n- name: both\n  host: {path: /a}\n  temp: {}\n- name: none\n- name: pvc\n  claim:\n    name: data\n- name: mem\n  temp:\n    medium: memory\n",
        );
        let p = m.pipelines().next().expect("pipeline");
        assert_eq!(
            p.volumes
                .iter()
                .find(|v| v.name == "mem")
                .and_then(|v| v.source.clone()),
            Some(VolumeSource::Temp { in_memory: true })
        );
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t
                    .contains("4:3: error: volume `both` must have only one of `host` and `temp`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("7:3: error: volume `none` needs `host` or `temp`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("9:3: warning: `claim` volumes are not supported")),
            "{text:?}"
        );
    }

    #[test]
    fn cpu_units() {
        let p = first_pipeline(
            "kind: pipeline\nsteps:\n- name: a\n  image: x\n  resources:\n    limits: {cpu: 1500, memory: 2Gi}\n    requests: {cpu: 250m, memory: 64MiB}\n",
        );
        let r = &p.steps[0].resources;
        assert_eq!(
            (r.cpu_limit_millis, r.memory_limit_bytes),
            (Some(1500), Some(2 << 30))
        );
        assert_eq!(
            (r.cpu_request_millis, r.memory_request_bytes),
            (Some(250), Some(64 << 20))
        );
        let m = messages(
            "kind: pipeline\nsteps:\n- name: a\n  image: x\n  resources:\n    limits: {cpu: 2}\n",
        );
        assert!(
            m.iter().any(|m| m.contains("`cpu: 2` means 2 millicores")),
            "{m:?}"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("comands", STEP_KEYS), Some("commands"));
        assert_eq!(suggest("comamnds", STEP_KEYS), Some("commands"));
        assert_eq!(suggest("imgae", STEP_KEYS), Some("image"));
        assert_eq!(suggest("enviroment", STEP_KEYS), Some("environment"));
        assert_eq!(suggest("depends-on", STEP_KEYS), Some("depends_on"));
        assert_eq!(suggest("zzzzzz", STEP_KEYS), None);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("1Gi"), Some(1 << 30));
        assert_eq!(parse_bytes("500Mi"), Some(500 << 20));
        assert_eq!(parse_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_bytes("512MiB"), Some(512 << 20));
        assert_eq!(parse_bytes("1gb"), Some(1 << 30));
        assert_eq!(parse_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_bytes("1048576"), Some(1_048_576));
        assert_eq!(parse_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("1Zi"), None);
    }
}
