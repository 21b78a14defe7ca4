//! End-to-end: `skiff exec` (the real binary) on the real Docker Engine with the test image.
//! Each test checks what the user sees (logs, the summary table, the exit code) and that the
//! build left nothing behind.

mod exec_support;

use exec_support::{Workspace, build_id, docker_ready, leftovers};

fn header(name: &str) -> String {
    format!("kind: pipeline\ntype: docker\nname: {name}\n\n")
}

#[test]
fn runs_commands_like_drone_and_cleans_up() {
    if !docker_ready("runs_commands_like_drone_and_cleans_up") {
        return;
    }
    let yaml = header("default")
        + r#"steps:
- name: hello
  image: skiff-test/busybox:1
  pull: never
  commands:
  - echo "hi $DRONE_STEP_NAME"
  - cat marker.txt
  - echo made-here > out.txt
- name: check
  image: skiff-test/busybox:1
  commands:
  - test "$(cat out.txt)" = made-here
  - pwd
  - echo "$DRONE_BRANCH $DRONE_BUILD_EVENT $EXTRA"
"#;
    let ws = Workspace::new(&yaml);
    ws.write("marker.txt", "from the host\n");
    ws.write("extra.env", "EXTRA=from-env-file\n");
    let id = build_id("basic");
    let run = ws.run(&[
        "--build-id",
        &id,
        "--branch",
        "main",
        "--env-file",
        "extra.env",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(
        run.step_log("hello"),
        "+ echo \"hi $DRONE_STEP_NAME\"\nhi hello\n+ cat marker.txt\nfrom the host\n+ echo made-here > out.txt"
    );
    assert_eq!(
        run.step_log("check"),
        "+ test \"$(cat out.txt)\" = made-here\n+ pwd\n/drone/src\n+ echo \"$DRONE_BRANCH $DRONE_BUILD_EVENT $EXTRA\"\nmain push from-env-file"
    );
    assert_eq!(run.status_of("hello"), "success");
    assert_eq!(run.status_of("check"), "success");
    // The workspace is the working directory, bind-mounted.
    assert_eq!(
        std::fs::read_to_string(ws.path().join("out.txt")).expect("out.txt"),
        "made-here\n"
    );
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn failure_fails_the_pipeline_and_ignore_does_not() {
    if !docker_ready("failure_fails_the_pipeline_and_ignore_does_not") {
        return;
    }
    let yaml = header("default")
        + r#"steps:
- name: flaky
  image: skiff-test/busybox:1
  failure: ignore
  commands:
  - exit 3
- name: build
  image: skiff-test/busybox:1
  commands:
  - echo building
  - false
  - echo never printed
- name: test
  image: skiff-test/busybox:1
  commands:
  - echo should be skipped
- name: notify
  image: skiff-test/busybox:1
  commands:
  - echo "status=$DRONE_BUILD_STATUS failed=$DRONE_FAILED_STEPS"
  when:
    status: [failure]
"#;
    let ws = Workspace::new(&yaml);
    let id = build_id("failure");
    let run = ws.run(&["--build-id", &id]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.status_of("flaky"), "failure");
    assert!(run.stdout.contains("failure (ignored)"), "{}", run.dump());
    assert_eq!(run.status_of("build"), "failure");
    assert_eq!(run.status_of("test"), "skipped");
    assert_eq!(run.status_of("notify"), "success");
    assert!(!run.stdout.contains("never printed"));
    assert!(
        run.step_log("notify")
            .contains("status=failure failed=build")
    );
    assert!(run.stdout.contains("pipeline `default`: failure"));
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn parallel_steps_overlap_and_join() {
    if !docker_ready("parallel_steps_overlap_and_join") {
        return;
    }
    // a and b each wait for the other's file: they can only finish if they run together.
    let yaml = header("default")
        + r#"steps:
- name: a
  image: skiff-test/busybox:1
  commands:
  - touch /drone/a-started
  - for i in $(seq 100); do [ -f /drone/b-started ] && break; sleep 0.1; done
  - test -f /drone/b-started
- name: b
  image: skiff-test/busybox:1
  commands:
  - touch /drone/b-started
  - for i in $(seq 100); do [ -f /drone/a-started ] && break; sleep 0.1; done
  - test -f /drone/a-started
- name: join
  image: skiff-test/busybox:1
  depends_on: [a, b]
  commands:
  - ls /drone
"#;
    let ws = Workspace::new(&yaml);
    let id = build_id("parallel");
    let run = ws.run(&["--build-id", &id]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert!(run.step_log("join").contains("a-started"));
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn services_are_reachable_by_name() {
    if !docker_ready("services_are_reachable_by_name") {
        return;
    }
    let yaml = header("default")
        + r#"services:
- name: web
  image: skiff-test/busybox:1
  commands:
  - mkdir -p /www && echo hello-from-service > /www/index.html
  - httpd -f -p 8080 -h /www

steps:
- name: client
  image: skiff-test/busybox:1
  commands:
  - for i in $(seq 50); do wget -q -O - http://web:8080/ && exit 0; sleep 0.2; done; exit 1
"#;
    let ws = Workspace::new(&yaml);
    let id = build_id("services");
    let run = ws.run(&["--build-id", &id]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert!(run.step_log("client").contains("hello-from-service"));
    assert_eq!(run.status_of("web"), "success");
    // The service was still running at the end; teardown removed it.
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn secrets_are_injected_and_masked() {
    if !docker_ready("secrets_are_injected_and_masked") {
        return;
    }
    let yaml = header("default")
        + r#"steps:
- name: deploy
  image: skiff-test/busybox:1
  environment:
    TOKEN:
      from_secret: api_token
    MULTI:
      from_secret: cert
  commands:
  - echo "token=$TOKEN"
  - "printf 'split: p4ss'; sleep 0.5; printf 'w0rd-XYZ done\\n'"
  - echo "$MULTI"
  - test "$TOKEN" = "p4ssw0rd-XYZ"
"#;
    let ws = Workspace::new(&yaml);
    ws.write(
        "secrets.env",
        "api_token=p4ssw0rd-XYZ\ncert=\"line-one\\nline-two\"\n",
    );
    let run = ws.run(&["--secret-file", "secrets.env"]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert!(!run.stdout.contains("p4ssw0rd"), "{}", run.dump());
    assert!(!run.stdout.contains("line-one"), "{}", run.dump());
    let log = run.step_log("deploy");
    assert!(log.contains("token=******"), "{log}");
    assert!(log.contains("******\n******"), "{log}");
    // Written in two chunks half a second apart, masked as one line.
    assert!(log.contains("split: ****** done"), "{log}");
}

#[test]
fn when_and_trigger_follow_the_event() {
    if !docker_ready("when_and_trigger_follow_the_event") {
        return;
    }
    let yaml = header("main-only")
        + r#"trigger:
  branch: [main]

steps:
- name: always-here
  image: skiff-test/busybox:1
  commands: [echo here]
- name: tags-only
  image: skiff-test/busybox:1
  commands: [echo tag]
  when:
    event: [tag]
---
kind: pipeline
type: docker
name: other-branches
trigger:
  branch:
    exclude: [main]
steps:
- name: other
  image: skiff-test/busybox:1
  commands: [echo other]
"#;
    let ws = Workspace::new(&yaml);
    let run = ws.run(&["--branch", "main"]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.status_of("always-here"), "success");
    assert_eq!(run.status_of("tags-only"), "skipped");
    assert!(!run.stdout.contains("[other:"), "{}", run.dump());

    let run = ws.run(&["--branch", "feature/x"]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.step_log("other"), "+ echo other\nother");
    assert!(!run.stdout.contains("[always-here:"));
}

#[test]
fn host_and_temp_volumes() {
    if !docker_ready("host_and_temp_volumes") {
        return;
    }
    let host_dir = tempfile::tempdir().expect("host dir");
    std::fs::write(host_dir.path().join("from-host"), "host-data\n").expect("write");
    let yaml = header("default")
        + &format!(
            r#"volumes:
- name: cache
  temp: {{}}
- name: ram
  temp:
    medium: memory
- name: hostdir
  host:
    path: {}

steps:
- name: write
  image: skiff-test/busybox:1
  volumes:
  - name: cache
    path: /cache
  - name: hostdir
    path: /host
  - name: ram
    path: /ram
  commands:
  - echo cached > /cache/file
  - cat /host/from-host
  - echo to-host > /host/written
  - grep -q ' /ram tmpfs' /proc/mounts && echo ram-is-tmpfs
- name: read
  image: skiff-test/busybox:1
  volumes:
  - name: cache
    path: /other
  commands:
  - cat /other/file
"#,
            host_dir.path().display()
        );
    let ws = Workspace::new(&yaml);

    // Host volumes need --trusted: refused before anything starts.
    let run = ws.run(&[]);
    assert_ne!(run.code, Some(0), "{}", run.dump());
    assert!(run.stderr.contains("trusted"), "{}", run.dump());
    assert!(!run.stdout.contains("[write:"));

    let id = build_id("volumes");
    let run = ws.run(&["--trusted", "--build-id", &id]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let log = run.step_log("write");
    assert!(log.contains("host-data"), "{log}");
    assert!(log.contains("ram-is-tmpfs"), "{log}");
    assert!(run.step_log("read").contains("cached"));
    assert_eq!(
        std::fs::read_to_string(host_dir.path().join("written")).expect("written"),
        "to-host\n"
    );
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn exit_78_ends_early_with_success() {
    if !docker_ready("exit_78_ends_early_with_success") {
        return;
    }
    let yaml = header("default")
        + r#"steps:
- name: check
  image: skiff-test/busybox:1
  commands:
  - echo nothing to do
  - exit 78
- name: build
  image: skiff-test/busybox:1
  commands: [echo building]
"#;
    let ws = Workspace::new(&yaml);
    let id = build_id("exit78");
    let run = ws.run(&["--build-id", &id]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.status_of("check"), "success");
    assert_eq!(run.status_of("build"), "skipped");
    assert!(!run.stdout.contains("building"));
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn include_exclude_and_detach() {
    if !docker_ready("include_exclude_and_detach") {
        return;
    }
    let yaml = header("default")
        + r#"steps:
- name: background
  image: skiff-test/busybox:1
  detach: true
  commands:
  - sleep 900
- name: one
  image: skiff-test/busybox:1
  commands: [echo one]
- name: two
  image: skiff-test/busybox:1
  commands: [echo two]
"#;
    let ws = Workspace::new(&yaml);
    let id = build_id("detach");
    let started = std::time::Instant::now();
    let run = ws.run(&["--build-id", &id, "--exclude", "two"]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    // Not a speed check: the detached step sleeps 15 minutes, so finishing within 5 only
    // means the pipeline did not wait for it.
    assert!(started.elapsed() < std::time::Duration::from_secs(300));
    assert_eq!(run.status_of("background"), "success");
    assert_eq!(run.status_of("one"), "success");
    assert_eq!(run.status_of("two"), "skipped");
    assert_eq!(leftovers(&id), Vec::<String>::new());

    let run = ws.run(&["--include", "two"]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.status_of("one"), "skipped");
    assert_eq!(run.status_of("two"), "success");
}

#[test]
fn bad_input_fails_before_anything_starts() {
    if !docker_ready("bad_input_fails_before_anything_starts") {
        return;
    }
    // A missing image with pull: never.
    let ws = Workspace::new(
        &(header("default")
            + r#"steps:
- name: ok
  image: skiff-test/busybox:1
  commands: [echo should not run]
- name: missing
  image: skiff-test/does-not-exist:1
  pull: never
  commands: [true]
"#),
    );
    let id = build_id("badimage");
    let run = ws.run(&["--build-id", &id]);
    assert_ne!(run.code, Some(0), "{}", run.dump());
    assert!(
        run.stderr.contains("skiff-test/does-not-exist:1"),
        "{}",
        run.dump()
    );
    assert!(!run.stdout.contains("should not run"));
    assert_eq!(leftovers(&id), Vec::<String>::new());

    // An unknown step in depends_on: reported with file:line:col by the pipeline crate.
    let ws = Workspace::new(
        &(header("default")
            + r#"steps:
- name: a
  image: skiff-test/busybox:1
  commands: [echo a]
  depends_on: [ghost]
"#),
    );
    let run = ws.run(&[]);
    assert_ne!(run.code, Some(0), "{}", run.dump());
    assert!(run.stderr.contains(".drone.yml:"), "{}", run.dump());
    assert!(run.stderr.contains("ghost"), "{}", run.dump());

    // Invalid YAML.
    let ws = Workspace::new("kind: pipeline\nsteps: [\n");
    let run = ws.run(&[]);
    assert_ne!(run.code, Some(0), "{}", run.dump());
    assert!(run.stderr.contains(".drone.yml:"), "{}", run.dump());

    // A step mounting a volume the pipeline does not define.
    let ws = Workspace::new(
        &(header("default")
            + r#"steps:
- name: a
  image: skiff-test/busybox:1
  commands: [echo a]
  volumes:
  - name: nowhere
    path: /x
"#),
    );
    let run = ws.run(&[]);
    assert_ne!(run.code, Some(0), "{}", run.dump());
    assert!(run.stderr.contains("nowhere"), "{}", run.dump());
}

#[test]
fn pull_policies_and_plugins() {
    if !docker_ready("pull_policies_and_plugins") {
        return;
    }
    // Default policy on `:latest` pulls; no registry is reachable here, so Skiff warns and
    // uses the local copy. A plugin (no commands) keeps its entrypoint and gets PLUGIN_*.
    let ws = Workspace::new(
        &(header("default")
            + r#"steps:
- name: plugin
  image: skiff-test/busybox:latest
  entrypoint: [/bin/sh, -c]
  command: ['echo "msg=$PLUGIN_MESSAGE tags=$PLUGIN_TAGS"']
  settings:
    message: hello
    tags: [a, b]
"#),
    );
    let id = build_id("pull");
    let run = ws.run(&["--build-id", &id]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.step_log("plugin"), "msg=hello tags=a,b");
    assert!(
        run.stderr.contains("using the local image"),
        "{}",
        run.dump()
    );
    assert_eq!(leftovers(&id), Vec::<String>::new());

    // `pull: always` must pull: with no registry that fails before anything starts.
    let ws = Workspace::new(
        &(header("default")
            + r#"steps:
- name: first
  image: skiff-test/busybox:1
  commands: [echo should not run]
- name: fresh
  image: skiff-test/busybox:1
  pull: always
  commands: [true]
"#),
    );
    let run = ws.run(&[]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(
        run.stderr.contains("skiff-test/busybox:1"),
        "{}",
        run.dump()
    );
    assert!(!run.stdout.contains("should not run"), "{}", run.dump());
}

#[test]
fn container_options_reach_the_engine() {
    if !docker_ready("container_options_reach_the_engine") {
        return;
    }
    let ws = Workspace::new(
        &(header("default")
            + r#"steps:
- name: plain
  image: skiff-test/busybox:1
  commands:
  - ls /dev | wc -l
- name: opts
  image: skiff-test/busybox:1
  privileged: true
  user: "65534"
  working_dir: /tmp
  shm_size: 16mb
  commands:
  - id -u
  - pwd
  - df -k /dev/shm | tail -1 | awk '{print $2}'
  - ls /dev | wc -l
"#),
    );
    let id = build_id("options");
    let run = ws.run(&["--trusted", "--build-id", &id]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let opts = run.step_log("opts");
    assert!(opts.contains("\n65534\n"), "{opts}");
    assert!(opts.contains("\n/tmp\n"), "{opts}");
    assert!(opts.contains("\n16384\n"), "{opts}");
    // Privileged containers see the host's devices. (Root in a privileged container cannot
    // start in this sandbox, "unable to apply caps", hence the non-root user.)
    let devices = |log: &str| -> u32 {
        log.lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        devices(&opts) > devices(&run.step_log("plain")),
        "{}",
        run.dump()
    );
    assert_eq!(leftovers(&id), Vec::<String>::new());

    // Without --trusted, privileged steps are refused before anything starts.
    let run = ws.run(&[]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(run.stderr.contains("privileged"), "{}", run.dump());
}

#[test]
fn memory_limit_and_oom_are_reported() {
    if !docker_ready("memory_limit_and_oom_are_reported") {
        return;
    }
    let ws = Workspace::new(
        &(header("default")
            + r#"steps:
- name: hog
  image: skiff-test/busybox:1
  resources:
    limits: {memory: 16MiB}
  commands:
  # The engine hears of an OOM kill from an event the container runtime sends while the
  # container's cgroup still exists; a container that exits at once can lose that event on a
  # loaded machine, so the step lingers a second before it fails with the killed process's 137.
  - head -c 200m /dev/zero | tail -c 100m > /dev/null || { status=$?; sleep 1; exit $status; }
"#),
    );
    let id = build_id("oom");
    let run = ws.run(&["--build-id", &id]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("hog ") && l.contains("failure") && l.contains(" 137 ")),
        "{}",
        run.dump()
    );
    assert!(
        run.step_log("hog").contains("ran out of memory"),
        "{}",
        run.dump()
    );
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn fail_fast_stops_the_others_and_flags_reach_the_environment() {
    if !docker_ready("fail_fast_stops_the_others_and_flags_reach_the_environment") {
        return;
    }
    let yaml = header("default")
        + r#"steps:
- name: info
  image: skiff-test/busybox:1
  commands:
  - echo "$DRONE_COMMIT_SHA $DRONE_COMMIT_REF $DRONE_BUILD_EVENT $DRONE_TAG"
- name: quick
  image: skiff-test/busybox:1
  depends_on: [info]
  failure: fast
  commands:
  - sleep 1
  - exit 2
- name: slow
  image: skiff-test/busybox:1
  depends_on: [info]
  commands:
  - echo slow-started
  - sleep 300
- name: later
  image: skiff-test/busybox:1
  depends_on: [slow]
  commands: [echo never]
"#;
    let ws = Workspace::new(&yaml);
    let id = build_id("failfast");
    let run = ws.run(&[
        "--build-id",
        &id,
        "--event",
        "tag",
        "--ref",
        "refs/tags/v1.2.3",
        "--sha",
        "0123abcd",
    ]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(
        run.step_log("info")
            .contains("0123abcd refs/tags/v1.2.3 tag v1.2.3"),
        "{}",
        run.dump()
    );
    assert_eq!(run.status_of("quick"), "failure");
    assert_eq!(run.status_of("slow"), "killed");
    assert_eq!(run.status_of("later"), "skipped");
    assert!(
        run.stdout.contains("pipeline `default`: failure"),
        "{}",
        run.dump()
    );
    assert_eq!(leftovers(&id), Vec::<String>::new());
}
