//! Real registry clients against `skiff registry serve`: docker, skopeo (incl. a multi-arch
//! index, both directions), podman, oras (push/pull/attach/discover), helm (OCI charts) and
//! crane (copy/ls/digest/delete). Each test skips with a reason when its client is missing,
//! and fails instead under CI=true.

mod registry_support;
use registry_support::*;
use std::path::Path;
use std::process::Command;

/// Writes an OCI image layout at `dir` holding an index of one image per platform, each with
/// a real tar layer, tagged `tag`. Returns the index digest.
fn oci_layout(dir: &Path, tag: &str, platforms: &[(&str, &str)]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout dir");
    let write = |data: &[u8]| {
        let digest = sha256(data);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), data).expect("blob");
        (digest, data.len())
    };
    let mut manifests = Vec::new();
    for (arch, text) in platforms {
        let src = tempfile::tempdir().expect("layer src");
        std::fs::write(
            src.path().join("hello.txt"),
            format!("hello from {arch}: {text}\n"),
        )
        .expect("file");
        let tar = Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C"])
            .arg(src.path())
            .args(["-cf", "-", "hello.txt"])
            .output()
            .expect("tar")
            .stdout;
        let (layer, layer_size) = write(&tar);
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer]},
        })
        .to_string();
        let (config, config_size) = write(config.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
        })
        .to_string();
        let (digest, size) = write(manifest.as_bytes());
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    })
    .to_string();
    let (index_digest, index_size) = write(index.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), top.to_string()).expect("index.json");
    index_digest
}

fn manifest_digest(server: &Server, repo: &str, reference: &str) -> Option<String> {
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
    let r = http(
        &server.addr,
        "HEAD",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", accept)],
        b"",
    );
    (r.status == 200).then(|| {
        r.header("Docker-Content-Digest")
            .unwrap_or_default()
            .to_string()
    })
}

#[test]
fn skopeo_copies_a_multi_arch_index_both_ways() {
    let test = "skopeo_copies_a_multi_arch_index_both_ways";
    let Some(skopeo) = require_tool(test, "skopeo") else {
        return;
    };
    let server = Server::start(&[]);
    let work = tempfile::tempdir().expect("work");
    let layout = work.path().join("src");
    let index = oci_layout(&layout, "v1", &[("amd64", "a"), ("arm64", "b")]);
    let dest = format!("docker://{}/skopeo/multi:v1", server.addr);
    run(Command::new(&skopeo)
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(&dest));
    assert_eq!(
        manifest_digest(&server, "skopeo/multi", "v1").as_deref(),
        Some(index.as_str()),
        "the index digest must survive the push"
    );
    let raw = run(Command::new(&skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&dest));
    assert!(raw.contains("arm64") && raw.contains("amd64"), "{raw}");
    // And back out of the registry into a fresh layout.
    let back = work.path().join("back");
    run(Command::new(&skopeo)
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--src-tls-verify=false",
        ])
        .arg(&dest)
        .arg(format!("oci:{}:v1", back.display())));
    let index_json = std::fs::read_to_string(back.join("index.json")).expect("index.json");
    assert!(index_json.contains(&index), "{index_json}");
    // Registry to registry, single platform.
    run(Command::new(&skopeo)
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--override-arch",
            "arm64",
        ])
        .arg(&dest)
        .arg(format!("docker://{}/skopeo/arm:v1", server.addr)));
    let inspect = run(Command::new(&skopeo)
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/skopeo/arm:v1", server.addr)));
    assert!(inspect.contains("\"Architecture\": \"arm64\""), "{inspect}");
}

