//! The docker backend: steps are containers on the Docker Engine, reached through
//! `DOCKER_HOST` like the docker CLI. Per build it creates one user-defined network (services
//! are reachable by step name), one workspace volume and the pipeline's temp volumes, all
//! labelled `io.skiff.build=<id>` so teardown finds everything even after a cancel.
//!
//! Speed matters (bench/RESULTS.md `## Pipelines`): images are checked once per distinct
//! image, network/volumes/image checks run concurrently, containers of steps that run on
//! success are created ahead of time and concurrently, output is read through one attach
//! per step, and finished containers are removed in the background while later steps run.

use crate::RunnerError;
use crate::auth;
use crate::backend::{Backend, BuildSpec, StepExit, StepSpec};
use crate::log::StepLog;
use crate::script;
use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkCreateRequest,
    NetworkingConfig, VolumeCreateRequest,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, KillContainerOptions,
    ListContainersOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use futures::StreamExt;
use skiff_pipeline::{PullPolicy, VolumeSource};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Label put on every container, network and volume a build creates.
pub const BUILD_LABEL: &str = "io.skiff.build";
/// Label naming the step a container belongs to.
pub const STEP_LABEL: &str = "io.skiff.step";

/// How many containers are created at once ahead of time: few, so that the first step's
/// container (the one the build waits for) does not compete with many others.
const CREATE_CONCURRENCY: usize = 2;

/// Runs steps as Docker containers. One value per build.
pub struct DockerBackend {
    docker: Docker,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    build: Option<Arc<BuildSpec>>,
    network: Option<String>,
    workspace_volume: Option<String>,
    /// Pipeline volume name -> docker volume name (disk-backed temp volumes).
    temp_volumes: HashMap<String, String>,
    /// Containers being created ahead of time, by step name, not yet claimed by `run`.
    precreated: HashMap<String, JoinHandle<Result<String, String>>>,
    /// Every container created, for teardown.
    containers: Vec<String>,
    /// Background removals of finished containers.
    removals: Vec<JoinHandle<()>>,
    /// Background log readers of detached steps.
    readers: Vec<JoinHandle<()>>,
    /// Images were already checked by [`DockerBackend::check_images`].
    images_ready: bool,
}

