//! The store on both backends: build numbering, webhook redelivery, the leased queue,
//! dependencies between stages, cancellation and secrets.

mod common;

use common::{backends, build, repo, stage};
use skiff_store::{LeaseState, NewBuild, RunnerSpec, StoreError, status};
use std::collections::HashSet;
use std::time::Duration;

fn runner(name: &str) -> RunnerSpec {
    RunnerSpec {
        name: name.into(),
        os: "linux".into(),
        arch: "amd64".into(),
        kinds: vec!["exec".into(), "docker".into()],
        labels: String::new(),
    }
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn build_numbers_and_delivery_dedupe() {
    for b in backends().await {
        let s = &b.store;
        let r = repo(s, "app").await;
        let first = s
            .create_build(&build(&r, Some("d-1"), vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("new build");
        assert_eq!(first.number, 1, "{}", s.backend());
        let again = s
            .create_build(&build(&r, Some("d-1"), vec![stage("ci", &[])]))
            .await
            .expect("create");
        assert!(
            again.is_none(),
            "redelivery makes no build ({})",
            s.backend()
        );
        let second = s
            .create_build(&build(&r, Some("d-2"), vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("new build");
        assert_eq!(second.number, 2, "no number consumed by the duplicate");
        let manual = s
            .create_build(&NewBuild {
                config: "kind: pipeline\n".into(),
                ..build(&r, None, vec![])
            })
            .await
            .expect("create")
            .expect("new build");
        assert_eq!(manual.number, 3);
        let list = s.builds(r.id, 10).await.expect("list");
        assert_eq!(list.iter().map(|b| b.number).collect::<Vec<_>>(), [3, 2, 1]);
        // A listing leaves the pipeline file out; the build itself has it.
        assert_eq!(list[0].config, "", "{}", s.backend());
        let one = s.build(r.id, 3).await.expect("build").expect("exists");
        assert_eq!(one.config, "kind: pipeline\n", "{}", s.backend());
        assert_eq!(one.message, list[0].message);
        let steps = s.stages(first.id).await.expect("stages");
        assert_eq!(steps.len(), 1);
        assert_eq!(s.steps(steps[0].id).await.expect("steps").len(), 2);
        match s
            .create_repo(&skiff_store::NewRepo {
                owner: "acme".into(),
                name: "app".into(),
                git_url: String::new(),
                config_path: String::new(),
                default_branch: String::new(),
                trusted: false,
                timeout_secs: 1,
                visibility: String::new(),
                fork_pr_secrets: false,
                webhook_secret: String::new(),
                hosted: false,
            })
            .await
        {
            Err(StoreError::Conflict { .. }) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn claim_lease_heartbeat_and_expiry() {
    for b in backends().await {
        let s = &b.store;
        let r = repo(s, "q").await;
        let built = s
            .create_build(&build(&r, None, vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("build");
        let mut other = runner("arm");
        other.arch = "arm64".into();
        assert!(
            s.claim(&other, LEASE).await.expect("claim").is_none(),
            "platform must match"
        );
        let mut labelled = runner("gpu");
        labelled.labels = "gpu=yes".into();
        assert!(
            s.claim(&labelled, LEASE).await.expect("claim").is_none(),
            "labels must match"
        );

        let claim = s
            .claim(&runner("a"), Duration::from_millis(200))
            .await
            .expect("claim")
            .expect("a stage");
        assert_eq!(claim.stage.status, status::RUNNING);
        assert!(
            s.claim(&runner("b"), LEASE).await.expect("claim").is_none(),
            "leased"
        );
        assert_eq!(
            s.build_by_id(built.id)
                .await
                .expect("get")
                .expect("build")
                .status,
            status::RUNNING
        );
        let steps = s.steps(claim.stage.id).await.expect("steps");
        assert!(
            s.update_step(
                claim.stage.id,
                &claim.lease_token,
                1,
                "success",
                0,
                "",
                1,
                2
            )
            .await
            .expect("update")
        );
        s.append_logs(steps[0].id, &[(0, "hello".into(), 0)])
            .await
            .expect("logs");

        // The runner dies: the lease expires and another runner takes the stage from the start.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let retaken = s
            .claim(&runner("b"), LEASE)
            .await
            .expect("claim")
            .expect("expired lease is claimable");
        assert_eq!(retaken.stage.id, claim.stage.id);
        assert_eq!(retaken.stage.attempts, 2);
        assert!(
            s.logs(steps[0].id, 0).await.expect("logs").is_empty(),
            "old logs removed"
        );
        assert_eq!(
            s.steps(claim.stage.id).await.expect("steps")[0].status,
            status::PENDING
        );
        // The old holder can no longer write anything.
        assert_eq!(
            s.heartbeat(claim.stage.id, &claim.lease_token, LEASE)
                .await
                .expect("hb"),
            LeaseState::Lost
        );
        assert!(
            !s.update_step(
                claim.stage.id,
                &claim.lease_token,
                1,
                "failure",
                1,
                "",
                1,
                2
            )
            .await
            .expect("update")
        );
        assert!(
            !s.finish_stage(claim.stage.id, &claim.lease_token, status::FAILURE, "")
                .await
                .expect("finish")
        );
        assert_eq!(
            s.heartbeat(retaken.stage.id, &retaken.lease_token, LEASE)
                .await
                .expect("hb"),
            LeaseState::Held
        );
        assert!(
            s.finish_stage(retaken.stage.id, &retaken.lease_token, status::SUCCESS, "")
                .await
                .expect("finish")
        );
        let done = s.build_by_id(built.id).await.expect("get").expect("build");
        assert_eq!(done.status, status::SUCCESS);
        assert!(done.finished > 0);
    }
}

#[tokio::test]
async fn concurrent_claims_never_share_a_stage() {
    for b in backends().await {
        let s = b.store.clone();
        let r = repo(&s, "many").await;
        for _ in 0..10 {
            s.create_build(&build(&r, None, vec![stage("a", &[]), stage("b", &[])]))
                .await
                .expect("create");
        }
        let mut tasks = Vec::new();
        for n in 0..6 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(c) = s
                    .claim(&runner(&format!("r{n}")), LEASE)
                    .await
                    .expect("claim")
                {
                    got.push(c.stage.id);
                }
                got
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("join"));
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 20, "{}: every stage claimed", s.backend());
        assert_eq!(unique.len(), 20, "{}: none twice", s.backend());
    }
}

#[tokio::test]
async fn dependencies_and_cancel() {
    for b in backends().await {
        let s = &b.store;
        let r = repo(s, "deps").await;
        let mut notify = stage("notify", &["test"]);
        notify.on_success = false;
        notify.on_failure = true;
        let built = s
            .create_build(&build(
                &r,
                None,
                vec![stage("test", &[]), stage("deploy", &["test"]), notify],
            ))
            .await
            .expect("create")
            .expect("build");
        let c = s
            .claim(&runner("a"), LEASE)
            .await
            .expect("claim")
            .expect("test");
        assert_eq!(c.stage.name, "test");
        assert!(
            s.claim(&runner("a"), LEASE).await.expect("claim").is_none(),
            "deploy waits"
        );
        s.finish_stage(c.stage.id, &c.lease_token, status::SUCCESS, "")
            .await
            .expect("finish");
        let stages = s.stages(built.id).await.expect("stages");
        let by_name = |n: &str| {
            stages
                .iter()
                .find(|s| s.name == n)
                .map(|s| s.status.clone())
                .unwrap_or_default()
        };
        assert_eq!(by_name("deploy"), status::PENDING);
        assert_eq!(by_name("notify"), status::SKIPPED, "runs on failure only");

        let d = s
            .claim(&runner("a"), LEASE)
            .await
            .expect("claim")
            .expect("deploy");
        assert_eq!(d.stage.name, "deploy");
        let current = s.build_by_id(built.id).await.expect("get").expect("build");
        s.cancel_build(&current).await.expect("cancel");
        assert_eq!(
            s.heartbeat(d.stage.id, &d.lease_token, LEASE)
                .await
                .expect("hb"),
            LeaseState::Cancelled
        );
        assert!(
            s.finish_stage(d.stage.id, &d.lease_token, status::KILLED, "")
                .await
                .expect("finish")
        );
        let done = s.build_by_id(built.id).await.expect("get").expect("build");
        assert_eq!(done.status, status::KILLED);
    }
}

#[tokio::test]
async fn secrets_are_upserted_and_deleted() {
    for b in backends().await {
        let s = &b.store;
        let r = repo(s, "sec").await;
        s.put_secret(r.id, "token", b"sealed-1", false)
            .await
            .expect("put");
        s.put_secret(r.id, "token", b"sealed-2", true)
            .await
            .expect("put");
        let all = s.secrets(r.id).await.expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].sealed, b"sealed-2");
        assert!(all[0].pull_request);
        assert!(s.delete_secret(r.id, "token").await.expect("delete"));
        assert!(s.secrets(r.id).await.expect("list").is_empty());
    }
}
