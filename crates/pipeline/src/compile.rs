//! From text to runnable plans: `lint` (every problem in a file, as Drone's server and runner
//! linters would find them, plus warnings where Drone silently ignores something) and
//! `plan_build` (substitute, parse, lint, evaluate triggers, compile each pipeline into a
//! [`Plan`]). Step ordering follows drone-runner-docker: serial mode unless some step or service
//! has a non-empty `depends_on` (ci.md §2.7).

use crate::cond::MatchInput;
use crate::env::{BuildContext, drone_environment};
use crate::error::{Diagnostic, Diagnostics, Error, Pos};
use crate::model::{
    EnvValue, Manifest, Named, Pipeline, Reader, Resource, SecretDoc, StepSpec, read_resource,
};
use crate::plan::{
    BackendKind, CloneSettings, Plan, RunPolicy, Step, Volume, VolumeMount, VolumeSource, Workspace,
};
use crate::subst::{OffsetMap, substitute, substitute_mapped};
use crate::yaml::{MAX_FILE_BYTES, parse_chunk_with_warnings, split_documents};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How much the repository is trusted (Drone's per-repo `trusted` flag, `drone exec --trusted`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Allows privileged steps, host volumes, in-memory temp volumes, network_mode, shm_size,
    /// devices, dns and extra_hosts.
    pub trusted: bool,
}

/// Every pipeline of a file compiled for one event.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// One stage per `kind: pipeline` document of a type Skiff runs (docker, kubernetes,
    /// exec), in document order; stage numbers are 1-based positions in this list. Pipelines of
    /// other runners' types (ssh, vm, ...) are left out with a warning.
    pub stages: Vec<Stage>,
    /// `kind: secret` documents, for the server to resolve.
    pub secrets: Vec<SecretDoc>,
    /// Warnings about the whole file (things Drone would silently ignore).
    pub warnings: Vec<Diagnostic>,
}

impl BuildPlan {
    /// Stages whose trigger matched this event: the ones to run.
    pub fn matched(&self) -> impl Iterator<Item = &Stage> {
        self.stages.iter().filter(|s| s.matched)
    }
}

/// One pipeline of the build.
#[derive(Debug, Clone)]
pub struct Stage {
    pub plan: Plan,
    /// The pipeline's `trigger` matched this event.
    pub matched: bool,
    /// Stages this one waits for. For a matched stage, dependencies on stages that did not match
    /// are replaced by their own dependencies (Drone's `dag.Dependencies`); for an unmatched
    /// stage they are as written.
    pub depends_on: Vec<String>,
    /// Run when the stages it depends on succeeded (`trigger.status` has `success`, or is absent).
    pub on_success: bool,
    /// Run when an earlier stage failed (`trigger.status` has `failure`).
    pub on_failure: bool,
    /// The node labels a runner must have (`node:`), and the concurrency limit.
    pub node: BTreeMap<String, String>,
    pub concurrency: Option<u64>,
}

/// Images drone-runner-docker runs privileged when used as plugins.
const PRIVILEGED_PLUGINS: &[&str] = &[
    "plugins/docker",
    "plugins/acr",
    "plugins/ecr",
    "plugins/gcr",
    "plugins/heroku",
    "plugins/gar",
];
/// Setting any of these takes a plugin's automatic privilege away.
const PRIVILEGE_BREAKING_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_OPTS",
    "XDG_RUNTIME_DIR",
];

/// Parse a file into resources, with all YAML and model diagnostics.
pub fn parse(file: &str, text: &str) -> (Manifest, Vec<Diagnostic>) {
    let mut reader = Reader::new(file);
    let mut manifest = Manifest::default();
    if text.len() > MAX_FILE_BYTES {
        reader.error(
            Pos::new(1, 1),
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        );
        return (manifest, reader.diags);
    }
    for chunk in split_documents(text) {
        match parse_chunk_with_warnings(&chunk) {
            Ok((root, warnings)) => {
                for w in warnings {
                    reader.warn(w.pos, w.message);
                }
                if let Some(res) = root.as_ref().and_then(|r| read_resource(&mut reader, r)) {
                    manifest.resources.push(res);
                }
            }
            Err(e) => reader.error(e.pos, e.message),
        }
    }
    if manifest.pipelines().next().is_none() && !reader.diags.iter().any(Diagnostic::is_error) {
        reader.error(Pos::new(1, 1), "no `kind: pipeline` document found");
    }
    (manifest, reader.diags)
}

/// Every problem in a pipeline file, errors and warnings, in file order.
pub fn lint(file: &str, text: &str, opts: &PlanOptions) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    if let Err(e) = substitute(text, &BTreeMap::new()) {
        diags.push(subst_diagnostic(file, text, &e));
    }
    let (manifest, parse_diags) = parse(file, text);
    diags.extend(parse_diags);
    check_manifest(file, &manifest, opts, &mut diags);
    sort_dedup(&mut diags);
    diags
}

fn sort_dedup(diags: &mut Vec<Diagnostic>) {
    diags.sort_by_key(|d| (d.line, d.column, d.severity));
    diags.dedup();
}

fn subst_diagnostic(file: &str, text: &str, e: &Error) -> Diagnostic {
    let Error::BadSubstitution { offset, .. } = e;
    Diagnostic::error(file, offset_pos(text, *offset), e.to_string())
}

/// Move a diagnostic found in `substituted` to the same place in `original`.
fn remap(d: &mut Diagnostic, substituted: &str, original: &str, map: &OffsetMap) {
    if d.line == 0 {
        return;
    }
    let mut offset = 0;
    for (n, line) in substituted.split_inclusive('\n').enumerate() {
        if n + 1 == d.line {
            offset += line
                .char_indices()
                .nth(d.column.saturating_sub(1))
                .map_or(line.len(), |(i, _)| i);
            break;
        }
        offset += line.len();
    }
    let pos = offset_pos(original, map.to_input(offset));
    d.line = pos.line;
    d.column = pos.column;
}