#[test]
fn podman_pushes_and_pulls() {
    let test = "podman_pushes_and_pulls";
    let Some(podman) = require_tool(test, "podman") else {
        return;
    };
    let Some(skopeo) = require_tool(test, "skopeo") else {
        return;
    };
    let server = Server::start(&[]);
    let work = tempfile::tempdir().expect("work");
    let layout = work.path().join("src");
    oci_layout(&layout, "v1", &[("amd64", "podman")]);
    run(Command::new(&skopeo)
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/podman/src:v1", server.addr)));
    let root = work.path().join("root");
    let runroot = work.path().join("runroot");
    let podman_cmd = || {
        let mut c = Command::new(&podman);
        c.arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args([
                "--storage-driver",
                "vfs",
                "--events-backend",
                "file",
                "--cgroup-manager",
                "cgroupfs",
            ]);
        c
    };
    let src = format!("{}/podman/src:v1", server.addr);
    let dst = format!("{}/podman/dst:v2", server.addr);
    run(podman_cmd().args(["pull", "--tls-verify=false", &src]));
    run(podman_cmd().args(["tag", &src, &dst]));
    run(podman_cmd().args(["push", "--tls-verify=false", &dst]));
    assert!(manifest_digest(&server, "podman/dst", "v2").is_some());
    run(podman_cmd().args(["rmi", "-a", "-f"]));
    run(podman_cmd().args(["pull", "--tls-verify=false", &dst]));
    let images = run(podman_cmd().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(images.contains("podman/dst:v2"), "{images}");
}

#[test]
fn docker_pushes_and_pulls_a_multi_layer_image() {
    let test = "docker_pushes_and_pulls_a_multi_layer_image";
    let Some(host) = docker_host(test) else {
        return;
    };
    let docker = || {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &host).env("DOCKER_BUILDKIT", "0");
        c
    };
    let has_base = docker()
        .args(["image", "inspect", "skiff-test/busybox:1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_base {
        missing(
            test,
            "image skiff-test/busybox:1 is missing (run scripts/test-images)",
        );
        return;
    }
    let server = Server::start(&[]);
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(ctx.path().join("a.txt"), "layer a\n").expect("a");
    std::fs::write(ctx.path().join("b.bin"), vec![7u8; 3 << 20]).expect("b");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM skiff-test/busybox:1\nCOPY a.txt /a.txt\nCOPY b.bin /b.bin\n",
    )
    .expect("Dockerfile");
    let image = format!("{}/docker/multi:1", server.addr);
    run(docker().args(["build", "-q", "-t", &image]).arg(ctx.path()));
    let layers = run(docker().args([
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        &image,
    ]));
    assert!(
        layers.trim().parse::<u32>().unwrap_or(0) >= 3,
        "expected 3 layers, got {layers}"
    );
    run(docker().args(["push", &image]));
    let pushed = manifest_digest(&server, "docker/multi", "1").expect("pushed manifest");
    run(docker().args(["rmi", "-f", &image]));
    run(docker().args(["pull", &image]));
    let digests = run(docker().args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &image,
    ]));
    assert!(digests.contains(&pushed), "{digests} vs {pushed}");
    let _ = docker().args(["rmi", "-f", &image]).output();
}

#[test]
fn oras_pushes_pulls_attaches_and_discovers() {
    let test = "oras_pushes_pulls_attaches_and_discovers";
    let Some(oras) = require_tool(test, "oras") else {
        return;
    };
    let server = Server::start(&[]);
    let work = tempfile::tempdir().expect("work");
    std::fs::write(work.path().join("artifact.txt"), "an artifact\n").expect("file");
    std::fs::write(work.path().join("sig.txt"), "a signature\n").expect("file");
    let reference = format!("{}/oras/art:v1", server.addr);
    let oras_cmd = || {
        let mut c = Command::new(&oras);
        c.current_dir(work.path()).env("HOME", work.path());
        c
    };
    run(oras_cmd().args([
        "push",
        "--plain-http",
        "--artifact-type",
        "application/vnd.skiff.test",
        &reference,
        "artifact.txt:text/plain",
    ]));
    let out = work.path().join("out");
    run(oras_cmd()
        .args(["pull", "--plain-http", &reference, "-o"])
        .arg(&out));
    assert_eq!(
        std::fs::read_to_string(out.join("artifact.txt")).expect("pulled"),
        "an artifact\n"
    );
    run(oras_cmd().args([
        "attach",
        "--plain-http",
        "--artifact-type",
        "application/vnd.skiff.signature",
        &reference,
        "sig.txt:text/plain",
    ]));
    let found = run(oras_cmd().args(["discover", "--plain-http", "--format", "json", &reference]));
    assert!(found.contains("application/vnd.skiff.signature"), "{found}");
    let filtered = run(oras_cmd().args([
        "discover",
        "--plain-http",
        "--format",
        "json",
        "--artifact-type",
        "application/x.other",
        &reference,
    ]));
    assert!(
        !filtered.contains("application/vnd.skiff.signature"),
        "{filtered}"
    );
    let tags = run(oras_cmd().args([
        "repo",
        "tags",
        "--plain-http",
        &format!("{}/oras/art", server.addr),
    ]));
    assert!(tags.lines().any(|l| l == "v1"), "{tags}");
}

