//! The DAG engine's logic against a fake backend: ordering, parallelism, run policies,
//! failure handling, exit code 78, detach, cancel, secrets and masking.

use async_trait::async_trait;
use skiff_pipeline::{
    BackendKind, FailurePolicy, Plan, Platform, PullPolicy, Resources, RunPolicy, Step, Volume,
    VolumeMount, VolumeSource, Workspace,
};
use skiff_runner::{
    Backend, BuildSpec, MemorySink, RunOptions, RunnerError, Status, StepExit, StepLog, StepSpec,
    execute, prepare,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the fake does for a step: print, sleep, exit.
#[derive(Clone, Default)]
struct Behaviour {
    sleep_ms: u64,
    exit: i64,
    output: &'static str,
    /// The backend fails to run the step with this message.
    error: Option<&'static str>,
}

#[derive(Default)]
struct Fake {
    behaviour: HashMap<String, Behaviour>,
    /// (step, start, end) of every run.
    runs: Mutex<Vec<(String, Instant, Instant)>>,
    envs: Mutex<HashMap<String, BTreeMap<String, String>>>,
    torn_down: Mutex<bool>,
}

impl Fake {
    fn with(steps: &[(&str, Behaviour)]) -> Arc<Self> {
        Arc::new(Fake {
            behaviour: steps
                .iter()
                .map(|(n, b)| (n.to_string(), b.clone()))
                .collect(),
            ..Default::default()
        })
    }
    fn ran(&self) -> Vec<String> {
        self.runs
            .lock()
            .expect("lock")
            .iter()
            .map(|r| r.0.clone())
            .collect()
    }
    fn window(&self, step: &str) -> (Instant, Instant) {
        let runs = self.runs.lock().expect("lock");
        let r = runs.iter().find(|r| r.0 == step).expect("step ran");
        (r.1, r.2)
    }
}

#[async_trait]
impl Backend for Fake {
    async fn setup(&self, _build: &BuildSpec) -> Result<(), RunnerError> {
        Ok(())
    }
    async fn run(&self, spec: &StepSpec, mut log: StepLog, cancel: CancellationToken) -> StepExit {
        let start = Instant::now();
        self.envs
            .lock()
            .expect("lock")
            .insert(spec.step.name.clone(), spec.env.clone());
        let b = self
            .behaviour
            .get(&spec.step.name)
            .cloned()
            .unwrap_or_default();
        log.write(b.output.as_bytes());
        if let Some(message) = b.error {
            return StepExit::Error(message.to_string());
        }
        if spec.step.detach {
            self.runs
                .lock()
                .expect("lock")
                .push((spec.step.name.clone(), start, Instant::now()));
            return StepExit::Detached;
        }
        let exit = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(b.sleep_ms)) => StepExit::Exited(b.exit),
            _ = cancel.cancelled() => StepExit::Killed,
        };
        log.finish();
        self.runs
            .lock()
            .expect("lock")
            .push((spec.step.name.clone(), start, Instant::now()));
        exit
    }
    async fn teardown(&self) -> Vec<RunnerError> {
        *self.torn_down.lock().expect("lock") = true;
        Vec::new()
    }
}

fn step(name: &str, deps: &[&str]) -> Step {
    Step {
        name: name.into(),
        is_service: false,
        image: Some("skiff-test/busybox:1".into()),
        pull: PullPolicy::Never,
        commands: vec!["true".into()],
        entrypoint: None,
        command: None,
        environment: BTreeMap::new(),
        secret_environment: BTreeMap::new(),
        privileged: false,
        volumes: vec![],
        detach: false,
        failure: FailurePolicy::Fail,
        user: None,
        network_mode: None,
        shm_size: None,
        working_dir: None,
        resources: Resources::default(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        run_policy: RunPolicy::OnSuccess,
    }
}

fn plan(steps: Vec<Step>) -> Plan {
    Plan {
        name: "default".into(),
        backend: BackendKind::Docker,
        platform: Platform::default(),
        workspace: Workspace {
            base: "/drone".into(),
            path: "/drone/src".into(),
        },
        clone: None,
        steps,
        volumes: vec![],
        environment: BTreeMap::new(),
        image_pull_secrets: vec![],
        warnings: vec![],
    }
}

fn sleep(ms: u64) -> Behaviour {
    Behaviour {
        sleep_ms: ms,
        ..Default::default()
    }
}
fn exit(code: i64) -> Behaviour {
    Behaviour {
        exit: code,
        ..Default::default()
    }
}

async fn run_with(
    plan: &Plan,
    fake: Arc<Fake>,
    opts: RunOptions,
) -> (skiff_runner::BuildReport, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::default());
    let prepared = prepare(plan, &opts).expect("plan is valid");
    let report = execute(prepared, fake, sink.clone(), CancellationToken::new())
        .await
        .expect("setup succeeds");
    (report, sink)
}