impl DockerBackend {
    /// Connects as the docker CLI does: `DOCKER_HOST`, else the local socket.
    pub fn connect() -> Result<Self, RunnerError> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| RunnerError::docker("connect (check DOCKER_HOST)", e))?;
        Ok(Self::with_client(docker))
    }

    /// Uses an existing client.
    pub fn with_client(docker: Docker) -> Self {
        DockerBackend {
            docker,
            state: Mutex::new(State::default()),
        }
    }

    /// Checks that the engine answers.
    pub async fn ping(&self) -> Result<(), RunnerError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| RunnerError::docker("ping the engine (check DOCKER_HOST)", e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Checks (and pulls, as the policies say) the build's images before anything starts, so a
    /// caller running several pipelines can fail before the first one runs. `setup` then
    /// skips the check.
    pub async fn check_images(&self, build: &BuildSpec) -> Result<(), RunnerError> {
        self.ensure_images(build).await?;
        self.lock().images_ready = true;
        Ok(())
    }

    /// Makes each distinct image available according to its steps' pull policy.
    async fn ensure_images(&self, build: &BuildSpec) -> Result<(), RunnerError> {
        // One entry per image; the most demanding policy of its steps wins.
        let mut images: BTreeMap<String, (PullPolicy, String)> = BTreeMap::new();
        for spec in &build.steps {
            if spec.step.run_policy == skiff_pipeline::RunPolicy::Never {
                continue;
            }
            let Some(image) = spec.step.image.clone() else {
                continue;
            };
            let entry = images
                .entry(image)
                .or_insert((spec.step.pull, spec.step.name.clone()));
            if rank(spec.step.pull) > rank(entry.0) {
                *entry = (spec.step.pull, spec.step.name.clone());
            }
        }
        let checks = images
            .into_iter()
            .map(|(image, (policy, step))| async move {
                self.ensure_image(&image, policy, &step, &build.auths).await
            });
        futures::future::try_join_all(checks).await.map(|_| ())
    }

    async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        step: &str,
        auths: &[crate::RegistryAuth],
    ) -> Result<(), RunnerError> {
        let fail = |message: String| RunnerError::Image {
            step: step.to_string(),
            image: image.to_string(),
            message,
        };
        let pull_first = match policy {
            PullPolicy::Always => true,
            PullPolicy::Default => is_latest(image),
            PullPolicy::IfNotExists | PullPolicy::Never => false,
        };
        if pull_first {
            match self.pull(image, auths).await {
                Ok(()) => return Ok(()),
                Err(message) if policy == PullPolicy::Always => return Err(fail(message)),
                Err(message) => {
                    // `:latest` with the default policy: a local copy is good enough offline.
                    if self.image_exists(image).await.map_err(&fail)? {
                        tracing::warn!(image, %message, "pull failed; using the local image");
                        return Ok(());
                    }
                    return Err(fail(format!(
                        "not present locally and pull failed: {message}"
                    )));
                }
            }
        }
        if self.image_exists(image).await.map_err(&fail)? {
            return Ok(());
        }
        if policy == PullPolicy::Never {
            return Err(fail(
                "not present locally and `pull: never` forbids pulling it".into(),
            ));
        }
        self.pull(image, auths)
            .await
            .map_err(|m| fail(format!("not present locally and pull failed: {m}")))
    }

    async fn image_exists(&self, image: &str) -> Result<bool, String> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(format!("cannot inspect: {e}")),
        }
    }

    async fn pull(&self, image: &str, auths: &[crate::RegistryAuth]) -> Result<(), String> {
        let credentials = auth::auth_for(auths, image).map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.registry.clone()),
            ..Default::default()
        });
        let options = CreateImageOptions {
            from_image: Some(with_tag(image)),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        return Err(detail.message.unwrap_or_else(|| "pull failed".into()));
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Creates the network and volumes of the build.
    async fn create_shared(&self, build: &BuildSpec) -> Result<(), RunnerError> {
        let labels = build_labels(&build.id);
        let network_name = format!("skiff-{}", build.id);
        let network = async {
            self.docker
                .create_network(NetworkCreateRequest {
                    name: network_name.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await
                .map_err(|e| RunnerError::docker(format!("create network {network_name}"), e))?;
            self.lock().network = Some(network_name.clone());
            Ok::<(), RunnerError>(())
        };
        let mut wanted: Vec<(Option<String>, String)> =
            vec![(None, format!("skiff-{}-workspace", build.id))];
        for volume in &build.volumes {
            if let VolumeSource::Temp { in_memory: false } = volume.source {
                wanted.push((
                    Some(volume.name.clone()),
                    format!("skiff-{}-{}", build.id, sanitize(&volume.name)),
                ));
            }
        }
        let volumes = wanted.into_iter().map(|(pipeline_name, docker_name)| {
            let labels = labels.clone();
            async move {
                self.docker
                    .create_volume(VolumeCreateRequest {
                        name: Some(docker_name.clone()),
                        labels: Some(labels),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| RunnerError::docker(format!("create volume {docker_name}"), e))?;
                let mut state = self.lock();
                match pipeline_name {
                    Some(name) => {
                        state.temp_volumes.insert(name, docker_name);
                    }
                    None => state.workspace_volume = Some(docker_name),
                }
                Ok::<(), RunnerError>(())
            }
        });
        let (network, volumes) = futures::join!(network, futures::future::try_join_all(volumes));
        network?;
        volumes?;
        Ok(())
    }

    /// Creates the container of one step.
    async fn create(&self, spec: &StepSpec) -> Result<String, String> {
        let (body, name) = {
            let state = self.lock();
            let Some(build) = state.build.clone() else {
                return Err("docker backend used before setup".into());
            };
            (
                container_body(&build, &state, spec)?,
                container_name(&build, spec),
            )
        };
        let options = CreateContainerOptions {
            name: Some(name),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("cannot create the container: {e}"))?;
        self.lock().containers.push(created.id.clone());
        Ok(created.id)
    }

    /// Removes a finished container without making the next step wait for it.
    fn remove_later(&self, id: String) {
        let docker = self.docker.clone();
        let handle = tokio::spawn(async move {
            let _ = docker.remove_container(&id, Some(force_remove())).await;
        });
        self.lock().removals.push(handle);
    }
}

/// Orders pull policies by how eagerly they pull, to merge the policies of steps sharing an
/// image.
fn rank(policy: PullPolicy) -> u8 {
    match policy {
        PullPolicy::Never => 0,
        PullPolicy::IfNotExists => 1,
        PullPolicy::Default => 2,
        PullPolicy::Always => 3,
    }
}

fn force_remove() -> RemoveContainerOptions {
    RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    }
}

fn build_labels(id: &str) -> HashMap<String, String> {
    HashMap::from([(BUILD_LABEL.to_string(), id.to_string())])
}

/// Whether Drone's default policy pulls this image: no tag, or the tag `latest`.
pub fn is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

/// `name` -> `name:latest`, as the docker CLI does before pulling.
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Keeps what Docker allows in names: `[a-zA-Z0-9_.-]`.
fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if cleaned.is_empty() {
        "step".into()
    } else {
        cleaned
    }
}

fn container_name(build: &BuildSpec, spec: &StepSpec) -> String {
    format!(
        "skiff-{}-{}-{}",
        build.id,
        spec.number,
        sanitize(&spec.step.name)
    )
}

/// The create request for a step: Drone's script entrypoint for `commands`, the workspace,
/// volumes, the build network with the step name as alias, and the step's container options.
fn container_body(
    build: &BuildSpec,
    state: &State,
    spec: &StepSpec,
) -> Result<ContainerCreateBody, String> {
    let step = &spec.step;
    let image = step
        .image
        .clone()
        .ok_or_else(|| format!("step `{}` has no image", step.name))?;
    let network = state.network.clone().unwrap_or_default();
    let workspace_volume = state.workspace_volume.clone().unwrap_or_default();

    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("DRONE_DOCKER_NETWORK_ID={network}"));
    env.push(format!("DRONE_DOCKER_VOLUME_ID={workspace_volume}"));
    let (entrypoint, cmd) = match &spec.script {
        Some(script_text) => {
            env.push(format!("{}={script_text}", script::SCRIPT_ENV));
            (
                Some(script::ENTRYPOINT.iter().map(|s| s.to_string()).collect()),
                Some(vec![script::COMMAND.to_string()]),
            )
        }
        None => (step.entrypoint.clone(), step.command.clone()),
    };

    let mut mounts = vec![Mount {
        target: Some(build.workspace.base.clone()),
        source: Some(workspace_volume),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }];
    if let Some(dir) = &build.host_workspace {
        mounts.push(Mount {
            target: Some(build.workspace.path.clone()),
            source: Some(dir.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            ..Default::default()
        });
    }
    for mount in &step.volumes {
        let Some(volume) = build.volumes.iter().find(|v| v.name == mount.name) else {
            return Err(format!("volume `{}` is not defined", mount.name));
        };
        let entry = match &volume.source {
            VolumeSource::Host { path } => Mount {
                target: Some(mount.path.clone()),
                source: Some(path.clone()),
                typ: Some(MountType::BIND),
                ..Default::default()
            },
            VolumeSource::Temp { in_memory: true } => Mount {
                target: Some(mount.path.clone()),
                typ: Some(MountType::TMPFS),
                ..Default::default()
            },
            VolumeSource::Temp { in_memory: false } => Mount {
                target: Some(mount.path.clone()),
                source: state.temp_volumes.get(&mount.name).cloned(),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            },
        };
        mounts.push(entry);
    }

    let resources = &step.resources;
    let host_config = HostConfig {
        mounts: Some(mounts),
        network_mode: Some(step.network_mode.clone().unwrap_or_else(|| network.clone())),
        privileged: Some(step.privileged),
        shm_size: step.shm_size.and_then(|s| i64::try_from(s).ok()),
        nano_cpus: resources
            .cpu_limit_millis
            .and_then(|m| i64::try_from(m.saturating_mul(1_000_000)).ok()),
        memory: resources
            .memory_limit_bytes
            .and_then(|m| i64::try_from(m).ok()),
        memory_reservation: resources
            .memory_request_bytes
            .and_then(|m| i64::try_from(m).ok()),
        cpu_shares: resources
            .cpu_request_millis
            .and_then(|m| i64::try_from(m.saturating_mul(1024) / 1000).ok()),
        ..Default::default()
    };
    let networking_config = if step.network_mode.is_none() {
        Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network,
                EndpointSettings {
                    aliases: Some(vec![step.name.clone()]),
                    ..Default::default()
                },
            )])),
        })
    } else {
        None
    };
    // Drone leaves a detached service without commands in its image's own directory.
    let working_dir = match &step.working_dir {
        Some(dir) => Some(dir.clone()),
        None if (step.is_service || step.detach) && step.commands.is_empty() => None,
        None => Some(build.workspace.path.clone()),
    };
    let mut labels = build_labels(&build.id);
    labels.insert(STEP_LABEL.to_string(), step.name.clone());

    Ok(ContainerCreateBody {
        image: Some(image),
        env: Some(env),
        entrypoint,
        cmd,
        working_dir,
        user: step.user.clone(),
        labels: Some(labels),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    })
}

