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

#[test]
fn gitea_facts() {
    let t = text("gitea.yml");
    let bp = plan("gitea.yml", &t, &push());
    let testing = &find(&bp, "testing").plan;
    // Graph mode: services and steps without depends_on start right after the clone.
    assert_eq!(step(testing, "mysql").depends_on, ["clone"]);
    assert!(step(testing, "mysql").is_service);
    assert_eq!(step(testing, "build").depends_on, ["clone"]);
    assert_eq!(
        step(testing, "generate-coverage").depends_on,
        ["unit-test", "test-mysql"]
    );
    assert_eq!(step(testing, "tag-test").run_policy, RunPolicy::Never);
    assert_eq!(step(testing, "release-test").run_policy, RunPolicy::Never);
    assert_eq!(step(testing, "unit-test").run_policy, RunPolicy::OnSuccess);
    assert_eq!(
        step(testing, "mysql").environment["MYSQL_ALLOW_EMPTY_PASSWORD"],
        "yes"
    );
    assert_eq!(testing.workspace.path, "/go/src/code.gitea.io/gitea");
    assert_eq!(testing.workspace.base, "/go");
    // `$$` escapes survive substitution; settings maps become JSON.
    let translations = &find(&bp, "translations").plan;
    let update = &step(translations, "update").commands;
    assert!(update[1].contains(r#"-e 's/"$//g'"#), "{update:?}");
    // envsubst treats `\\` in text as an escaped backslash before YAML sees it, which is why
    // this file writes eight backslashes in YAML to get two in the sed expression.
    assert!(
        update[2].starts_with(r#"sed -i -e 's/\\"/"/g'"#),
        "{update:?}"
    );
    assert_eq!(
        step(translations, "upload_translations").environment["PLUGIN_FILES"],
        r#"{"locale_en-US.ini":"options/locale/locale_en-US.ini"}"#
    );
    // The pipeline-level `when` of `notify` is ignored, so it runs on success only.
    let notify = find(&bp, "notify");
    assert!(notify.plan.clone.is_none());
    assert_eq!((notify.on_success, notify.on_failure), (true, false));
    // On push to master, release-version (tags only) is skipped and its deps pass through.
    assert!(!find(&bp, "release-version").matched);
    assert!(notify.depends_on.contains(&"testing".to_string()));
    assert!(!notify.depends_on.contains(&"release-version".to_string()));
    // Tag builds: the tag-only pipeline runs, and `${DRONE_TAG##v}` is substituted.
    let tagged = plan("gitea.yml", &t, &tag());
    let rv = &find(&tagged, "release-version").plan;
    assert_eq!(
        step(rv, "release").environment["PLUGIN_TARGET"],
        "/gitea/1.2.3"
    );
    assert!(!find(&tagged, "translations").matched);
}

#[test]
fn runner_aws_facts() {
    let t = text("drone-runner-aws.yml");
    let bp = plan("a", &t, &push());
    let names: Vec<&str> = bp.stages.iter().map(|s| s.plan.name.as_str()).collect();
    assert_eq!(names, ["default", "manifest"]);
    let p = &find(&bp, "default").plan;
    assert_eq!(step(p, "build").depends_on, ["clone"]);
    assert_eq!(step(p, "publish to docker").depends_on.len(), 6);
    assert_eq!(step(p, "release amd64 binary").run_policy, RunPolicy::Never);
    assert_eq!(
        step(p, "windows exec checks").run_policy,
        RunPolicy::OnSuccess
    );
    // `manifest` depends on a vm pipeline (skipped) whose own deps are empty.
    assert_eq!(find(&bp, "manifest").depends_on, ["default"]);
}

#[test]
fn acrs_anchor_and_event_facts() {
    let t = text("acrs.yml");
    let bp = plan("acrs.yml", &t, &push());
    let p = &bp.stages[0].plan;
    assert_eq!(p.backend, skiff_pipeline::BackendKind::Kubernetes);
    // Merge keys bring image and commands in from the anchors.
    let lint_step = step(p, "linting_deploy");
    assert_eq!(lint_step.image.as_deref(), Some("node:18"));
    assert_eq!(lint_step.commands, ["yarn run test:lint"]);
    assert_eq!(
        step(p, "unit_tests_deploy").environment["NOTIFY_STUB"],
        "true"
    );
    assert_eq!(p.environment["APP_NAME"], "acrs");
    assert_eq!(step(p, "scan-image").resources.cpu_limit_millis, Some(1000));
    assert_eq!(
        step(p, "scan-image").resources.memory_limit_bytes,
        Some(1024 << 20)
    );
    assert_eq!(step(p, "deploy_to_uat").run_policy, RunPolicy::OnSuccess);
    assert_eq!(step(p, "deploy_to_prod").run_policy, RunPolicy::Never);
    // A promotion to PROD runs the promote steps only.
    let promote = BuildContext {
        event: "promote".into(),
        deploy_to: "PROD".into(),
        ..push()
    };
    let bp = plan("acrs.yml", &t, &promote);
    let p = &bp.stages[0].plan;
    assert_eq!(step(p, "deploy_to_prod").run_policy, RunPolicy::OnSuccess);
    assert_eq!(step(p, "deploy_to_uat").run_policy, RunPolicy::Never);
    assert_eq!(p.environment["DRONE_DEPLOY_TO"], "PROD");
    // Cron: only the matching job's steps, and the failure notification on failure.
    let cron = BuildContext {
        event: "cron".into(),
        cron: "security_scans".into(),
        ..push()
    };
    let bp = plan("acrs.yml", &t, &cron);
    let p = &bp.stages[0].plan;
    assert_eq!(step(p, "cron_trivy_scan").run_policy, RunPolicy::OnSuccess);
    assert_eq!(step(p, "cron_tear_down").run_policy, RunPolicy::Never);
    assert_eq!(
        step(p, "cron_notify_slack_security_scans").run_policy,
        RunPolicy::OnFailure
    );
    // The trigger limits branches: a push to `develop` matches nothing.
    let dev = BuildContext {
        branch: "develop".into(),
        git_ref: "refs/heads/develop".into(),
        ..push()
    };
    assert!(!plan("acrs.yml", &t, &dev).stages[0].matched);
}

#[test]
fn settings_and_privilege_facts() {
    let admin = plan("x", &text("drone-admin.yml"), &push());
    let quay = step(&admin.stages[0].plan, "publish-quay");
    // A nested from_secret is not resolved: it is JSON-encoded literally (as Drone does).
    assert_eq!(
        quay.environment["PLUGIN_REGISTRIES"],
        r#"[{"password":{"from_secret":"debug_string"},"registry":"quay.io","username":{"from_secret":"debug_string"}}]"#
    );
    assert_eq!(quay.secret_environment["PLUGIN_DOCKERFILE"], "debug_string");
    assert_eq!(
        quay.environment["PLUGIN_PLATFORMS"],
        "linux/amd64,linux/arm64,linux/arm/v7,linux/arm/v6"
    );
    assert_eq!(quay.environment["PLUGIN_REPO"], "quay.io/thegeeklab/corpus");

    // plugins/docker with a volume loses its automatic privilege; without one it keeps it.
    let cloud = plan("x", &text("uccnetsoc-cloud.yml"), &push());
    let dev = step(&cloud.stages[0].plan, "build_ui_dev");
    assert!(!dev.privileged);
    assert_eq!(dev.environment["PLUGIN_TAGS"], "6dcb09b_dev-env,dev-env");
    assert_eq!(cloud.secrets.len(), 5);
    assert_eq!(
        cloud.secrets[0].get.as_ref().map(|g| g.name.as_str()),
        Some("discord_webhook_id")
    );
    let windlass = plan("x", &text("uccnetsoc-windlass.yml"), &push());
    assert!(step(&windlass.stages[0].plan, "build_dev").privileged);
    // plugins/ecr is auto-privileged too.
    let flask = plan("x", &text("acp-flask-example-app.yml"), &tag());
    let publish = step(&flask.stages[0].plan, "publish");
    assert!(publish.privileged);
    assert_eq!(publish.environment["PLUGIN_TAGS"], "v1.2.3");
}

#[test]
fn paths_and_duplicate_key_facts() {
    let t = text("drone-convert-pathschanged.yml");
    let bp = plan("p", &t, &push());
    // The second `steps:` wins.
    let p = &bp.stages[0].plan;
    assert_eq!(p.steps.len(), 1);
    assert_eq!(p.steps[0].name, "run linter");
    // Unknown changes: paths are not evaluated (Drone); known changes: Skiff evaluates them.
    assert!(bp.stages[0].matched);
    let other = BuildContext {
        changed_paths: vec!["main.go".into()],
        ..push()
    };
    assert!(!plan("p", &t, &other).stages[0].matched);
    let lint_change = BuildContext {
        changed_paths: vec!["main.go".into(), ".golangci.yml".into()],
        ..push()
    };
    assert!(plan("p", &t, &lint_change).stages[0].matched);
}

#[test]
fn status_trigger_and_exec_facts() {
    let bp = plan("x", &text("drone-s3-sync.yml"), &push());
    let n = find(&bp, "notifications");
    assert_eq!((n.on_success, n.on_failure), (true, true));
    assert_eq!(find(&bp, "docs").concurrency, Some(1));
    // `${DRONE_TAG:---next-tag ...}` falls back on a push and takes the tag on a tag build.
    let cg = step(&find(&bp, "build-binaries").plan, "changelog-generate");
    assert!(
        cg.commands[1].ends_with("-o CHANGELOG.md --next-tag unreleased unreleased"),
        "{:?}",
        cg.commands
    );
    let tagged = plan("x", &text("drone-s3-sync.yml"), &tag());
    let cg = step(&find(&tagged, "build-binaries").plan, "changelog-generate");
    assert!(
        cg.commands[1].ends_with("-o CHANGELOG.md v1.2.3"),
        "{:?}",
        cg.commands
    );

    let exec = plan("x", &text("drone-runner-exec.yml"), &push());
    let p = &exec.stages[0].plan;
    assert_eq!(step(p, "publish").run_policy, RunPolicy::Never);
    assert_eq!(step(p, "test").environment["GO111MODULE"], "on");
    assert_eq!(
        step(p, "publish").secret_environment["PLUGIN_API_KEY"],
        "github_api_key"
    );
}