async fn run(plan: &Plan, fake: Arc<Fake>) -> skiff_runner::BuildReport {
    run_with(plan, fake, RunOptions::default()).await.0
}

fn status_of(report: &skiff_runner::BuildReport, name: &str) -> Status {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .expect("step in report")
        .status
}

#[tokio::test]
async fn serial_chain_runs_in_order() {
    let fake = Fake::with(&[("a", sleep(20)), ("b", sleep(5))]);
    let p = plan(vec![step("a", &[]), step("b", &["a"]), step("c", &["b"])]);
    let report = run(&p, fake.clone()).await;
    assert_eq!(report.status, Status::Success);
    assert_eq!(fake.ran(), ["a", "b", "c"]);
    assert!(fake.window("b").0 >= fake.window("a").1);
    assert!(*fake.torn_down.lock().expect("lock"));
}

#[tokio::test]
async fn independent_steps_run_in_parallel() {
    let fake = Fake::with(&[("a", sleep(200)), ("b", sleep(200)), ("c", sleep(10))]);
    let p = plan(vec![step("a", &[]), step("b", &[]), step("c", &["a", "b"])]);
    let report = run(&p, fake.clone()).await;
    assert_eq!(report.status, Status::Success);
    let (a_start, a_end) = fake.window("a");
    let (b_start, b_end) = fake.window("b");
    assert!(a_start < b_end && b_start < a_end);
    assert!(fake.window("c").0 >= a_end.max(b_end));
}

#[tokio::test]
async fn failure_skips_on_success_and_runs_on_failure_steps() {
    let fake = Fake::with(&[("build", exit(2))]);
    let mut notify = step("notify", &["test"]);
    notify.run_policy = RunPolicy::OnFailure;
    let mut always = step("always", &["notify"]);
    always.run_policy = RunPolicy::Always;
    let p = plan(vec![
        step("build", &[]),
        step("test", &["build"]),
        notify,
        always,
    ]);
    let report = run(&p, fake.clone()).await;
    assert_eq!(report.status, Status::Failure);
    assert_eq!(status_of(&report, "build"), Status::Failure);
    assert_eq!(report.steps[0].exit_code, 2);
    assert_eq!(status_of(&report, "test"), Status::Skipped);
    assert_eq!(status_of(&report, "notify"), Status::Success);
    assert_eq!(status_of(&report, "always"), Status::Success);
    let envs = fake.envs.lock().expect("lock");
    assert_eq!(envs["notify"]["DRONE_BUILD_STATUS"], "failure");
    assert_eq!(envs["notify"]["DRONE_FAILED_STEPS"], "build");
}

#[tokio::test]
async fn on_failure_step_is_skipped_when_all_pass() {
    let fake = Fake::with(&[]);
    let mut notify = step("notify", &["a"]);
    notify.run_policy = RunPolicy::OnFailure;
    let report = run(&plan(vec![step("a", &[]), notify]), fake).await;
    assert_eq!(report.status, Status::Success);
    assert_eq!(status_of(&report, "notify"), Status::Skipped);
}