#[async_trait]
impl Backend for DockerBackend {
    async fn setup(&self, build: &BuildSpec) -> Result<(), RunnerError> {
        self.lock().build = Some(Arc::new(build.clone()));
        let images_ready = self.lock().images_ready;
        let images = async {
            if images_ready {
                Ok(())
            } else {
                self.ensure_images(build).await
            }
        };
        let (images, shared) = futures::join!(images, self.create_shared(build));
        images?;
        shared?;
        // Create ahead of time, in plan order and a few at a time, what will run unless
        // something fails. The first step starts as soon as its own container exists; the
        // others are created while earlier steps run. Request bodies are built here so a bad
        // one stops the build before anything starts.
        let mut jobs = Vec::new();
        {
            let state = self.lock();
            let shared = Arc::new(build.clone());
            for spec in build
                .steps
                .iter()
                .filter(|s| s.precreate && s.step.run_policy != skiff_pipeline::RunPolicy::Never)
            {
                let body = container_body(&shared, &state, spec).map_err(|message| {
                    RunnerError::invalid(
                        &build.pipeline,
                        format!("step `{}`: {message}", spec.step.name),
                    )
                })?;
                jobs.push((spec.step.name.clone(), container_name(&shared, spec), body));
            }
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(CREATE_CONCURRENCY));
        let mut handles = HashMap::new();
        for (step, name, body) in jobs {
            let docker = self.docker.clone();
            let permits = permits.clone();
            let handle = tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let options = CreateContainerOptions {
                    name: Some(name),
                    ..Default::default()
                };
                docker
                    .create_container(Some(options), body)
                    .await
                    .map(|created| created.id)
                    .map_err(|e| format!("cannot create the container: {e}"))
            });
            handles.insert(step, handle);
        }
        self.lock().precreated = handles;
        Ok(())
    }

    async fn run(&self, spec: &StepSpec, mut log: StepLog, cancel: CancellationToken) -> StepExit {
        let claimed = self.lock().precreated.remove(&spec.step.name);
        let created = match claimed {
            Some(handle) => match handle.await {
                Ok(Ok(id)) => {
                    self.lock().containers.push(id.clone());
                    Ok(id)
                }
                Ok(Err(message)) => Err(message),
                Err(e) => Err(format!("creating the container failed: {e}")),
            },
            None => self.create(spec).await,
        };
        let id = match created {
            Ok(id) => id,
            Err(message) => return StepExit::Error(message),
        };
        let attach = AttachContainerOptions {
            stdout: true,
            stderr: true,
            stream: true,
            // Attached before start: the stream sees everything; `logs` would replay it twice.
            logs: false,
            ..Default::default()
        };
        let mut output = match self.docker.attach_container(&id, Some(attach)).await {
            Ok(attached) => attached.output,
            Err(e) => return StepExit::Error(format!("cannot attach to the container: {e}")),
        };
        if let Err(e) = self.docker.start_container(&id, None).await {
            return StepExit::Error(format!("cannot start the container: {e}"));
        }

        if spec.step.detach || spec.step.is_service {
            let reader = tokio::spawn(async move {
                while let Some(Ok(chunk)) = output.next().await {
                    log.write(chunk.as_ref());
                }
                log.finish();
            });
            self.lock().readers.push(reader);
            return StepExit::Detached;
        }

        let docker = self.docker.clone();
        let wait_id = id.clone();
        let finished = async move {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(chunk) => log.write(chunk.as_ref()),
                    Err(_) => break,
                }
            }
            let mut waits = docker.wait_container(&wait_id, None);
            let exit = match waits.next().await {
                Some(Ok(response)) => StepExit::Exited(response.status_code),
                Some(Err(DockerError::DockerContainerWaitError { code, .. })) => {
                    StepExit::Exited(code)
                }
                Some(Err(e)) => StepExit::Error(format!("waiting for the container failed: {e}")),
                None => StepExit::Error("the engine did not report an exit code".into()),
            };
            // 137 is SIGKILL; only then is it worth asking whether the kernel's OOM killer did it.
            if exit == StepExit::Exited(137) && killed_by_oom(&docker, &wait_id).await {
                log.note("skiff: the step ran out of memory (killed by the OOM killer)");
            }
            log.finish();
            exit
        };
        let exit = tokio::select! {
            exit = finished => exit,
            _ = cancel.cancelled() => {
                let _ = self.docker.kill_container(&id, Some(KillContainerOptions {
                    signal: "SIGKILL".into(),
                })).await;
                StepExit::Killed
            }
        };
        self.remove_later(id);
        exit
    }

    async fn teardown(&self) -> Vec<RunnerError> {
        let (build, mut containers, removals, readers, network, pending) = {
            let mut state = self.lock();
            let pending: Vec<_> = state.precreated.drain().map(|(_, h)| h).collect();
            (
                state.build.clone(),
                std::mem::take(&mut state.containers),
                std::mem::take(&mut state.removals),
                std::mem::take(&mut state.readers),
                state.network.take(),
                pending,
            )
        };
        // Containers still being created ahead of time: let each finish, then remove it.
        for handle in pending {
            if let Ok(Ok(id)) = handle.await {
                containers.push(id);
            }
        }
        let Some(build) = build else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        let filter = HashMap::from([(
            "label".to_string(),
            vec![format!("{BUILD_LABEL}={}", build.id)],
        )]);

        // Containers: the ones we know plus any the engine has with our label (a create that
        // was interrupted by a cancel still counts).
        let mut ids = containers;
        match self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filter.clone()),
                ..Default::default()
            }))
            .await
        {
            Ok(listed) => ids.extend(listed.into_iter().filter_map(|c| c.id)),
            Err(e) => errors.push(RunnerError::docker("list the build's containers", e)),
        }
        ids.sort();
        ids.dedup();
        let removes = ids.iter().map(|id| async move {
            match self.docker.remove_container(id, Some(force_remove())).await {
                Ok(())
                | Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(()),
                // Already being removed by a background removal.
                Err(DockerError::DockerResponseServerError {
                    status_code: 409, ..
                }) => Ok(()),
                Err(e) => Err(RunnerError::docker(format!("remove container {id}"), e)),
            }
        });
        for result in futures::future::join_all(removes).await {
            if let Err(e) = result {
                errors.push(e);
            }
        }
        for handle in removals {
            let _ = handle.await;
        }
        // Log readers of detached steps end when their container is gone; never wait long.
        for mut handle in readers {
            if tokio::time::timeout(std::time::Duration::from_secs(5), &mut handle)
                .await
                .is_err()
            {
                handle.abort();
            }
        }

        let network = network.unwrap_or_else(|| format!("skiff-{}", build.id));
        match self.docker.remove_network(&network).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => errors.push(RunnerError::docker(format!("remove network {network}"), e)),
        }

        let mut volumes: Vec<String> = Vec::new();
        match self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter),
            }))
            .await
        {
            Ok(listed) => volumes.extend(
                listed
                    .volumes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| v.name),
            ),
            Err(e) => errors.push(RunnerError::docker("list the build's volumes", e)),
        }
        let removes = volumes.iter().map(|name| async move {
            match self
                .docker
                .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
                .await
            {
                Ok(())
                | Err(DockerError::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(()),
                Err(e) => Err(RunnerError::docker(format!("remove volume {name}"), e)),
            }
        });
        for result in futures::future::join_all(removes).await {
            if let Err(e) = result {
                errors.push(e);
            }
        }
        errors
    }
}