fn offset_pos(text: &str, offset: usize) -> Pos {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos::new(line, col)
}

/// Checks that need the whole file or a whole pipeline (names, DAGs, volumes, trust).
fn check_manifest(file: &str, m: &Manifest, opts: &PlanOptions, diags: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for p in m.pipelines() {
        if let Some(first) = seen.insert(&p.name, p.name_pos) {
            diags.push(Diagnostic::error(
                file,
                p.name_pos,
                format!(
                    "duplicate pipeline name `{}` (first at line {})",
                    p.name, first.line
                ),
            ));
        }
    }
    let names: BTreeSet<&str> = m.pipelines().map(|p| p.name.as_str()).collect();
    for p in m.pipelines() {
        for d in &p.depends_on {
            if !names.contains(d.name.as_str()) {
                diags.push(Diagnostic::error(
                    file,
                    d.pos,
                    format!(
                        "pipeline `{}` depends on unknown pipeline `{}`",
                        p.name, d.name
                    ),
                ));
            }
        }
    }
    let graph: Vec<(&str, Pos, Vec<&str>)> = m
        .pipelines()
        .map(|p| {
            (
                p.name.as_str(),
                p.name_pos,
                p.depends_on.iter().map(|d| d.name.as_str()).collect(),
            )
        })
        .collect();
    if let Some((pos, cycle)) = find_cycle(&graph) {
        diags.push(Diagnostic::error(
            file,
            pos,
            format!("dependency cycle between pipelines: {}", cycle.join(" -> ")),
        ));
    }
    for p in m.pipelines().filter(|p| p.supported) {
        check_pipeline(file, p, opts, diags);
    }
}

fn check_pipeline(file: &str, p: &Pipeline, opts: &PlanOptions, diags: &mut Vec<Diagnostic>) {
    let err = |diags: &mut Vec<Diagnostic>, pos: Pos, msg: String| {
        diags.push(Diagnostic::error(file, pos, msg))
    };
    let clone_enabled = !p.clone_disable;
    let all: Vec<&StepSpec> = p.services.iter().chain(p.steps.iter()).collect();

    // Names.
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for s in &all {
        if s.name.is_empty() {
            continue;
        }
        if let Some(first) = seen.insert(&s.name, s.name_pos) {
            err(
                diags,
                s.name_pos,
                format!(
                    "duplicate step name `{}` (first at line {})",
                    s.name, first.line
                ),
            );
        }
        if clone_enabled && s.name == "clone" {
            err(
                diags,
                s.name_pos,
                "the step name `clone` is reserved for the clone step; rename it or set `clone: disable: true`".into(),
            );
        }
    }

    // Dependencies.
    for s in &all {
        for d in &s.depends_on {
            let known = seen.contains_key(d.name.as_str()) || (clone_enabled && d.name == "clone");
            if !known {
                let hint =
                    crate::model::suggest(&d.name, &seen.keys().copied().collect::<Vec<_>>())
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                err(
                    diags,
                    d.pos,
                    format!(
                        "step `{}` depends on unknown step `{}`{hint}",
                        s.name, d.name
                    ),
                );
            }
        }
    }
    let graph: Vec<(&str, Pos, Vec<&str>)> = all
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.name_pos,
                s.depends_on.iter().map(|d| d.name.as_str()).collect(),
            )
        })
        .collect();
    if let Some((pos, cycle)) = find_cycle(&graph) {
        err(
            diags,
            pos,
            format!("dependency cycle between steps: {}", cycle.join(" -> ")),
        );
    }

    // Volumes.
    let mut volumes: HashMap<&str, &VolumeSource> = HashMap::new();
    for v in &p.volumes {
        if volumes.contains_key(v.name.as_str()) {
            err(diags, v.pos, format!("duplicate volume name `{}`", v.name));
        }
        if let Some(src) = &v.source {
            volumes.insert(&v.name, src);
            match src {
                VolumeSource::Host { .. } if !opts.trusted => err(
                    diags,
                    v.pos,
                    format!(
                        "host volume `{}` needs a trusted repository (run with --trusted)",
                        v.name
                    ),
                ),
                VolumeSource::Temp { in_memory: true } if !opts.trusted => err(
                    diags,
                    v.pos,
                    format!(
                        "in-memory temp volume `{}` needs a trusted repository (run with --trusted)",
                        v.name
                    ),
                ),
                _ => {}
            }
        }
    }
    for s in &all {
        for m in &s.volumes {
            if !volumes.contains_key(m.name.as_str()) && !p.volumes.iter().any(|v| v.name == m.name)
            {
                err(
                    diags,
                    m.pos,
                    format!("step `{}` mounts unknown volume `{}`", s.name, m.name),
                );
            }
            if !m.path.starts_with('/') {
                err(
                    diags,
                    m.pos,
                    format!("volume mount path `{}` must be absolute", m.path),
                );
            }
            if m.path == "/run/drone" || m.path.starts_with("/run/drone/") {
                err(diags, m.pos, "`/run/drone` cannot be mounted".into());
            }
        }
    }

    // Trust, images, commands.
    for s in &all {
        if s.privileged && !opts.trusted {
            err(
                diags,
                s.privileged_pos,
                format!(
                    "step `{}` is privileged, which needs a trusted repository (run with --trusted)",
                    s.name
                ),
            );
        }
        if !opts.trusted {
            for k in &s.trusted_keys {
                err(
                    diags,
                    k.pos,
                    format!(
                        "`{}` in step `{}` needs a trusted repository (run with --trusted)",
                        k.name, s.name
                    ),
                );
            }
        }
        match p.backend {
            BackendKind::Exec => {
                let runs_something =
                    !s.commands.is_empty() || s.command.is_some() || s.entrypoint.is_some();
                let has_image = s.image.as_deref().is_some_and(|i| !i.is_empty());
                // A step with an image and nothing to run is a plugin: on exec pipelines only
                // the runner's built-in plugins (e.g. `skiff/deploy`) can run it, which the
                // runner checks (docs/runner.md, "Built-in plugins").
                if has_image && runs_something {
                    diags.push(Diagnostic::warning(
                        file,
                        s.name_pos,
                        format!("`image` of step `{}` is ignored by exec pipelines", s.name),
                    ));
                }
                if !runs_something && !has_image {
                    err(
                        diags,
                        s.name_pos,
                        format!("exec step `{}` has no `commands`", s.name),
                    );
                }
            }
            BackendKind::Docker | BackendKind::Kubernetes => {
                // A misspelt `image` key was already reported; don't pile on.
                if s.image.as_deref().is_none_or(str::is_empty)
                    && !s.misspelt.iter().any(|k| k == "image")
                {
                    err(
                        diags,
                        s.name_pos,
                        format!("step `{}` has no `image`", s.name),
                    );
                }
            }
        }
        if !s.commands.is_empty() && s.has_settings {
            diags.push(Diagnostic::warning(
                file,
                s.name_pos,
                format!("step `{}` has both `commands` and `settings`; settings still become PLUGIN_* variables", s.name),
            ));
        }
    }
}