#[tokio::test]
async fn ignored_failure_does_not_fail_the_pipeline() {
    let fake = Fake::with(&[("lint", exit(1))]);
    let mut lint = step("lint", &[]);
    lint.failure = FailurePolicy::Ignore;
    let report = run(&plan(vec![lint, step("test", &["lint"])]), fake).await;
    assert_eq!(report.status, Status::Success);
    assert_eq!(status_of(&report, "lint"), Status::Failure);
    assert!(report.steps[0].ignored);
    assert_eq!(status_of(&report, "test"), Status::Success);
}

#[tokio::test]
async fn fail_fast_kills_running_and_skips_pending() {
    let fake = Fake::with(&[("quick", exit(1)), ("slow", sleep(5_000))]);
    let mut quick = step("quick", &[]);
    quick.failure = FailurePolicy::Fast;
    let p = plan(vec![quick, step("slow", &[]), step("after", &["slow"])]);
    let report = run(&p, fake).await;
    assert_eq!(report.status, Status::Failure);
    assert_eq!(status_of(&report, "slow"), Status::Killed);
    assert_eq!(status_of(&report, "after"), Status::Skipped);
}

#[tokio::test]
async fn exit_78_succeeds_and_skips_pending_steps() {
    let fake = Fake::with(&[("check", exit(78))]);
    let mut always = step("always", &["next"]);
    always.run_policy = RunPolicy::Always;
    let p = plan(vec![step("check", &[]), step("next", &["check"]), always]);
    let report = run(&p, fake.clone()).await;
    assert_eq!(report.status, Status::Success);
    assert_eq!(status_of(&report, "check"), Status::Success);
    assert_eq!(report.steps[0].exit_code, 78);
    assert_eq!(status_of(&report, "next"), Status::Skipped);
    assert_eq!(status_of(&report, "always"), Status::Skipped);
    assert_eq!(fake.ran(), ["check"]);
}

#[tokio::test]
async fn detached_step_ends_success_immediately() {
    let fake = Fake::with(&[("db", exit(3))]);
    let mut db = step("db", &[]);
    db.detach = true;
    let report = run(&plan(vec![db, step("use", &["db"])]), fake).await;
    assert_eq!(report.status, Status::Success);
    assert_eq!(status_of(&report, "db"), Status::Success);
    assert_eq!(status_of(&report, "use"), Status::Success);
}

#[tokio::test]
async fn never_policy_and_exclude_skip_steps() {
    let fake = Fake::with(&[]);
    let mut skipped = step("when-false", &[]);
    skipped.run_policy = RunPolicy::Never;
    let p = plan(vec![skipped, step("a", &[]), step("b", &["a"])]);
    let opts = RunOptions {
        exclude: vec!["b".into()],
        ..Default::default()
    };
    let (report, _) = run_with(&p, fake.clone(), opts).await;
    assert_eq!(report.status, Status::Success);
    assert_eq!(status_of(&report, "when-false"), Status::Skipped);
    assert_eq!(status_of(&report, "b"), Status::Skipped);
    assert_eq!(fake.ran(), ["a"]);
}

#[tokio::test]
async fn include_runs_only_the_listed_steps() {
    let fake = Fake::with(&[]);
    let p = plan(vec![step("a", &[]), step("b", &["a"]), step("c", &["b"])]);
    let opts = RunOptions {
        include: vec!["b".into()],
        ..Default::default()
    };
    let (report, _) = run_with(&p, fake.clone(), opts).await;
    assert_eq!(fake.ran(), ["b"]);
    assert_eq!(report.status, Status::Success);
}

#[tokio::test]
async fn cancel_kills_running_and_skips_pending() {
    let fake = Fake::with(&[("long", sleep(10_000))]);
    let p = plan(vec![step("long", &[]), step("next", &["long"])]);
    let prepared = prepare(&p, &RunOptions::default()).expect("valid");
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let report = execute(
        prepared,
        fake.clone(),
        Arc::new(MemorySink::default()),
        cancel,
    )
    .await
    .expect("setup");
    assert_eq!(report.status, Status::Killed);
    assert_eq!(status_of(&report, "long"), Status::Killed);
    assert_eq!(report.steps[0].exit_code, 137);
    assert_eq!(status_of(&report, "next"), Status::Skipped);
    assert!(*fake.torn_down.lock().expect("lock"));
}

