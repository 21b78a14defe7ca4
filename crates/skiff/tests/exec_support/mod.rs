//! Shared helpers for the `skiff exec` end-to-end tests: a scratch workspace with a
//! `.drone.yml`, running the real binary, and asking the real Docker Engine what a build
//! left behind. Tests that need docker skip (with a reason on stderr) when `DOCKER_HOST` is
//! not usable, and fail instead when `CI=true`.

#![allow(dead_code)]

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The image the test environment provides (scripts/test-images).
pub const IMAGE: &str = "skiff-test/busybox:1";

/// A temporary working directory holding a pipeline file.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(pipeline: &str) -> Self {
        let dir = tempfile::tempdir().expect("create a temp dir");
        std::fs::write(dir.path().join(".drone.yml"), pipeline).expect("write .drone.yml");
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// `skiff exec` with these arguments, in this workspace, without colour.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skiff"));
        command
            .arg("exec")
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run skiff exec");
        Run::from(output)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn skiff exec")
    }
}

/// What one `skiff exec` printed and how it exited.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The log text of one step (without prefixes), lines joined by newlines.
    pub fn step_log(&self, step: &str) -> String {
        let prefix = format!("[{step}:");
        self.stdout
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .filter_map(|rest| rest.split_once("] ").map(|(_, text)| text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The status column of the summary row of `step`.
    pub fn status_of(&self, step: &str) -> String {
        self.stdout
            .lines()
            .filter(|line| !line.starts_with('['))
            .find_map(|line| {
                let mut cols = line.split_whitespace();
                (cols.next() == Some(step)).then(|| cols.next().unwrap_or("").to_string())
            })
            .unwrap_or_else(|| panic!("no summary row for `{step}` in:\n{}", self.stdout))
    }

    pub fn dump(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Whether the Docker Engine answers. Without it: fail under CI, else skip with a reason.
pub fn docker_ready(test: &str) -> bool {
    let reason = match Docker::connect_with_defaults() {
        Err(e) => Some(format!("cannot connect: {e}")),
        Ok(docker) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            match runtime.block_on(docker.ping()) {
                Ok(_) => None,
                Err(e) => Some(format!("ping failed: {e}")),
            }
        }
    };
    match reason {
        None => true,
        Some(reason) => {
            let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "(unset)".into());
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: Docker Engine at DOCKER_HOST={host} is not usable: {reason}");
            }
            eprintln!(
                "skipping {test}: Docker Engine at DOCKER_HOST={host} is not usable ({reason}); \
                 run `eval \"$(scripts/docker-testenv up)\"` and `scripts/test-images`"
            );
            false
        }
    }
}

/// A fresh build id for `--build-id`, unique across parallel tests.
pub fn build_id(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{}{:x}{}", std::process::id(), nanos, test.len())
}

/// Containers, networks and volumes on the engine labelled for `build_id`.
pub fn leftovers(build_id: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let docker = Docker::connect_with_defaults().expect("docker client");
        let filter = HashMap::from([(
            "label".to_string(),
            vec![format!("io.skiff.build={build_id}")],
        )]);
        let mut found = Vec::new();
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filter.clone()),
                ..Default::default()
            }))
            .await
            .expect("list containers");
        found.extend(
            containers
                .into_iter()
                .map(|c| format!("container {:?} {:?}", c.names, c.state)),
        );
        let networks = docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filter.clone()),
            }))
            .await
            .expect("list networks");
        found.extend(
            networks
                .into_iter()
                .map(|n| format!("network {:?}", n.name)),
        );
        let volumes = docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter),
            }))
            .await
            .expect("list volumes");
        found.extend(
            volumes
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| format!("volume {}", v.name)),
        );
        found
    })
}