#[test]
fn helm_pushes_and_pulls_an_oci_chart() {
    let test = "helm_pushes_and_pulls_an_oci_chart";
    let Some(helm) = require_tool(test, "helm") else {
        return;
    };
    let server = Server::start(&[]);
    let work = tempfile::tempdir().expect("work");
    let helm_cmd = || {
        let mut c = Command::new(&helm);
        c.current_dir(work.path())
            .env("HELM_CONFIG_HOME", work.path().join("config"))
            .env("HELM_CACHE_HOME", work.path().join("cache"))
            .env("HELM_DATA_HOME", work.path().join("data"));
        c
    };
    run(helm_cmd().args(["create", "skiffchart"]));
    run(helm_cmd().args(["package", "skiffchart", "-d", "pkg"]));
    let repo = format!("oci://{}/charts", server.addr);
    run(helm_cmd().args(["push", "--plain-http", "pkg/skiffchart-0.1.0.tgz", &repo]));
    std::fs::create_dir_all(work.path().join("pulled")).expect("pulled dir");
    run(helm_cmd().args([
        "pull",
        "--plain-http",
        &format!("{repo}/skiffchart"),
        "--version",
        "0.1.0",
        "-d",
        "pulled",
    ]));
    let original = std::fs::read(work.path().join("pkg/skiffchart-0.1.0.tgz")).expect("packaged");
    let pulled = std::fs::read(work.path().join("pulled/skiffchart-0.1.0.tgz")).expect("pulled");
    assert!(original == pulled, "the pulled chart differs");
}

#[test]
fn crane_copies_lists_digests_and_deletes() {
    let test = "crane_copies_lists_digests_and_deletes";
    let Some(crane) = require_tool(test, "crane") else {
        return;
    };
    let Some(skopeo) = require_tool(test, "skopeo") else {
        return;
    };
    let server = Server::start(&[]);
    let work = tempfile::tempdir().expect("work");
    let layout = work.path().join("src");
    let index = oci_layout(&layout, "v1", &[("amd64", "c1"), ("arm64", "c2")]);
    run(Command::new(&skopeo)
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker://{}/crane/src:v1", server.addr)));
    let crane_cmd = || {
        let mut c = Command::new(&crane);
        c.env("HOME", work.path()).arg("--insecure");
        c
    };
    let src = format!("{}/crane/src:v1", server.addr);
    let dst = format!("{}/crane/dst:copied", server.addr);
    run(crane_cmd().args(["copy", &src, &dst]));
    let digest = run(crane_cmd().args(["digest", &dst]));
    assert_eq!(digest.trim(), index);
    let tags = run(crane_cmd().args(["ls", &format!("{}/crane/dst", server.addr)]));
    assert_eq!(tags.trim(), "copied");
    run(crane_cmd().args(["delete", &format!("{}/crane/dst@{index}", server.addr)]));
    let gone = crane_cmd()
        .args(["digest", &dst])
        .output()
        .expect("crane digest");
    assert!(
        !gone.status.success(),
        "the deleted manifest is still served"
    );
    let catalog = run(crane_cmd().args(["catalog", &server.addr]));
    assert!(catalog.contains("crane/src"), "{catalog}");
}