#[tokio::test]
async fn secrets_are_resolved_and_masked() {
    let fake = Fake::with(&[(
        "deploy",
        Behaviour {
            output: "token is s3cr3t-value\nbye",
            ..Default::default()
        },
    )]);
    let mut deploy = step("deploy", &[]);
    deploy
        .secret_environment
        .insert("TOKEN".into(), "api_token".into());
    deploy
        .secret_environment
        .insert("MISSING".into(), "nope".into());
    let opts = RunOptions {
        secrets: BTreeMap::from([("api_token".into(), "s3cr3t-value".into())]),
        ..Default::default()
    };
    let (report, sink) = run_with(&plan(vec![deploy]), fake.clone(), opts).await;
    assert_eq!(sink.text_of("deploy"), "token is ******\nbye");
    let envs = fake.envs.lock().expect("lock");
    assert_eq!(envs["deploy"]["TOKEN"], "s3cr3t-value");
    assert_eq!(envs["deploy"]["MISSING"], "");
    assert!(report.warnings.iter().any(|w| w.contains("`nope`")));
}

#[test]
fn bad_plans_fail_before_running() {
    let unknown = plan(vec![step("a", &["ghost"])]);
    let err = prepare(&unknown, &RunOptions::default()).expect_err("unknown dep");
    assert!(err.to_string().contains("unknown step `ghost`"), "{err}");

    let cycle = plan(vec![step("a", &["b"]), step("b", &["a"])]);
    let err = prepare(&cycle, &RunOptions::default()).expect_err("cycle");
    assert!(err.to_string().contains("cycle"), "{err}");

    let mut priv_step = step("a", &[]);
    priv_step.privileged = true;
    let err = prepare(&plan(vec![priv_step.clone()]), &RunOptions::default()).expect_err("trust");
    assert!(err.to_string().contains("--trusted"), "{err}");
    let trusted = RunOptions {
        trusted: true,
        ..Default::default()
    };
    assert!(prepare(&plan(vec![priv_step]), &trusted).is_ok());

    let mut mounts = step("a", &[]);
    mounts.volumes.push(VolumeMount {
        name: "cache".into(),
        path: "/cache".into(),
    });
    let err = prepare(&plan(vec![mounts.clone()]), &RunOptions::default()).expect_err("volume");
    assert!(err.to_string().contains("does not define"), "{err}");
    let mut with_host = plan(vec![mounts]);
    with_host.volumes.push(Volume {
        name: "cache".into(),
        source: VolumeSource::Host {
            path: "/tmp".into(),
        },
    });
    assert!(prepare(&with_host, &RunOptions::default()).is_err());
    assert!(prepare(&with_host, &trusted).is_ok());

    let err = prepare(
        &plan(vec![step("a", &[])]),
        &RunOptions {
            include: vec!["zzz".into()],
            ..Default::default()
        },
    )
    .expect_err("unknown include");
    assert!(err.to_string().contains("zzz"), "{err}");
}

#[test]
fn clone_dependency_is_dropped_in_exec_mode() {
    let p = plan(vec![step("a", &["clone"])]);
    assert!(prepare(&p, &RunOptions::default()).is_ok());
}

#[tokio::test]
async fn backend_error_is_an_error_status_with_a_reason() {
    let fake = Fake::with(&[(
        "broken",
        Behaviour {
            error: Some("cannot start the container: no such file"),
            ..Default::default()
        },
    )]);
    let p = plan(vec![step("broken", &[]), step("next", &["broken"])]);
    let (report, sink) = run_with(&p, fake, RunOptions::default()).await;
    assert_eq!(report.status, Status::Error);
    assert_eq!(status_of(&report, "broken"), Status::Error);
    assert_eq!(report.steps[0].exit_code, 255);
    assert_eq!(status_of(&report, "next"), Status::Skipped);
    assert_eq!(
        sink.text_of("broken"),
        "skiff: cannot start the container: no such file"
    );
}

