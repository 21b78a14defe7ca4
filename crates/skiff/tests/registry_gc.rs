//! `skiff registry gc` against a data directory a running registry is using: dry run reports
//! and keeps, a real run deletes only unreferenced blobs and abandoned uploads, and the grace
//! period spares anything fresh (pushes in flight).

mod registry_support;
use registry_support::*;
use std::process::Command;

fn gc(server: &Server, args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["registry", "gc", "--data-dir"])
        .arg(server.data.path())
        .args(args))
}

#[test]
fn gc_deletes_only_unreferenced_blobs_and_stale_uploads() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let push = |data: &[u8]| {
        let digest = sha256(data);
        let r = http(
            addr,
            "POST",
            &format!("/v2/gc/app/blobs/uploads/?digest={digest}"),
            &[],
            data,
        );
        assert_eq!(r.status, 201);
        digest
    };
    let config = push(b"{}");
    let layer = push(b"a referenced layer");
    let orphan = push(b"nobody references me");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 18}],
    })
    .to_string();
    let r = http(
        addr,
        "PUT",
        "/v2/gc/app/manifests/v1",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.as_bytes(),
    );
    assert_eq!(r.status, 201);
    let r = http(addr, "POST", "/v2/gc/app/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202);

    // Within the grace period nothing goes.
    let out = gc(&server, &[]);
    assert!(
        out.contains("deleted 0 blobs") && out.contains("0 uploads"),
        "{out}"
    );

    let out = gc(&server, &["--dry-run", "--grace-seconds", "0"]);
    assert!(
        out.contains(&format!("would delete blob {orphan}")),
        "{out}"
    );
    assert!(!out.contains(&layer) && !out.contains(&config), "{out}");
    assert!(
        out.contains("would delete 1 blobs") && out.contains("1 uploads"),
        "{out}"
    );
    let get =
        |digest: &str| http(addr, "GET", &format!("/v2/gc/app/blobs/{digest}"), &[], b"").status;
    assert_eq!(get(&orphan), 200, "a dry run deleted");

    let out = gc(&server, &["--grace-seconds", "0"]);
    assert!(out.contains(&format!("deleted blob {orphan}")), "{out}");
    assert_eq!(get(&orphan), 404);
    assert_eq!(get(&layer), 200);
    assert_eq!(get(&config), 200);
    let r = http(
        addr,
        "GET",
        "/v2/gc/app/manifests/v1",
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(
        std::fs::read_dir(server.data.path().join("uploads"))
            .expect("uploads")
            .next()
            .is_none()
    );

    // The deleted blob can be pushed again.
    assert_eq!(push(b"nobody references me"), orphan);
    assert_eq!(get(&orphan), 200);
}
