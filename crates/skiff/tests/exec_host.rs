//! End-to-end: `type: exec` pipelines run as host processes through `/bin/sh`, in the
//! working directory, with Drone's script, statuses, masking and cancel.

mod exec_support;

use exec_support::Workspace;

#[test]
fn exec_pipeline_runs_on_the_host() {
    let ws = Workspace::new(
        r#"kind: pipeline
type: exec
name: host

steps:
- name: first
  commands:
  - echo "in $(basename $PWD)"
  - echo hello > made-by-first
  - echo "secret=$TOKEN"
  environment:
    TOKEN:
      from_secret: token
- name: second
  commands:
  - cat made-by-first
  - test "$DRONE_STEP_NAME" = second
- name: fails
  failure: ignore
  commands:
  - exit 4
- name: done
  commands:
  - echo "done $DRONE_BUILD_EVENT"
"#,
    );
    ws.write("secrets.env", "token=very-secret-1\n");
    let run = ws.run(&["--secret-file", "secrets.env"]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    let dir_name = ws
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        run.step_log("first"),
        format!(
            "+ echo \"in $(basename $PWD)\"\nin {dir_name}\n+ echo hello > made-by-first\n+ echo \"secret=$TOKEN\"\nsecret=******"
        )
    );
    assert_eq!(
        run.step_log("second"),
        "+ cat made-by-first\nhello\n+ test \"$DRONE_STEP_NAME\" = second"
    );
    assert_eq!(run.status_of("fails"), "failure");
    assert_eq!(
        run.step_log("done"),
        "+ echo \"done $DRONE_BUILD_EVENT\"\ndone push"
    );
}

#[test]
fn exec_pipeline_failure_sets_exit_code() {
    let ws = Workspace::new(
        "kind: pipeline\ntype: exec\nname: host\nsteps:\n- name: bad\n  commands:\n  - exit 7\n- name: next\n  commands: [echo no]\n",
    );
    let run = ws.run(&[]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("bad ") && l.contains("failure") && l.contains(" 7 ")),
        "{}",
        run.dump()
    );
    assert_eq!(run.status_of("next"), "skipped");
}

#[test]
fn exec_timeout_kills_the_whole_process_group() {
    let ws = Workspace::new(
        "kind: pipeline\ntype: exec\nname: host\nsteps:\n- name: sleeper\n  commands:\n  - (sleep 300; echo leaked) &\n  - echo $! > child.pid\n  - sleep 300\n",
    );
    let run = ws.run(&["--timeout", "2s"]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.status_of("sleeper"), "killed");
    let pid = std::fs::read_to_string(ws.path().join("child.pid")).expect("pid file");
    // The background subshell was in the step's process group: it must be dead (a zombie
    // counts as dead: reaping it is the job of whatever adopted it).
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()));
    let alive = status.is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    });
    assert!(!alive, "background process {pid} survived the cancel");
}

#[test]
fn pipelines_follow_depends_on_and_trigger_status() {
    let ws = Workspace::new(
        r#"kind: pipeline
type: exec
name: first
steps:
- name: a
  commands: [echo first-a, exit 1]
---
kind: pipeline
type: exec
name: second
depends_on: [first]
steps:
- name: b
  commands: [echo second-b]
---
kind: pipeline
type: exec
name: on-fail
depends_on: [first]
trigger:
  status: [failure]
steps:
- name: c
  commands: [echo notify]
"#,
    );
    let run = ws.run(&[]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(
        run.stdout.contains("pipeline `first`: failure"),
        "{}",
        run.dump()
    );
    assert!(
        run.stderr.contains("pipeline `second` skipped"),
        "{}",
        run.dump()
    );
    assert_eq!(run.step_log("c"), "+ echo notify\nnotify");

    // --pipeline runs that pipeline alone.
    let run = ws.run(&["--pipeline", "second"]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.step_log("b"), "+ echo second-b\nsecond-b");
    assert!(!run.stdout.contains("first-a"));

    let run = ws.run(&["--pipeline", "nope"]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(
        run.stderr.contains("first, second, on-fail"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_pipeline_may_depend_on_a_later_one() {
    let ws = Workspace::new(
        r#"kind: pipeline
type: exec
name: deploy
depends_on: [build]
steps:
- name: d
  commands: [cat built]
---
kind: pipeline
type: exec
name: build
steps:
- name: b
  commands: [echo artefact > built]
"#,
    );
    let run = ws.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.step_log("d"), "+ cat built\nartefact");
    let build_at = run.stdout.find("[b:0]").expect("build ran");
    let deploy_at = run.stdout.find("[d:0]").expect("deploy ran");
    assert!(build_at < deploy_at, "{}", run.dump());
}