/// Find a cycle in a name graph; returns the position of a node on it and the path.
fn find_cycle<'a>(graph: &[(&'a str, Pos, Vec<&'a str>)]) -> Option<(Pos, Vec<&'a str>)> {
    // With duplicate names (reported separately) the first definition is the one followed.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, (n, _, _)) in graph.iter().enumerate() {
        index.entry(*n).or_insert(i);
    }
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut state = vec![0u8; graph.len()];
    let mut stack: Vec<usize> = Vec::new();
    fn visit<'a>(
        i: usize,
        graph: &[(&'a str, Pos, Vec<&'a str>)],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<(Pos, Vec<&'a str>)> {
        state[i] = 1;
        stack.push(i);
        for dep in &graph[i].2 {
            let Some(&j) = index.get(dep) else { continue };
            if state[j] == 1 {
                let start = stack.iter().position(|&k| k == j).unwrap_or(0);
                let mut path: Vec<&str> = stack[start..].iter().map(|&k| graph[k].0).collect();
                path.push(graph[j].0);
                return Some((graph[j].1, path));
            }
            if state[j] == 0
                && let Some(found) = visit(j, graph, index, state, stack)
            {
                return Some(found);
            }
        }
        stack.pop();
        state[i] = 2;
        None
    }
    for i in 0..graph.len() {
        if state[i] == 0
            && let Some(found) = visit(i, graph, &index, &mut state, &mut stack)
        {
            return Some(found);
        }
    }
    None
}

fn match_input<'a>(ctx: &'a BuildContext, slug: &'a str) -> MatchInput<'a> {
    MatchInput {
        action: &ctx.action,
        branch: ctx.target(),
        cron: &ctx.cron,
        event: &ctx.event,
        instance: if ctx.instance.is_empty() {
            &ctx.system_host
        } else {
            &ctx.instance
        },
        ref_: &ctx.git_ref,
        repo: slug,
        target: &ctx.deploy_to,
        paths: &ctx.changed_paths,
    }
}

/// Substitute variables over the raw text, split documents, parse, lint, evaluate triggers,
/// compile every pipeline.
///
/// Triggers are evaluated on the file as written (Drone's server does not substitute); each
/// pipeline is compiled from the text substituted with that stage's variables (Drone's runner).
pub fn plan_build(
    file: &str,
    text: &str,
    ctx: &BuildContext,
    opts: &PlanOptions,
) -> Result<BuildPlan, Diagnostics> {
    let opts = PlanOptions {
        trusted: opts.trusted || ctx.trusted,
    };
    let mut diags = lint(file, text, &opts);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(Diagnostics(diags));
    }
    let (raw, _) = parse(file, text);
    let slug = ctx.slug();
    let input = match_input(ctx, &slug);
    let raw_pipelines: Vec<&Pipeline> = raw.pipelines().collect();
    let starts: Vec<usize> = raw_pipelines.iter().map(|p| p.pos.line).collect();

    let mut stages = Vec::new();
    let mut number = 0;
    for (i, rp) in raw_pipelines.iter().enumerate() {
        if !rp.supported {
            continue;
        }
        number += 1;
        let mut env = drone_environment(ctx, &rp.name, number, &rp.platform);
        env.insert("DRONE_STAGE_TYPE".into(), rp.type_name.clone());
        env.insert(
            "DRONE_STAGE_DEPENDS_ON".into(),
            rp.depends_on
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        let (substituted, map) = match substitute_mapped(text, &env) {
            Ok(s) => s,
            Err(e) => return Err(Diagnostics(vec![subst_diagnostic(file, text, &e)])),
        };
        let (m, sub_diags) = if substituted == text {
            (raw.clone(), Vec::new())
        } else {
            parse(file, &substituted)
        };
        let note = |mut d: Diagnostic| {
            remap(&mut d, &substituted, text, &map);
            d.message = format!(
                "{} (after substituting variables for pipeline `{}`)",
                d.message, rp.name
            );
            d
        };
        let errors: Vec<Diagnostic> = sub_diags
            .into_iter()
            .filter(Diagnostic::is_error)
            .map(note)
            .collect();
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        let Some(p) = m.pipelines().nth(i) else {
            return Err(Diagnostics(vec![Diagnostic::error(
                file,
                rp.pos,
                format!(
                    "pipeline `{}` disappeared after substituting variables",
                    rp.name
                ),
            )]));
        };
        let mut check = Vec::new();
        check_pipeline(file, p, &opts, &mut check);
        let errors: Vec<Diagnostic> = check
            .into_iter()
            .filter(Diagnostic::is_error)
            .map(note)
            .collect();
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        let mut plan = compile_pipeline(p, ctx, &env);
        let next_start = starts.get(i + 1).copied().unwrap_or(usize::MAX);
        plan.warnings = diags
            .iter()
            .filter(|d| !d.is_error() && d.line >= rp.pos.line && d.line < next_start)
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect();
        let matched = rp.trigger.matches_trigger(&input);
        let (on_success, on_failure) = rp.trigger.trigger_status();
        stages.push(Stage {
            plan,
            matched,
            depends_on: rp.depends_on.iter().map(|d| d.name.clone()).collect(),
            on_success,
            on_failure,
            node: rp.node.clone(),
            concurrency: rp.concurrency,
        });
    }
    let skipped: Vec<(String, Vec<String>)> = raw_pipelines
        .iter()
        .filter(|p| !p.supported)
        .map(|p| {
            (
                p.name.clone(),
                p.depends_on.iter().map(|d| d.name.clone()).collect(),
            )
        })
        .collect();
    resolve_stage_deps(&mut stages, &skipped);
    let secrets = raw.secrets().cloned().collect();
    diags.retain(|d| !d.is_error());
    Ok(BuildPlan {
        stages,
        secrets,
        warnings: diags,
    })
}

