//! Faults and bad input against the real binary: concurrent pushes of one blob, an upload cut
//! off and resumed, and requests that must be refused with the right OCI error while leaving
//! nothing behind in storage.

mod registry_support;
use registry_support::*;
use std::path::Path;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Every file under `dir/sub`, relative to `dir`.
fn files(dir: &Path, sub: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join(sub)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

fn push_blob(addr: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let r = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[],
        data,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    digest
}

fn manifest(config: &str, config_size: usize, layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s}))
        .collect();
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": layers,
    })
    .to_string()
    .into_bytes()
}

#[test]
fn the_same_blob_pushed_by_many_clients_at_once() {
    let server = Server::start(&[]);
    let data: Vec<u8> = (0..(3 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let digest = sha256(&data);
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let addr = server.addr.clone();
            let data = data.clone();
            let digest = digest.clone();
            std::thread::spawn(move || {
                let repo = format!("race/r{}", i % 3);
                if i % 2 == 0 {
                    let r = http(
                        &addr,
                        "POST",
                        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                        &[],
                        &data,
                    );
                    assert_eq!(r.status, 201, "{}", r.text());
                } else {
                    let r = http(
                        &addr,
                        "POST",
                        &format!("/v2/{repo}/blobs/uploads/"),
                        &[],
                        b"",
                    );
                    assert_eq!(r.status, 202);
                    let location = r.header("Location").expect("location").to_string();
                    let r = http(
                        &addr,
                        "PATCH",
                        &location,
                        &[("Content-Type", "application/octet-stream")],
                        &data,
                    );
                    assert_eq!(r.status, 202, "{}", r.text());
                    let r = http(
                        &addr,
                        "PUT",
                        &format!("{location}?digest={digest}"),
                        &[],
                        b"",
                    );
                    assert_eq!(r.status, 201, "{}", r.text());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("push thread");
    }
    for i in 0..3 {
        let r = http(
            &server.addr,
            "GET",
            &format!("/v2/race/r{i}/blobs/{digest}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 200);
        assert!(
            r.body == data,
            "blob content differs after concurrent pushes"
        );
    }
    assert_eq!(files(server.data.path(), "blobs").len(), 1);
    assert!(
        files(server.data.path(), "uploads").is_empty(),
        "leftover uploads"
    );
}

#[test]
fn an_interrupted_upload_resumes_where_it_stopped() {
    let server = Server::start(&[]);
    let data: Vec<u8> = (0..(2 << 20)).map(|i| (i % 256) as u8).collect();
    let digest = sha256(&data);
    let r = http(
        &server.addr,
        "POST",
        "/v2/resume/me/blobs/uploads/",
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
    let location = r.header("Location").expect("location").to_string();
    // The client dies after sending a third of the chunk.
    http_cut(
        &server.addr,
        "PATCH",
        &location,
        data.len(),
        &data[..700_000],
    );
    let status = http(&server.addr, "GET", &location, &[], b"");
    assert_eq!(status.status, 204);
    let range = status.header("Range").expect("Range");
    let end: usize = range.trim_start_matches("0-").parse().expect("range end");
    let have = if status.header("Range") == Some("0-0") {
        0
    } else {
        end + 1
    };
    assert!(have <= 700_000, "server claims {have} bytes");
    // Resume from what the server has.
    let content_range = format!("{}-{}", have, data.len() - 1);
    let r = http(
        &server.addr,
        "PATCH",
        &location,
        &[("Content-Range", &content_range)],
        &data[have..],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        r.header("Range"),
        Some(format!("0-{}", data.len() - 1).as_str())
    );
    // A chunk that does not continue the upload is refused.
    let r = http(
        &server.addr,
        "PATCH",
        &location,
        &[("Content-Range", "5-9")],
        b"01234",
    );
    assert_eq!(r.status, 416);
    let r = http(
        &server.addr,
        "PUT",
        &format!("{location}?digest={digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = http(
        &server.addr,
        "GET",
        &format!("/v2/resume/me/blobs/{digest}"),
        &[],
        b"",
    );
    assert!(r.status == 200 && r.body == data);
}

#[test]
fn a_wrong_digest_is_refused_and_nothing_is_stored() {
    let server = Server::start(&[]);
    let wrong = sha256(b"something else");
    let r = http(
        &server.addr,
        "POST",
        &format!("/v2/bad/digest/blobs/uploads/?digest={wrong}"),
        &[],
        b"payload",
    );
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("DIGEST_INVALID"))
    );
    // Same through POST + PUT.
    let r = http(
        &server.addr,
        "POST",
        "/v2/bad/digest/blobs/uploads/",
        &[],
        b"",
    );
    let location = r.header("Location").expect("location").to_string();
    let r = http(
        &server.addr,
        "PUT",
        &format!("{location}?digest={wrong}"),
        &[],
        b"payload",
    );
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("DIGEST_INVALID"))
    );
    let r = http(
        &server.addr,
        "POST",
        "/v2/bad/digest/blobs/uploads/?digest=sha256:nothex",
        &[],
        b"x",
    );
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("DIGEST_INVALID"))
    );
    for digest in [wrong, sha256(b"payload")] {
        let r = http(
            &server.addr,
            "HEAD",
            &format!("/v2/bad/digest/blobs/{digest}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 404);
    }
    assert!(files(server.data.path(), "blobs").is_empty());
    assert!(files(server.data.path(), "uploads").is_empty());
}

#[test]
fn bad_manifests_get_the_right_error_and_are_not_stored() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let config = push_blob(addr, "m/repo", b"{}");
    let missing = sha256(b"never pushed");
    let put = |tag: &str, content_type: &str, body: &[u8]| {
        http(
            addr,
            "PUT",
            &format!("/v2/m/repo/manifests/{tag}"),
            &[("Content-Type", content_type)],
            body,
        )
    };
    let before = files(server.data.path(), "blobs");

    let r = put(
        "missing",
        OCI_MANIFEST,
        &manifest(&config, 2, &[(&missing, 12)]),
    );
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("MANIFEST_BLOB_UNKNOWN")),
        "{}",
        r.text()
    );

    let r = put("json", OCI_MANIFEST, b"{\"schemaVersion\": 2, \"config\": ");
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("MANIFEST_INVALID"))
    );

    // The declared mediaType must match Content-Type (CVE-2021-41190).
    let r = put(
        "confused",
        "application/vnd.oci.image.index.v1+json",
        &manifest(&config, 2, &[]),
    );
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("MANIFEST_INVALID"))
    );

    let mut big = manifest(&config, 2, &[]);
    big.pop();
    big.extend_from_slice(b",\"annotations\":{\"x\":\"");
    big.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024));
    big.extend_from_slice(b"\"}}");
    let r = put("big", OCI_MANIFEST, &big);
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (413, Some("SIZE_INVALID"))
    );

    let digest_of_other = sha256(b"not this manifest");
    let r = put(&digest_of_other, OCI_MANIFEST, &manifest(&config, 2, &[]));
    assert_eq!(
        (r.status, r.error_code().as_deref()),
        (400, Some("DIGEST_INVALID"))
    );

    for tag in ["missing", "json", "confused", "big"] {
        let r = http(
            addr,
            "GET",
            &format!("/v2/m/repo/manifests/{tag}"),
            &[],
            b"",
        );
        assert_eq!(
            (r.status, r.error_code().as_deref()),
            (404, Some("MANIFEST_UNKNOWN"))
        );
    }
    assert_eq!(
        files(server.data.path(), "blobs"),
        before,
        "a refused manifest left content"
    );
    let r = http(addr, "GET", "/v2/m/repo/tags/list", &[], b"");
    let tags: serde_json::Value = serde_json::from_slice(&r.body).expect("tags json");
    assert_eq!(tags["tags"], serde_json::json!([]));

    // The good manifest goes in.
    let r = put("good", OCI_MANIFEST, &manifest(&config, 2, &[]));
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn traversal_and_malformed_names_are_name_invalid() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    for name in [
        "..",
        "a/../../etc",
        "/etc",
        "a//b",
        "A/b",
        "a/%2e%2e/b",
        "a%2F..%2Fb",
        "a/.b",
        "a_",
    ] {
        for (method, path) in [
            (
                "POST",
                format!("/v2/{name}/blobs/uploads/?digest={}", sha256(b"x")),
            ),
            ("PUT", format!("/v2/{name}/manifests/latest")),
            ("GET", format!("/v2/{name}/tags/list")),
        ] {
            let r = http(addr, method, &path, &[("Content-Type", OCI_MANIFEST)], b"x");
            assert!(
                r.status == 400 && r.error_code().as_deref() == Some("NAME_INVALID")
                    || r.status == 404,
                "{method} {path}: {} {}",
                r.status,
                r.text()
            );
        }
    }
    let r = http(addr, "GET", "/v2/a/manifests/bad+tag", &[], b"");
    assert_eq!(r.status, 400);
    assert!(files(server.data.path(), "blobs").is_empty());
    assert!(files(server.data.path(), "repos").is_empty());
    assert!(!server.data.path().join("etc").exists());
}