/// A built-in plugin for the tests: records what it got, logs, sleeps, exits.
struct Echo {
    seen: Mutex<Vec<(BTreeMap<String, String>, std::path::PathBuf)>>,
    sleep_ms: u64,
    exit: i64,
}

impl skiff_runner::BuiltinStep for Echo {
    fn matches(&self, image: &str) -> bool {
        skiff_runner::builtin::image_is(image, "skiff/echo")
    }
    fn run(&self, ctx: skiff_runner::BuiltinContext) -> skiff_runner::BuiltinFuture<'_> {
        Box::pin(async move {
            ctx.log.line(&format!("hello {}", ctx.env["PLUGIN_WHO"]));
            ctx.log.line(&format!("token {}", ctx.env["PLUGIN_TOKEN"]));
            self.seen
                .lock()
                .expect("lock")
                .push((ctx.env.clone(), ctx.workspace.clone()));
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
            self.exit
        })
    }
}

fn builtin_plan() -> Plan {
    let mut echo = step("echo", &["a"]);
    echo.image = Some("skiff/echo:1".into());
    echo.commands.clear();
    echo.environment.insert("PLUGIN_WHO".into(), "world".into());
    echo.secret_environment
        .insert("PLUGIN_TOKEN".into(), "token".into());
    plan(vec![step("a", &[]), echo, step("after", &["echo"])])
}

fn builtin_opts() -> RunOptions {
    RunOptions {
        secrets: BTreeMap::from([("token".to_string(), "s3cr3t-value".to_string())]),
        host_workspace: Some(std::env::temp_dir()),
        ..Default::default()
    }
}

#[tokio::test]
async fn builtin_steps_run_in_process_not_on_the_backend() {
    let fake = Fake::with(&[]);
    let echo = Arc::new(Echo {
        seen: Mutex::new(Vec::new()),
        sleep_ms: 0,
        exit: 0,
    });
    let prepared = prepare(&builtin_plan(), &builtin_opts())
        .expect("valid")
        .with_builtins(vec![echo.clone()]);
    assert_eq!(prepared.builtin_steps(), ["echo"]);
    let backend_steps: Vec<&str> = prepared
        .build()
        .steps
        .iter()
        .map(|s| s.step.name.as_str())
        .collect();
    assert_eq!(backend_steps, ["a", "after"], "the backend never sees it");
    let sink = Arc::new(MemorySink::default());
    let report = execute(
        prepared,
        fake.clone(),
        sink.clone(),
        CancellationToken::new(),
    )
    .await
    .expect("setup");
    assert_eq!(report.status, Status::Success);
    assert_eq!(status_of(&report, "echo"), Status::Success);
    assert_eq!(fake.ran(), ["a", "after"]);
    let seen = echo.seen.lock().expect("lock");
    assert_eq!(seen[0].0["PLUGIN_TOKEN"], "s3cr3t-value", "secret resolved");
    assert_eq!(seen[0].0["DRONE_STEP_NAME"], "echo");
    assert_eq!(seen[0].1, std::env::temp_dir());
    assert_eq!(sink.text_of("echo"), "hello world\ntoken ******");
}