/// Drone's `dag.Dependencies`: a matched stage's dependency on a stage that did not match is
/// replaced by that stage's own dependencies, transitively.
/// Pipelines of unsupported types (`skipped`) count as not matched.
fn resolve_stage_deps(stages: &mut [Stage], skipped: &[(String, Vec<String>)]) {
    let mut declared: HashMap<String, (bool, Vec<String>)> = stages
        .iter()
        .map(|s| (s.plan.name.clone(), (s.matched, s.depends_on.clone())))
        .collect();
    for (name, deps) in skipped {
        declared.insert(name.clone(), (false, deps.clone()));
    }
    for s in stages.iter_mut().filter(|s| s.matched) {
        let mut out: Vec<String> = Vec::new();
        let mut todo: Vec<String> = s.depends_on.iter().rev().cloned().collect();
        let mut seen = BTreeSet::new();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            match declared.get(&d) {
                Some((true, _)) if !out.contains(&d) => out.push(d),
                Some((true, _)) => {}
                Some((false, deps)) => todo.extend(deps.iter().rev().cloned()),
                None => {}
            }
        }
        s.depends_on = out;
    }
}

/// Drone's workspace rules (drone-runner-docker `createWorkspace`): the working directory is
/// `/drone/src` by default; `base` + `path` are joined; an absolute `path` without a `base`
/// becomes the base itself; a relative `path` without a base lives under `/drone/src`. The
/// shared volume is mounted at `base` (`/drone` unless given). Windows gets `c:` and `\`.
fn workspace(p: &Pipeline) -> Workspace {
    let (base, full) = match (p.workspace_base.as_str(), p.workspace_path.as_str()) {
        ("", "") => ("/drone".to_string(), "/drone/src".to_string()),
        ("", path) if path.starts_with('/') => (path.to_string(), path.to_string()),
        ("", path) => ("/drone".to_string(), join_path("/drone/src", path)),
        (base, path) => (base.to_string(), join_path(base, path)),
    };
    if p.platform.os == "windows" {
        let win = |s: &str| format!("c:{}", s.replace('/', "\\"));
        return Workspace {
            base: win(&base),
            path: win(&full),
        };
    }
    Workspace { base, path: full }
}

