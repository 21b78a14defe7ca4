//! The Drone compatibility corpus: real `.drone.yml` files from public repositories (each
//! names its source in its first line). Every file must lint without errors and plan for a
//! push and for a tag; some files also pin structural facts that exercise specific rules.

use skiff_pipeline::{BuildContext, BuildPlan, Plan, PlanOptions, RunPolicy, lint, plan_build};
use std::path::PathBuf;

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("read");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

fn push() -> BuildContext {
    BuildContext {
        event: "push".into(),
        branch: "master".into(),
        git_ref: "refs/heads/master".into(),
        sha: "6dcb09b5b57875f334f61aebed695e2e4193db5e".into(),
        before: "0000000000000000000000000000000000000000".into(),
        message: "corpus: test commit".into(),
        author: "octocat".into(),
        repo_owner: "octo".into(),
        repo_name: "corpus".into(),
        repo_default_branch: "master".into(),
        remote_url: "https://git.example.com/octo/corpus.git".into(),
        build_number: 42,
        system_host: "ci.example.com".into(),
        system_proto: "https".into(),
        created_unix: 1_700_000_000,
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

const TRUSTED: PlanOptions = PlanOptions { trusted: true };

fn plan(name: &str, text: &str, ctx: &BuildContext) -> BuildPlan {
    plan_build(name, text, ctx, &TRUSTED).unwrap_or_else(|e| panic!("{name} ({}):\n{e}", ctx.event))
}

/// Structural sanity every compiled plan must have.
fn check_plan(file: &str, p: &Plan) {
    let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    for (i, n) in names.iter().enumerate() {
        assert!(
            !names[..i].contains(n),
            "{file}/{}: duplicate step {n}",
            p.name
        );
    }
    for s in &p.steps {
        for d in &s.depends_on {
            let ok = names.contains(&d.as_str()) || (d == "clone" && p.clone.is_some());
            assert!(
                ok,
                "{file}/{}: step {} depends on missing {d}",
                p.name, s.name
            );
        }
        assert!(
            s.image.is_some() || p.backend == skiff_pipeline::BackendKind::Exec,
            "{file}: {} has no image",
            s.name
        );
    }
    assert!(
        p.workspace.path.starts_with('/'),
        "{file}: workspace {:?}",
        p.workspace
    );
    assert_eq!(p.environment.get("DRONE_STAGE_NAME"), Some(&p.name));
}

#[test]
fn corpus_has_at_least_thirty_sourced_files() {
    let files = corpus();
    assert!(files.len() >= 30, "only {} corpus files", files.len());
    for (name, text) in &files {
        let first = text.lines().next().unwrap_or("");
        assert!(
            first.starts_with("# source: ") && first.contains(" @ "),
            "{name}: missing source header"
        );
    }
}

#[test]
fn every_file_lints_and_plans_for_push_and_tag() {
    for (name, text) in corpus() {
        let errors: Vec<String> = lint(&name, &text, &TRUSTED)
            .into_iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
        for ctx in [push(), tag()] {
            let bp = plan(&name, &text, &ctx);
            assert!(!bp.stages.is_empty(), "{name}: no stages");
            for stage in &bp.stages {
                check_plan(&name, &stage.plan);
                for d in &stage.depends_on {
                    assert!(
                        bp.stages.iter().any(|s| &s.plan.name == d),
                        "{name}: stage dep {d}"
                    );
                }
            }
        }
    }
}

fn find<'a>(bp: &'a BuildPlan, stage: &str) -> &'a skiff_pipeline::Stage {
    bp.stages
        .iter()
        .find(|s| s.plan.name == stage)
        .unwrap_or_else(|| panic!("no stage {stage}"))
}

fn step<'a>(p: &'a Plan, name: &str) -> &'a skiff_pipeline::Step {
    p.steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {}", p.name))
}

fn text(name: &str) -> String {
    corpus()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("no corpus file {name}"))
}

#[test]
fn k3s_facts() {
    let t = text("k3s.yml");
    let bp = plan("k3s.yml", &t, &push());
    assert_eq!(bp.stages.len(), 7);
    // `s390x` disables the clone and names its own step `clone`.
    let s390x = &find(&bp, "s390x").plan;
    assert!(s390x.clone.is_none());
    assert_eq!(s390x.steps[0].name, "clone");
    assert!(s390x.steps[0].depends_on.is_empty());
    assert_eq!(step(s390x, "skipfiles").depends_on, ["clone"]);
    // Serial mode: each step after the previous one, the first after the clone.
    let amd64 = &find(&bp, "amd64").plan;
    assert_eq!(step(amd64, "skipfiles").depends_on, ["clone"]);
    assert_eq!(step(amd64, "build").depends_on, ["skipfiles"]);
    // `refs/head/master` (sic) never matches, and tag-only steps are skipped on push.
    assert_eq!(step(amd64, "docker-publish").run_policy, RunPolicy::Never);
    assert_eq!(
        step(amd64, "fossa").failure,
        skiff_pipeline::FailurePolicy::Ignore
    );
    // `trigger.instance` is ignored, so `manifest` matches tags only through event/ref.
    assert!(!find(&bp, "manifest").matched);
    let tagged = plan("k3s.yml", &t, &tag());
    assert!(find(&tagged, "manifest").matched);
    assert_eq!(find(&tagged, "dispatch").depends_on, ["manifest"]);
    // Step `when.instance` is evaluated against the server host: not drone-publish.k3s.io.
    assert_eq!(
        step(&find(&tagged, "amd64").plan, "docker-publish").run_policy,
        RunPolicy::Never
    );
    // Host volume for the docker socket, and the k3s echo with ${DRONE_TAG} substituted.
    assert!(matches!(
        amd64.volumes[0].source,
        skiff_pipeline::VolumeSource::Host { .. }
    ));
    let build = step(&find(&tagged, "amd64").plan, "build");
    assert!(
        build
            .commands
            .iter()
            .any(|c| c.starts_with("echo \"v1.2.3-amd64\"")),
        "{:?}",
        build.commands
    );
    assert_eq!(
        build.secret_environment["GITHUB_TOKEN"],
        "unprivileged_github_token"
    );
    assert_eq!(
        find(&bp, "s390x").node.get("arch").map(String::as_str),
        Some("s390x")
    );
}

#[test]
fn meltwater_facts() {
    let t = text("drone-meltwater-cache.yml");
    let bp = plan("m", &t, &push());
    let names: Vec<&str> = bp.stages.iter().map(|s| s.plan.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "testing",
            "linux-amd64",
            "linux-arm64",
            "linux-arm",
            "notifications"
        ]
    );
    let testing = &find(&bp, "testing").plan;
    assert_eq!(testing.clone.as_ref().and_then(|c| c.depth), Some(50));
    assert_eq!(testing.steps.iter().filter(|s| s.is_service).count(), 4);
    assert_eq!(
        step(testing, "rebuild-cache").environment["PLUGIN_MOUNT"],
        "vendor"
    );
    // Dependencies on the skipped ssh pipelines pass through to `testing`... which matched.
    assert_eq!(
        find(&bp, "notifications").depends_on,
        ["linux-amd64", "linux-arm64", "linux-arm", "testing"]
    );
    let tagged = plan("m", &t, &tag());
    let tag_build = step(&find(&tagged, "linux-amd64").plan, "build-tag");
    assert!(
        tag_build.commands[0].contains("-X main.version=1.2.3 "),
        "{:?}",
        tag_build.commands
    );
    assert!(step(&find(&tagged, "linux-amd64").plan, "publish").privileged);
}
