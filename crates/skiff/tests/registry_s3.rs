//! The registry on S3 storage (object_store) against a real S3 server: MinIO, built from Go
//! modules by `scripts/registry-tools` (via `scripts/minio build`). The test starts it on
//! loopback itself, unless `scripts/minio up` already announced one through
//! `SKIFF_TEST_S3_ENDPOINT`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.

mod registry_support;
use registry_support::*;
use std::process::Command;

struct S3 {
    endpoint: String,
    key: String,
    secret: String,
    /// A MinIO this test started itself (killed on drop), with its data directory.
    _own: Option<(KillOnDrop, tempfile::TempDir)>,
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The S3 server to test against: the one `scripts/minio up` announced, or else a MinIO
/// started here from the binary `scripts/registry-tools` built.
fn s3(test: &str) -> Option<S3> {
    let vars = (
        std::env::var("SKIFF_TEST_S3_ENDPOINT"),
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    );
    if let (Ok(endpoint), Ok(key), Ok(secret)) = vars {
        return Some(S3 {
            endpoint,
            key,
            secret,
            _own: None,
        });
    }
    let minio = tools_bin().join("minio");
    if !minio.is_file() {
        missing(
            test,
            &format!(
                "no S3 server: {} is missing (run scripts/registry-tools)",
                minio.display()
            ),
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let data = tempfile::tempdir().expect("minio data");
    let (key, secret) = ("skiffminio".to_string(), "skiffminio-secret".to_string());
    let child = Command::new(&minio)
        .args([
            "server",
            "--quiet",
            "--address",
            &format!("127.0.0.1:{port}"),
        ])
        .arg(data.path())
        .env("MINIO_ROOT_USER", &key)
        .env("MINIO_ROOT_PASSWORD", &secret)
        .env("MINIO_BROWSER", "off")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start minio");
    let guard = KillOnDrop(child);
    let addr = format!("127.0.0.1:{port}");
    let ready = (0..240).any(|_| {
        let up = std::net::TcpStream::connect(&addr).is_ok()
            && http(&addr, "GET", "/minio/health/live", &[], b"").status == 200;
        if !up {
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        up
    });
    assert!(ready, "minio did not become ready on {addr}");
    Some(S3 {
        endpoint: format!("http://{addr}"),
        key,
        secret,
        _own: Some((guard, data)),
    })
}

/// Creates a bucket with a SigV4-signed PUT (curl signs it).
fn create_bucket(s3: &S3, bucket: &str) {
    let out = run(Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
        ])
        .arg(format!("{}:{}", s3.key, s3.secret))
        .arg(format!("{}/{bucket}", s3.endpoint)));
    assert_eq!(out.trim(), "200", "creating bucket {bucket}");
}

fn start(s3: &S3, bucket: &str) -> Server {
    let data = tempfile::tempdir().expect("data");
    Server::start_in(
        data,
        &[
            ("AWS_ACCESS_KEY_ID", &s3.key),
            ("AWS_SECRET_ACCESS_KEY", &s3.secret),
        ],
        &["--s3-bucket", bucket, "--s3-endpoint", &s3.endpoint],
    )
}

fn bucket_name(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("skiff-{tag}-{}-{nanos}", std::process::id())
}

#[test]
fn blobs_manifests_and_gc_on_s3() {
    let test = "blobs_manifests_and_gc_on_s3";
    let Some(s3) = s3(test) else { return };
    let bucket = bucket_name("api");
    create_bucket(&s3, &bucket);
    let server = start(&s3, &bucket);
    let addr = &server.addr;
    // Big enough for a multipart upload (16 MiB parts), pushed in two chunks.
    let big: Vec<u8> = (0..(40 << 20))
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let big_digest = sha256(&big);
    let r = http(addr, "POST", "/v2/s3/app/blobs/uploads/", &[], b"");
    let location = r.header("Location").expect("location").to_string();
    let half = big.len() / 2;
    let r = http(
        addr,
        "PATCH",
        &location,
        &[("Content-Range", &format!("0-{}", half - 1))],
        &big[..half],
    );
    assert_eq!(r.status, 202);
    let r = http(
        addr,
        "PUT",
        &format!("{location}?digest={big_digest}"),
        &[],
        &big[half..],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let config = sha256(b"{}");
    assert_eq!(
        http(
            addr,
            "POST",
            &format!("/v2/s3/app/blobs/uploads/?digest={config}"),
            &[],
            b"{}"
        )
        .status,
        201
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": big_digest, "size": big.len()}],
    })
    .to_string();
    let r = http(
        addr,
        "PUT",
        "/v2/s3/app/manifests/v1",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    let r = http(
        addr,
        "GET",
        &format!("/v2/s3/app/blobs/{big_digest}"),
        &[],
        b"",
    );
    assert!(
        r.status == 200 && r.body == big,
        "blob read back from S3 differs"
    );
    let r = http(
        addr,
        "GET",
        &format!("/v2/s3/app/blobs/{big_digest}"),
        &[("Range", "bytes=100-199")],
        b"",
    );
    assert!(r.status == 206 && r.body == big[100..200]);
    let r = http(addr, "GET", "/v2/s3/app/manifests/v1", &[], b"");
    assert!(r.status == 200 && r.body == manifest.as_bytes());
    let r = http(addr, "GET", "/v2/s3/app/tags/list", &[], b"");
    assert!(r.text().contains("\"v1\""), "{}", r.text());
    let r = http(addr, "GET", "/v2/_catalog", &[], b"");
    assert!(r.text().contains("s3/app"), "{}", r.text());

    // GC on S3: an orphan goes, referenced content stays.
    let orphan = sha256(b"orphan on s3");
    assert_eq!(
        http(
            addr,
            "POST",
            &format!("/v2/s3/app/blobs/uploads/?digest={orphan}"),
            &[],
            b"orphan on s3"
        )
        .status,
        201
    );
    let out = run(Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["registry", "gc", "--grace-seconds", "0", "--data-dir"])
        .arg(server.data.path())
        .args(["--s3-bucket", &bucket, "--s3-endpoint", &s3.endpoint])
        .env("AWS_ACCESS_KEY_ID", &s3.key)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret));
    assert!(out.contains(&format!("deleted blob {orphan}")), "{out}");
    assert!(!out.contains(&big_digest), "{out}");
    assert_eq!(
        http(
            addr,
            "HEAD",
            &format!("/v2/s3/app/blobs/{orphan}"),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(
        http(
            addr,
            "HEAD",
            &format!("/v2/s3/app/blobs/{big_digest}"),
            &[],
            b""
        )
        .status,
        200
    );
}

#[test]
fn oci_conformance_suite_passes_on_s3() {
    let test = "oci_conformance_suite_passes_on_s3";
    let Some(s3) = s3(test) else { return };
    let Some(suite) = require_tool(test, "conformance.test") else {
        return;
    };
    let bucket = bucket_name("conformance");
    create_bucket(&s3, &bucket);
    let server = start(&s3, &bucket);
    let results = tempfile::tempdir().expect("results");
    let output = Command::new(suite)
        .current_dir(results.path())
        .env("OCI_ROOT_URL", server.url())
        .env("OCI_NAMESPACE", "conformance/repo1")
        .env("OCI_CROSSMOUNT_NAMESPACE", "conformance/repo2")
        .env("OCI_TEST_PULL", "1")
        .env("OCI_TEST_PUSH", "1")
        .env("OCI_TEST_CONTENT_DISCOVERY", "1")
        .env("OCI_TEST_CONTENT_MANAGEMENT", "1")
        .env("OCI_VERSION", "dev")
        .env("OCI_RESULTS_DIR", results.path())
        .output()
        .expect("run the conformance suite");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("OCI Conformance Result: Pass"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