/// Go's `path.Join` for our purposes: one `/` between parts, no trailing `/`, `.`/`..` folded.
fn join_path(base: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in base.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `plugins/docker:20` → `plugins/docker`, also under `docker.io/` or `index.docker.io/`.
fn image_repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    let image = image
        .strip_prefix("docker.io/")
        .or_else(|| image.strip_prefix("index.docker.io/"))
        .unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

fn is_auto_privileged(s: &StepSpec) -> bool {
    let Some(image) = &s.image else { return false };
    PRIVILEGED_PLUGINS.contains(&image_repository(image))
        && s.commands.is_empty()
        && s.entrypoint.is_none()
        && s.command.is_none()
        && s.volumes.is_empty()
        && !s
            .environment
            .iter()
            .any(|(k, _)| PRIVILEGE_BREAKING_ENV.contains(&k.as_str()))
}

/// Compile one (substituted, linted) pipeline into a [`Plan`].
fn compile_pipeline(
    p: &Pipeline,
    ctx: &BuildContext,
    drone_env: &BTreeMap<String, String>,
) -> Plan {
    let ws = workspace(p);
    let clone = (!p.clone_disable).then_some(CloneSettings {
        depth: p.clone_depth,
        retries: p.clone_retries,
        skip_verify: p.clone_skip_verify,
        trace: p.clone_trace,
    });
    let mut environment = drone_env.clone();
    environment.insert("DRONE_WORKSPACE".into(), ws.path.clone());
    environment.insert("DRONE_WORKSPACE_BASE".into(), ws.base.clone());
    environment.insert(
        "DRONE_WORKSPACE_PATH".into(),
        ws.path
            .strip_prefix(&ws.base)
            .unwrap_or(&ws.path)
            .trim_start_matches('/')
            .to_string(),
    );
    let mut pipeline_secrets = BTreeMap::new();
    for (k, v) in &p.environment {
        match v {
            EnvValue::Plain(s) => {
                environment.insert(k.clone(), s.clone());
            }
            EnvValue::Secret(s) => {
                environment.remove(k);
                pipeline_secrets.insert(k.clone(), s.clone());
            }
        }
    }

    let slug = ctx.slug();
    let input = match_input(ctx, &slug);
    let specs: Vec<(&StepSpec, bool)> = p
        .services
        .iter()
        .map(|s| (s, true))
        .chain(p.steps.iter().map(|s| (s, false)))
        .collect();
    let graph_mode = specs.iter().any(|(s, _)| !s.depends_on.is_empty());
    let clone_enabled = clone.is_some();
    let user_clone_step = specs.iter().any(|(s, _)| s.name == "clone");

    let mut steps = Vec::with_capacity(specs.len());
    let mut previous: Option<String> = clone_enabled.then(|| "clone".to_string());
    for (spec, is_service) in specs {
        let mut env = BTreeMap::new();
        let mut secrets = pipeline_secrets.clone();
        for (k, v) in &spec.environment {
            match v {
                EnvValue::Plain(s) => {
                    secrets.remove(k);
                    env.insert(k.clone(), s.clone());
                }
                EnvValue::Secret(s) => {
                    secrets.insert(k.clone(), s.clone());
                }
            }
        }
        for (k, v) in &spec.settings_env {
            env.insert(k.clone(), v.clone());
        }
        for (k, v) in &spec.settings_secrets {
            secrets.insert(k.clone(), v.clone());
        }
        let depends_on = if graph_mode {
            let mut deps: Vec<String> = spec
                .depends_on
                .iter()
                .map(|d: &Named| d.name.clone())
                .collect();
            if deps.is_empty() && clone_enabled && spec.name != "clone" {
                deps.push("clone".into());
            }
            if !clone_enabled && !user_clone_step && deps.len() == 1 && deps[0] == "clone" {
                deps.clear();
            }
            deps
        } else {
            previous.iter().cloned().collect()
        };
        previous = Some(spec.name.clone());
        let run_policy = if spec.when.matches_step(&input) {
            spec.when.step_status()
        } else {
            RunPolicy::Never
        };
        // Exec pipelines ignore `image`, except on a plugin step (nothing to run): the
        // runner may have a built-in plugin of that name.
        let plugin =
            spec.commands.is_empty() && spec.command.is_none() && spec.entrypoint.is_none();
        let image = match p.backend {
            BackendKind::Exec if !plugin => None,
            _ => spec.image.clone(),
        };
        steps.push(Step {
            name: spec.name.clone(),
            is_service,
            image,
            pull: spec.pull,
            commands: spec.commands.clone(),
            entrypoint: spec.entrypoint.clone(),
            command: spec.command.clone(),
            environment: env,
            secret_environment: secrets,
            privileged: spec.privileged
                || (p.backend != BackendKind::Exec && is_auto_privileged(spec)),
            volumes: spec
                .volumes
                .iter()
                .map(|m| VolumeMount {
                    name: m.name.clone(),
                    path: m.path.clone(),
                })
                .collect(),
            detach: spec.detach || is_service,
            failure: spec.failure,
            user: spec.user.clone(),
            network_mode: spec.network_mode.clone(),
            shm_size: spec.shm_size,
            working_dir: spec.working_dir.clone(),
            resources: spec.resources.clone(),
            depends_on,
            run_policy,
        });
    }
    let volumes = p
        .volumes
        .iter()
        .filter_map(|v| {
            v.source.clone().map(|source| Volume {
                name: v.name.clone(),
                source,
            })
        })
        .collect();
    Plan {
        name: p.name.clone(),
        backend: p.backend,
        platform: p.platform.clone(),
        workspace: ws,
        clone,
        steps,
        volumes,
        environment,
        image_pull_secrets: p.image_pull_secrets.clone(),
        warnings: Vec::new(),
    }
}

/// Used by `Resource` consumers that want the pipelines of a parsed manifest by name.
pub fn pipeline_names(m: &Manifest) -> Vec<String> {
    m.resources
        .iter()
        .filter_map(|r| match r {
            Resource::Pipeline(p) => Some(p.name.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FailurePolicy, PullPolicy};

    fn push() -> BuildContext {
        BuildContext {
            event: "push".into(),
            branch: "main".into(),
            git_ref: "refs/heads/main".into(),
            sha: "0123456789abcdef".into(),
            repo_owner: "octo".into(),
            repo_name: "app".into(),
            system_host: "ci.local".into(),
            build_number: 3,
            ..Default::default()
        }
    }

    fn tag() -> BuildContext {
        BuildContext {
            event: "tag".into(),
            git_ref: "refs/tags/v1.2.3".into(),
            ..push()
        }
    }

    fn plan(text: &str) -> BuildPlan {
        plan_build(".drone.yml", text, &push(), &PlanOptions::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn errors(text: &str) -> Vec<String> {
        lint(".drone.yml", text, &PlanOptions::default())
            .into_iter()
            .filter(Diagnostic::is_error)
            .map(|d| d.to_string())
            .collect()
    }

    fn deps(p: &Plan) -> Vec<(String, Vec<String>)> {
        p.steps
            .iter()
            .map(|s| (s.name.clone(), s.depends_on.clone()))
            .collect()
    }

    fn pair(name: &str, d: &[&str]) -> (String, Vec<String>) {
        (name.to_string(), d.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn serial_mode_orders_clone_services_steps() {
        let bp = plan(
            "kind: pipeline\nname: ci\nservices:\n- name: db\n  image: postgres\nsteps:\n- name: a\n  image: alpine\n  commands: [echo a]\n- name: b\n  image: alpine\n  depends_on: []\n  commands: [echo b]\n",
        );
        let p = &bp.stages[0].plan;
        assert_eq!(
            deps(p),
            vec![
                pair("db", &["clone"]),
                pair("a", &["db"]),
                pair("b", &["a"])
            ]
        );
        assert!(p.steps[0].is_service && p.steps[0].detach);
        assert_eq!(p.workspace.path, "/drone/src");
        assert_eq!(p.workspace.base, "/drone");
        assert!(p.clone.is_some());
    }

    #[test]
    fn graph_mode_roots_depend_on_clone() {
        let bp = plan(
            "kind: pipeline\nname: ci\nsteps:\n- name: a\n  image: alpine\n- name: b\n  image: alpine\n- name: c\n  image: alpine\n  depends_on: [a, b]\n",
        );
        assert_eq!(
            deps(&bp.stages[0].plan),
            vec![
                pair("a", &["clone"]),
                pair("b", &["clone"]),
                pair("c", &["a", "b"])
            ]
        );
    }

    #[test]
    fn clone_disabled_removes_lone_clone_dependency() {
        let bp = plan(
            "kind: pipeline\nname: ci\nclone:\n  disable: true\nsteps:\n- name: a\n  image: alpine\n- name: b\n  image: alpine\n  depends_on: [a]\n",
        );
        let p = &bp.stages[0].plan;
        assert!(p.clone.is_none());
        assert_eq!(deps(p), vec![pair("a", &[]), pair("b", &["a"])]);
        let serial = plan(
            "kind: pipeline\nclone:\n  disable: true\nsteps:\n- name: a\n  image: alpine\n- name: b\n  image: alpine\n",
        );
        assert_eq!(
            deps(&serial.stages[0].plan),
            vec![pair("a", &[]), pair("b", &["a"])]
        );
        assert_eq!(serial.stages[0].plan.name, "default");
    }

    #[test]
    fn user_step_named_clone_with_clone_disabled() {
        let bp = plan(
            "kind: pipeline\nclone:\n  disable: true\nsteps:\n- name: clone\n  image: alpine/git\n- name: build\n  image: alpine\n  depends_on: [clone]\n- name: test\n  image: alpine\n  depends_on: [clone]\n",
        );
        assert_eq!(
            deps(&bp.stages[0].plan),
            vec![
                pair("clone", &[]),
                pair("build", &["clone"]),
                pair("test", &["clone"])
            ]
        );
    }

    #[test]
    fn dag_errors_have_positions() {
        let errs = errors(
            "kind: pipeline\nsteps:\n- name: a\n  image: x\n  depends_on: [b]\n- name: b\n  image: x\n  depends_on: [a]\n- name: a\n  image: x\n- name: c\n  image: x\n  depends_on: [zz]\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.contains(":9:9: error: duplicate step name `a`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("dependency cycle between steps")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains(":13:16: error: step `c` depends on unknown step `zz`")),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_keys_suggest_and_all_problems_are_reported() {
        let diags = lint(
            "f.yml",
            "kind: pipeline\nname: x\nsteps:\n- name: a\n  image: alpine\n  comands: [ls]\n- name: b\n  imgae: alpine\n  frobnicate: 1\n",
            &PlanOptions::default(),
        );
        let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(
                &"f.yml:6:3: error: unknown key `comands` in a step `a`; did you mean `commands`?"
                    .to_string()
            ),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("f.yml:8:3: error: unknown key `imgae`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("f.yml:9:3: warning: unknown key `frobnicate`")),
            "{text:?}"
        );
        // The misspelt `imgae` is reported once, without a follow-up "has no image".
        assert!(
            !text.iter().any(|t| t.contains("has no `image`")),
            "{text:?}"
        );
        let missing = errors("kind: pipeline\nsteps:\n- name: c\n  commands: [ls]\n");
        assert!(
            missing
                .iter()
                .any(|e| e.contains(":3:9: error: step `c` has no `image`")),
            "{missing:?}"
        );
    }

    #[test]
    fn trusted_checks() {
        let text = "kind: pipeline\nsteps:\n- name: a\n  image: docker\n  privileged: true\n  network_mode: host\n  volumes:\n  - name: sock\n    path: /var/run/docker.sock\n  - name: mem\n    path: /cache\nvolumes:\n- name: sock\n  host:\n    path: /var/run/docker.sock\n- name: mem\n  temp:\n    medium: memory\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            lint("f", text, &PlanOptions { trusted: true })
                .iter()
                .all(|d| !d.is_error())
        );
        let bp =
            plan_build("f", text, &push(), &PlanOptions { trusted: true }).expect("trusted plan");
        let p = &bp.stages[0].plan;
        assert!(p.steps[0].privileged);
        assert_eq!(p.volumes.len(), 2);
        assert_eq!(p.volumes[1].source, VolumeSource::Temp { in_memory: true });
        assert_eq!(p.steps[0].volumes[0].path, "/var/run/docker.sock");
    }

    #[test]
    fn unknown_volume_is_an_error() {
        let errs = errors(
            "kind: pipeline\nsteps:\n- name: a\n  image: x\n  volumes:\n  - name: cache\n    path: /c\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.contains(":6:5: error: step `a` mounts unknown volume `cache`")),
            "{errs:?}"
        );
    }

    #[test]
    fn auto_privileged_plugins() {
        let bp = plan(
            "kind: pipeline\nsteps:\n- name: publish\n  image: plugins/docker:20\n  settings:\n    repo: octo/app\n    tags: [latest, '${DRONE_COMMIT_SHA:0:8}']\n    password:\n      from_secret: docker_password\n- name: shell\n  image: plugins/docker\n  commands: [docker info]\n",
        );
        let steps = &bp.stages[0].plan.steps;
        assert!(steps[0].privileged);
        assert!(!steps[1].privileged);
        assert_eq!(steps[0].environment["PLUGIN_TAGS"], "latest,01234567");
        assert_eq!(
            steps[0].secret_environment["PLUGIN_PASSWORD"],
            "docker_password"
        );
    }

    #[test]
    fn when_and_trigger_evaluation() {
        let text = "kind: pipeline\nname: release\ntrigger:\n  event: [tag]\nsteps:\n- name: a\n  image: x\n---\nkind: pipeline\nname: ci\ntrigger:\n  branch: [main]\n  event:\n    exclude: [tag]\nsteps:\n- name: test\n  image: x\n- name: deploy\n  image: x\n  when:\n    branch: [release/*]\n- name: notify\n  image: x\n  when:\n    status: [success, failure]\n- name: on-fail\n  image: x\n  when:\n    status: failure\n---\nkind: pipeline\nname: after\ndepends_on: [ci]\ntrigger:\n  status: [failure]\nsteps:\n- name: a\n  image: x\n";
        let bp = plan(text);
        let m: Vec<(&str, bool)> = bp
            .stages
            .iter()
            .map(|s| (s.plan.name.as_str(), s.matched))
            .collect();
        assert_eq!(m, vec![("release", false), ("ci", true), ("after", true)]);
        let ci = &bp.stages[1].plan;
        let pol: Vec<RunPolicy> = ci.steps.iter().map(|s| s.run_policy).collect();
        assert_eq!(
            pol,
            vec![
                RunPolicy::OnSuccess,
                RunPolicy::Never,
                RunPolicy::Always,
                RunPolicy::OnFailure
            ]
        );
        assert_eq!(
            (bp.stages[2].on_success, bp.stages[2].on_failure),
            (false, true)
        );
        assert_eq!(
            (bp.stages[1].on_success, bp.stages[1].on_failure),
            (true, false)
        );

        let bp = plan_build("f", text, &tag(), &PlanOptions::default()).expect("tag plan");
        let m: Vec<bool> = bp.stages.iter().map(|s| s.matched).collect();
        assert_eq!(m, vec![true, false, true]);
        // `after` depends on `ci`, which did not match: the dependency passes through.
        assert!(bp.stages[2].depends_on.is_empty());
        assert_eq!(bp.stages[0].plan.environment["DRONE_TAG"], "v1.2.3");
        assert_eq!(bp.stages[0].plan.environment["DRONE_SEMVER"], "1.2.3");
    }

    #[test]
    fn pipeline_level_when_warns() {
        let diags = lint(
            "f",
            "kind: pipeline\nwhen:\n  branch: main\nsteps:\n- name: a\n  image: x\n",
            &PlanOptions::default(),
        );
        assert!(
            diags
                .iter()
                .any(|d| !d.is_error() && d.line == 2 && d.message.contains("use `trigger`")),
            "{diags:?}"
        );
    }

    #[test]
    fn substitution_per_stage_and_errors() {
        let bp = plan(
            "kind: pipeline\nname: one\nsteps:\n- name: a\n  image: alpine:${DRONE_STAGE_NAME}\n  commands:\n  - echo ${DRONE_BRANCH} $${HOME} $HOME\n---\nkind: pipeline\nname: two\nsteps:\n- name: a\n  image: alpine:${DRONE_STAGE_NAME}-${DRONE_STAGE_NUMBER}\n",
        );
        assert_eq!(
            bp.stages[0].plan.steps[0].image.as_deref(),
            Some("alpine:one")
        );
        assert_eq!(
            bp.stages[0].plan.steps[0].commands,
            vec!["echo main ${HOME} $HOME"]
        );
        assert_eq!(
            bp.stages[1].plan.steps[0].image.as_deref(),
            Some("alpine:two-2")
        );
        let errs = errors(
            "kind: pipeline\nsteps:\n- name: a\n  image: x\n  commands:\n  - echo ${!indirect}\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.contains(":6:10: error: bad substitution")),
            "{errs:?}"
        );
    }

    #[test]
    fn errors_after_substitution_point_at_the_original_text() {
        let ctx = BuildContext {
            params: [("IMG".to_string(), "alpine: 3.19".to_string())].into(),
            ..push()
        };
        let text = "kind: pipeline\nsteps:\n- name: a\n  image: ${IMG}\n  commands: [ls]\n";
        assert!(errors(text).is_empty());
        let err = plan_build("f", text, &ctx, &PlanOptions::default()).expect_err("bad YAML");
        let d = &err.0[0];
        assert!(d.message.contains("after substituting variables"), "{d}");
        assert_eq!((d.line, d.column), (4, 10), "{d}");
    }

    #[test]
    fn environment_and_secrets() {
        let bp = plan(
            "kind: pipeline\nenvironment:\n  GOFLAGS: -mod=vendor\n  TOKEN:\n    from_secret: token\nsteps:\n- name: a\n  image: golang\n  pull: always\n  failure: ignore\n  environment:\n    CGO_ENABLED: 0\n    DEBUG: yes\n    KEY:\n      from_secret: key\n---\nkind: secret\nname: key\nget:\n  path: secret/data/ci\n  name: key\n",
        );
        let p = &bp.stages[0].plan;
        assert_eq!(p.environment["GOFLAGS"], "-mod=vendor");
        assert!(!p.environment.contains_key("TOKEN"));
        let s = &p.steps[0];
        assert_eq!(s.environment["CGO_ENABLED"], "0");
        assert_eq!(s.environment["DEBUG"], "yes");
        assert_eq!(s.secret_environment["TOKEN"], "token");
        assert_eq!(s.secret_environment["KEY"], "key");
        assert_eq!(s.pull, PullPolicy::Always);
        assert_eq!(s.failure, FailurePolicy::Ignore);
        assert_eq!(bp.secrets.len(), 1);
        assert_eq!(
            bp.secrets[0].get.as_ref().map(|g| g.path.as_str()),
            Some("secret/data/ci")
        );
        assert_eq!(p.environment["DRONE_WORKSPACE"], "/drone/src");
    }

    #[test]
    fn workspace_rules() {
        let p = |ws: &str| {
            plan(&format!(
                "kind: pipeline\nworkspace:\n{ws}\nsteps:\n- name: a\n  image: x\n"
            ))
            .stages[0]
                .plan
                .workspace
                .clone()
        };
        let w = p("  path: /go/src/github.com/octo/app");
        assert_eq!(
            (w.base.as_str(), w.path.as_str()),
            ("/go/src/github.com/octo/app", "/go/src/github.com/octo/app")
        );
        let w = p("  base: /go\n  path: src/app");
        assert_eq!((w.base.as_str(), w.path.as_str()), ("/go", "/go/src/app"));
        let w = p("  base: /go");
        assert_eq!((w.base.as_str(), w.path.as_str()), ("/go", "/go"));
        let w = p("  path: app/../code/");
        assert_eq!(
            (w.base.as_str(), w.path.as_str()),
            ("/drone", "/drone/src/code")
        );
        let w = plan("kind: pipeline\nplatform:\n  os: windows\nsteps:\n- name: a\n  image: x\n")
            .stages[0]
            .plan
            .workspace
            .clone();
        assert_eq!(
            (w.base.as_str(), w.path.as_str()),
            ("c:\\drone", "c:\\drone\\src")
        );
    }

    #[test]
    fn resources_and_types() {
        let bp = plan(
            "kind: pipeline\ntype: kubernetes\nsteps:\n- name: a\n  image: x\n  resources:\n    limits:\n      cpu: 1.5\n      memory: 1Gi\n    requests:\n      cpu: 500m\n      memory: 500Mi\n---\nkind: pipeline\ntype: exec\nname: host\nplatform:\n  os: linux\n  arch: arm64\nsteps:\n- name: a\n  commands: [uname]\n",
        );
        let r = &bp.stages[0].plan.steps[0].resources;
        assert_eq!(r.cpu_limit_millis, Some(1500));
        assert_eq!(r.memory_limit_bytes, Some(1 << 30));
        assert_eq!(r.cpu_request_millis, Some(500));
        assert_eq!(r.memory_request_bytes, Some(500 << 20));
        assert_eq!(bp.stages[0].plan.backend, BackendKind::Kubernetes);
        let host = &bp.stages[1].plan;
        assert_eq!(host.backend, BackendKind::Exec);
        assert_eq!(host.platform.arch, "arm64");
        assert_eq!(host.steps[0].image, None);
        assert_eq!(host.environment["DRONE_STAGE_TYPE"], "exec");
    }

    #[test]
    fn pipeline_level_errors() {
        let errs = errors(
            "kind: pipeline\nname: a\ndepends_on: [b]\nsteps: []\n---\nkind: pipeline\nname: b\ndepends_on: [a]\nsteps: []\n---\nkind: pipeline\nname: a\ndepends_on: [c]\nsteps: []\n",
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("duplicate pipeline name `a`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("depends on unknown pipeline `c`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("dependency cycle between pipelines")),
            "{errs:?}"
        );
        let errs = errors("kind: pipelin\nsteps: []\n");
        assert!(
            errs.iter()
                .any(|e| e.contains("unknown kind `pipelin`; did you mean `pipeline`?")),
            "{errs:?}"
        );
        let errs = errors("kind: pipeline\ntype: dockr\nsteps: []\n");
        assert!(
            errs.iter()
                .any(|e| e.contains("unsupported pipeline type `dockr`; did you mean `docker`?")),
            "{errs:?}"
        );
        // Other runners' pipelines are skipped with a warning, and dependencies pass through.
        let text = "kind: pipeline\nname: a\nsteps:\n- name: s\n  image: x\n---\nkind: pipeline\ntype: ssh\nname: win\ndepends_on: [a]\nserver:\n  host: h\nsteps:\n- name: s\n  commands: [dir]\n---\nkind: pipeline\nname: b\ndepends_on: [win]\nsteps:\n- name: s\n  image: x\n";
        assert!(errors(text).is_empty());
        let bp = plan(text);
        let names: Vec<&str> = bp.stages.iter().map(|s| s.plan.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(bp.stages[1].depends_on, ["a"]);
        assert!(
            bp.warnings
                .iter()
                .any(|w| w.message.contains("type `ssh`, which Skiff does not run"))
        );
    }

    #[test]
    fn anchors_merge_into_steps() {
        let bp = plan(
            "kind: pipeline\nsteps:\n- &base\n  name: a\n  image: golang\n  environment:\n    X: 1\n- <<: *base\n  name: b\n",
        );
        let s = &bp.stages[0].plan.steps;
        assert_eq!(s[1].name, "b");
        assert_eq!(s[1].image.as_deref(), Some("golang"));
        assert_eq!(s[1].environment["X"], "1");
    }

    #[test]
    fn image_repository_names() {
        assert_eq!(image_repository("plugins/docker:20.10"), "plugins/docker");
        assert_eq!(
            image_repository("docker.io/plugins/docker"),
            "plugins/docker"
        );
        assert_eq!(
            image_repository("localhost:5000/plugins/docker"),
            "localhost:5000/plugins/docker"
        );
        assert_eq!(image_repository("plugins/ecr@sha256:abc"), "plugins/ecr");
    }
}