/// Whether the engine saw the kernel's OOM killer act in this container.
///
/// The engine learns of an OOM kill from a separate event that can be handled after the exit it
/// caused, so a container with a memory limit is asked again for a short while before we
/// conclude it was killed some other way.
async fn killed_by_oom(docker: &Docker, id: &str) -> bool {
    for attempt in 0..20 {
        let Ok(container) = docker.inspect_container(id, None).await else {
            return false;
        };
        if container.state.and_then(|s| s.oom_killed).unwrap_or(false) {
            return true;
        }
        let limited = container
            .host_config
            .and_then(|h| h.memory)
            .is_some_and(|bytes| bytes > 0);
        if !limited || attempt == 19 {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_detection_follows_drone() {
        assert!(is_latest("busybox"));
        assert!(is_latest("busybox:latest"));
        assert!(is_latest("localhost:5000/busybox"));
        assert!(!is_latest("localhost:5000/busybox:1"));
        assert!(!is_latest("skiff-test/busybox:1"));
        assert!(!is_latest("busybox@sha256:abcd"));
    }

    #[test]
    fn pull_reference_gets_a_tag() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("host:5000/busybox"), "host:5000/busybox:latest");
        assert_eq!(with_tag("busybox:1"), "busybox:1");
    }

    #[test]
    fn names_are_docker_safe() {
        assert_eq!(sanitize("go build/test"), "go_build_test");
        assert_eq!(sanitize(""), "step");
    }
}
