//! The OCI distribution-spec conformance suite (built by `scripts/registry-tools`) against
//! `skiff registry serve`, with all four workflows: pull, push, content discovery and
//! content management.

mod registry_support;
use registry_support::*;
use std::process::Command;

#[test]
fn oci_conformance_suite_passes() {
    let Some(suite) = require_tool("oci_conformance_suite_passes", "conformance.test") else {
        return;
    };
    let server = Server::start(&[]);
    let results = tempfile::tempdir().expect("results dir");
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
        .env("OCI_REPORT_DIR", results.path())
        .output()
        .expect("run the conformance suite");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "conformance suite failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OCI Conformance Result: Pass"), "{stdout}");
    let summary = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.rsplit(':').next())
            .map(|v| v.trim().to_string())
    };
    assert_eq!(summary("FAIL..").as_deref(), Some("0"), "{stdout}");
    assert_eq!(summary("Error..").as_deref(), Some("0"), "{stdout}");
    // With OCI_VERSION=dev every optional API is on; only sparse manifests stay disabled.
    let disabled: Vec<&str> = stdout
        .lines()
        .filter(|l| l.ends_with("Disabled") && !l.contains("Sparse") && !l.contains('/'))
        .collect();
    assert!(disabled.is_empty(), "untested parts: {disabled:?}");
}
