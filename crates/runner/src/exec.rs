//! The exec backend: steps are host processes, as with Drone's exec runner. Each step runs
//! Drone's script through `/bin/sh` in the workspace directory (a temporary one unless the
//! caller gives one) in its own process group, so cancel and teardown can kill everything a
//! step started.

use crate::RunnerError;
use crate::backend::{Backend, BuildSpec, StepExit, StepSpec};
use crate::log::StepLog;
use async_trait::async_trait;
use rustix::process::{Pid, Signal, kill_process_group};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// Runs steps as host processes.
#[derive(Debug, Default)]
pub struct ExecBackend {
    state: Mutex<ExecState>,
}

#[derive(Debug, Default)]
struct ExecState {
    workspace: Option<PathBuf>,
    /// Owned temporary workspace, removed on teardown.
    temp: Option<tempfile::TempDir>,
    /// Process groups of detached steps, killed on teardown.
    detached: Vec<i32>,
}

impl ExecBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExecState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The directory steps run in; set by `setup`.
    pub fn workspace(&self) -> Option<PathBuf> {
        self.lock().workspace.clone()
    }
}

/// Kills a whole process group; ignores groups that are already gone.
fn kill_group(pgid: i32) {
    if pgid > 1
        && let Some(pid) = Pid::from_raw(pgid)
    {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

#[async_trait]
impl Backend for ExecBackend {
    async fn setup(&self, build: &BuildSpec) -> Result<(), RunnerError> {
        let mut state = self.lock();
        match &build.host_workspace {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(RunnerError::Io {
                        action: "use as workspace",
                        path: dir.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "not a directory",
                        ),
                    });
                }
                state.workspace = Some(dir.clone());
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix(&format!("skiff-{}-", build.id))
                    .tempdir()
                    .map_err(|source| RunnerError::Io {
                        action: "create temporary workspace in",
                        path: std::env::temp_dir(),
                        source,
                    })?;
                state.workspace = Some(temp.path().to_path_buf());
                state.temp = Some(temp);
            }
        }
        Ok(())
    }

    fn host_workspace(&self) -> Option<PathBuf> {
        self.workspace()
    }

    async fn run(&self, spec: &StepSpec, mut log: StepLog, cancel: CancellationToken) -> StepExit {
        let Some(workspace) = self.workspace() else {
            return StepExit::Error("exec backend used before setup".into());
        };
        let mut command = match build_command(spec, &workspace) {
            Some(command) => command,
            // Nothing to run: a step without commands, entrypoint or command.
            None => return StepExit::Exited(0),
        };
        let (reader, writer) = match std::io::pipe() {
            Ok(pair) => pair,
            Err(e) => return StepExit::Error(format!("cannot create a pipe: {e}")),
        };
        let writer2 = match writer.try_clone() {
            Ok(w) => w,
            Err(e) => return StepExit::Error(format!("cannot create a pipe: {e}")),
        };
        command
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .process_group(0)
            .kill_on_drop(true);
        let spawned = command.spawn();
        // The parent's copies of the write end must close, or reading never ends.
        drop(command);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return StepExit::Error(format!("cannot start /bin/sh: {e}")),
        };
        let pgid = child.id().map(|id| id as i32).unwrap_or(0);
        let reader = match tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into()) {
            Ok(r) => r,
            Err(e) => {
                kill_group(pgid);
                return StepExit::Error(format!("cannot read step output: {e}"));
            }
        };

        if spec.step.detach || spec.step.is_service {
            self.lock().detached.push(pgid);
            tokio::spawn(async move {
                pump(reader, &mut log).await;
                let _ = child.wait().await;
                log.finish();
            });
            return StepExit::Detached;
        }

        let exit = tokio::select! {
            status = wait_and_pump(&mut child, reader, &mut log, pgid) => status,
            _ = cancel.cancelled() => {
                kill_group(pgid);
                let _ = child.wait().await;
                StepExit::Killed
            }
        };
        log.finish();
        exit
    }

    async fn teardown(&self) -> Vec<RunnerError> {
        let (detached, temp) = {
            let mut state = self.lock();
            (std::mem::take(&mut state.detached), state.temp.take())
        };
        for pgid in detached {
            kill_group(pgid);
        }
        let mut errors = Vec::new();
        if let Some(temp) = temp {
            let path = temp.path().to_path_buf();
            if let Err(source) = temp.close() {
                errors.push(RunnerError::Io {
                    action: "remove temporary workspace",
                    path,
                    source,
                });
            }
        }
        errors
    }
}

/// The host command for a step: Drone's script through `/bin/sh`, else the step's own
/// entrypoint and command.
fn build_command(spec: &StepSpec, workspace: &Path) -> Option<Command> {
    let step = &spec.step;
    let mut argv: Vec<String> = Vec::new();
    if let Some(script) = &spec.script {
        argv.extend(["/bin/sh".to_string(), "-c".to_string(), script.clone()]);
    } else {
        argv.extend(step.entrypoint.clone().unwrap_or_default());
        argv.extend(step.command.clone().unwrap_or_default());
    }
    let (program, args) = argv.split_first()?;
    let mut command = Command::new(program);
    command.args(args);
    let dir = match &step.working_dir {
        Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.to_path_buf(),
    };
    command.current_dir(dir);
    command.envs(&spec.env);
    let ws = workspace.to_string_lossy().into_owned();
    command.env("DRONE_WORKSPACE", &ws);
    command.env("DRONE_WORKSPACE_BASE", &ws);
    command.env("DRONE_WORKSPACE_PATH", "");
    Some(command)
}

/// Copies output to the log until the pipe closes.
async fn pump(mut reader: tokio::net::unix::pipe::Receiver, log: &mut StepLog) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => log.write(&buf[..n]),
        }
    }
}

/// Waits for the step's shell while streaming its output. When the shell exits, whatever it
/// left running in its process group is killed, so leftovers cannot hold the pipe open.
async fn wait_and_pump(
    child: &mut Child,
    mut reader: tokio::net::unix::pipe::Receiver,
    log: &mut StepLog,
    pgid: i32,
) -> StepExit {
    let mut buf = vec![0u8; 16 * 1024];
    let mut open = true;
    let status = loop {
        tokio::select! {
            read = reader.read(&mut buf), if open => match read {
                Ok(0) | Err(_) => open = false,
                Ok(n) => log.write(&buf[..n]),
            },
            status = child.wait() => break status,
        }
    };
    kill_group(pgid);
    if open {
        pump(reader, log).await;
    }
    match status {
        Ok(status) => match status.code() {
            Some(code) => StepExit::Exited(i64::from(code)),
            // Killed by a signal: 128 + signal, as a shell reports it.
            None => {
                use std::os::unix::process::ExitStatusExt;
                StepExit::Exited(128 + i64::from(status.signal().unwrap_or(9)))
            }
        },
        Err(e) => StepExit::Error(format!("waiting for the step failed: {e}")),
    }
}