#[tokio::test]
async fn builtin_exit_codes_and_cancel_map_to_statuses() {
    let failing = Arc::new(Echo {
        seen: Mutex::new(Vec::new()),
        sleep_ms: 0,
        exit: 3,
    });
    let prepared = prepare(&builtin_plan(), &builtin_opts())
        .expect("valid")
        .with_builtins(vec![failing]);
    let fake = Fake::with(&[]);
    let report = execute(
        prepared,
        fake.clone(),
        Arc::new(MemorySink::default()),
        CancellationToken::new(),
    )
    .await
    .expect("setup");
    assert_eq!(report.status, Status::Failure);
    assert_eq!(status_of(&report, "echo"), Status::Failure);
    assert_eq!(report.steps[1].exit_code, 3);
    assert_eq!(status_of(&report, "after"), Status::Skipped);

    let slow = Arc::new(Echo {
        seen: Mutex::new(Vec::new()),
        sleep_ms: 10_000,
        exit: 0,
    });
    let prepared = prepare(&builtin_plan(), &builtin_opts())
        .expect("valid")
        .with_builtins(vec![slow]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let report = execute(prepared, fake, Arc::new(MemorySink::default()), cancel)
        .await
        .expect("setup");
    assert_eq!(report.status, Status::Killed);
    assert_eq!(status_of(&report, "echo"), Status::Killed);
    assert_eq!(report.steps[1].exit_code, 137);
}

#[tokio::test]
async fn builtin_without_a_host_workspace_errors() {
    let echo = Arc::new(Echo {
        seen: Mutex::new(Vec::new()),
        sleep_ms: 0,
        exit: 0,
    });
    let opts = RunOptions {
        host_workspace: None,
        ..builtin_opts()
    };
    let prepared = prepare(&builtin_plan(), &opts)
        .expect("valid")
        .with_builtins(vec![echo]);
    let sink = Arc::new(MemorySink::default());
    let report = execute(
        prepared,
        Fake::with(&[]),
        sink.clone(),
        CancellationToken::new(),
    )
    .await
    .expect("setup");
    assert_eq!(status_of(&report, "echo"), Status::Error);
    assert!(
        sink.text_of("echo")
            .contains("needs the workspace on the runner host")
    );
}

#[tokio::test]
async fn plugin_step_in_exec_pipeline_needs_a_builtin() {
    let mut p = builtin_plan();
    p.backend = BackendKind::Exec;
    let prepared = prepare(&p, &builtin_opts()).expect("valid");
    let sink = Arc::new(MemorySink::default());
    let fake = Fake::with(&[]);
    let report = execute(
        prepared,
        fake.clone(),
        sink.clone(),
        CancellationToken::new(),
    )
    .await
    .expect("setup");
    assert_eq!(status_of(&report, "echo"), Status::Error);
    assert!(
        sink.text_of("echo")
            .contains("exec pipelines run only built-in plugins"),
        "{}",
        sink.text_of("echo")
    );
    assert_eq!(fake.ran(), ["a"]);
}

/// Records what a sink is told, in order.
#[derive(Default)]
struct EventSink {
    events: Mutex<Vec<String>>,
}

impl skiff_runner::LogSink for EventSink {
    fn line(&self, line: skiff_runner::LogLine) {
        self.events
            .lock()
            .expect("lock")
            .push(format!("line {} {}", line.step, line.text));
    }
    fn step_started(&self, step: &str, number: usize) {
        self.events
            .lock()
            .expect("lock")
            .push(format!("started {step} #{number}"));
    }
    fn step_finished(&self, report: &skiff_runner::StepReport) {
        self.events.lock().expect("lock").push(format!(
            "finished {} {} {}",
            report.name, report.status, report.exit_code
        ));
    }
}

#[tokio::test]
async fn sink_hears_each_step_start_and_end_in_order() {
    let fake = Fake::with(&[
        (
            "a",
            Behaviour {
                output: "from a\n",
                ..Default::default()
            },
        ),
        (
            "b",
            Behaviour {
                output: "from b\n",
                exit: 2,
                ..Default::default()
            },
        ),
    ]);
    let p = plan(vec![step("a", &[]), step("b", &["a"]), step("c", &["b"])]);
    let sink = Arc::new(EventSink::default());
    let prepared = prepare(&p, &RunOptions::default()).expect("plan is valid");
    let report = execute(prepared, fake, sink.clone(), CancellationToken::new())
        .await
        .expect("setup succeeds");
    assert_eq!(report.status, Status::Failure);
    let events = sink.events.lock().expect("lock").clone();
    assert_eq!(
        events,
        [
            "started a #1",
            "line a from a",
            "finished a success 0",
            "started b #2",
            "line b from b",
            "finished b failure 2",
            // `c` never starts: it is only reported, once, as skipped.
            "finished c skipped 0",
        ]
    );
}
