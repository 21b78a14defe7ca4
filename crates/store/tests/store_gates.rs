//! Gates in the store, on both backends: blocked builds no runner claims until approved,
//! declined builds, the repository throttle and the pipeline concurrency limit enforced by the
//! claim statement (also under concurrent claims), settings updates and superseded builds.

mod common;

use common::{backends, build, repo, stage};
use skiff_store::{Claim, RepoSettings, RunnerSpec, Store, status};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn runner(name: &str) -> RunnerSpec {
    RunnerSpec {
        name: name.into(),
        os: "linux".into(),
        arch: "amd64".into(),
        kinds: vec!["exec".into(), "docker".into()],
        labels: String::new(),
    }
}

async fn claim(s: &Store) -> Option<Claim> {
    s.claim(&runner("r"), LEASE).await.expect("claim")
}

async fn finish(s: &Store, c: &Claim) {
    assert!(
        s.finish_stage(c.stage.id, &c.lease_token, status::SUCCESS, "")
            .await
            .expect("finish")
    );
}

#[tokio::test]
async fn blocked_build_waits_for_approval_and_decline_ends_it() {
    for b in backends().await {
        let s = &b.store;
        let be = s.backend();
        let r = repo(s, "gated").await;
        let mut blocked = build(&r, None, vec![stage("ci", &[]), stage("after", &["ci"])]);
        blocked.status = status::BLOCKED.into();
        let first = s
            .create_build(&blocked)
            .await
            .expect("create")
            .expect("build");
        assert_eq!(first.status, status::BLOCKED);
        let stages = s.stages(first.id).await.expect("stages");
        assert!(
            stages.iter().all(|st| st.status == status::BLOCKED),
            "{be}: {stages:?}"
        );
        assert!(
            claim(s).await.is_none(),
            "{be}: a blocked stage is not claimable"
        );

        assert!(s.approve_build(first.id).await.expect("approve"));
        assert!(
            !s.approve_build(first.id).await.expect("approve"),
            "only once"
        );
        let stages = s.stages(first.id).await.expect("stages");
        assert_eq!(stages[0].status, status::PENDING, "{be}");
        assert_eq!(
            stages[1].status,
            status::WAITING,
            "{be}: keeps its dependency"
        );
        let c = claim(s).await.expect("approved stage is claimable");
        assert_eq!(c.stage.id, stages[0].id);
        finish(s, &c).await;
        let c = claim(s).await.expect("the dependent stage follows");
        finish(s, &c).await;
        let done = s.build_by_id(first.id).await.expect("get").expect("build");
        assert_eq!(done.status, status::SUCCESS, "{be}");

        let second = s
            .create_build(&blocked)
            .await
            .expect("create")
            .expect("build");
        assert!(s.decline_build(second.id).await.expect("decline"));
        assert!(
            !s.approve_build(second.id).await.expect("approve"),
            "declined stays declined"
        );
        assert!(!s.decline_build(second.id).await.expect("decline"));
        let declined = s.build_by_id(second.id).await.expect("get").expect("build");
        assert_eq!(declined.status, status::DECLINED, "{be}");
        assert!(declined.finished > 0);
        let stages = s.stages(second.id).await.expect("stages");
        assert!(
            stages.iter().all(|st| st.status == status::DECLINED),
            "{stages:?}"
        );
        assert!(claim(s).await.is_none());

        // Cancelling a blocked build skips its stages.
        let third = s
            .create_build(&blocked)
            .await
            .expect("create")
            .expect("build");
        s.cancel_build(&third).await.expect("cancel");
        assert!(!s.approve_build(third.id).await.expect("approve"));
        let stages = s.stages(third.id).await.expect("stages");
        assert!(
            stages.iter().all(|st| st.status == status::SKIPPED),
            "{stages:?}"
        );
        assert!(claim(s).await.is_none());
    }
}

#[tokio::test]
async fn repository_throttle_holds_stages_until_a_slot_frees() {
    for b in backends().await {
        let s = &b.store;
        let be = s.backend();
        let r = repo(s, "throttled").await;
        let other = repo(s, "free").await;
        let updated = s
            .update_repo(
                r.id,
                &RepoSettings {
                    throttle: Some(1),
                    ..Default::default()
                },
            )
            .await
            .expect("update")
            .expect("repo");
        assert_eq!(updated.throttle, 1);
        let one = s
            .create_build(&build(&r, None, vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("build");
        let two = s
            .create_build(&build(&r, None, vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("build");
        let elsewhere = s
            .create_build(&build(&other, None, vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("build");

        let first = claim(s).await.expect("first stage");
        assert_eq!(first.stage.build_id, one.id, "{be}");
        let next = claim(s).await.expect("another repository is not throttled");
        assert_eq!(
            next.stage.build_id, elsewhere.id,
            "{be}: skipped the throttled stage"
        );
        assert!(claim(s).await.is_none(), "{be}: throttle 1 reached");
        let waiting = s.stages(two.id).await.expect("stages");
        assert_eq!(waiting[0].status, status::PENDING, "stays pending");

        finish(s, &first).await;
        let second = claim(s).await.expect("a slot freed");
        assert_eq!(second.stage.build_id, two.id, "{be}");

        // Unlimited again: nothing held back.
        s.update_repo(
            r.id,
            &RepoSettings {
                throttle: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("update");
        let three = s
            .create_build(&build(&r, None, vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("build");
        let third = claim(s).await.expect("throttle 0 is unlimited");
        assert_eq!(third.stage.build_id, three.id);
    }
}

#[tokio::test]
async fn pipeline_concurrency_limit_counts_stages_of_the_same_name() {
    for b in backends().await {
        let s = &b.store;
        let be = s.backend();
        let r = repo(s, "deploys").await;
        let limited = || {
            let mut st = stage("deploy", &[]);
            st.concurrency = 1;
            st
        };
        let one = s
            .create_build(&build(&r, None, vec![limited()]))
            .await
            .expect("create")
            .expect("build");
        let two = s
            .create_build(&build(&r, None, vec![limited(), stage("test", &[])]))
            .await
            .expect("create")
            .expect("build");

        let first = claim(s).await.expect("first deploy");
        assert_eq!(first.stage.build_id, one.id);
        let test = claim(s).await.expect("another pipeline is not limited");
        assert_eq!(test.stage.name, "test", "{be}");
        assert!(claim(s).await.is_none(), "{be}: one deploy at a time");

        finish(s, &first).await;
        let second = claim(s).await.expect("the second deploy after the first");
        assert_eq!(
            (second.stage.build_id, second.stage.name.as_str()),
            (two.id, "deploy")
        );
    }
}

/// Many runners claiming at once never exceed a limit. Each stage needs its own runner (a
/// distinct label), so the concurrent claims aim at different rows and only the serialized
/// count (SQLite's write lock, PostgreSQL's advisory lock) keeps them within the limit; the
/// row re-check alone would let every one of them through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_never_exceed_the_limits() {
    const RUNNERS: usize = 8;
    for b in backends().await {
        let s = b.store.clone();
        let be = s.backend();
        let throttled = repo(&s, "race").await;
        s.update_repo(
            throttled.id,
            &RepoSettings {
                throttle: Some(2),
                ..Default::default()
            },
        )
        .await
        .expect("update");
        let limited = repo(&s, "race-limited").await;
        for round in 0..3 {
            for slot in 0..RUNNERS {
                let mut ci = stage("ci", &[]);
                ci.labels = format!("slot={slot}");
                s.create_build(&build(&throttled, None, vec![ci]))
                    .await
                    .expect("create");
                let mut deploy = stage("deploy", &[]);
                deploy.labels = format!("slot={slot}");
                deploy.concurrency = 1;
                s.create_build(&build(&limited, None, vec![deploy]))
                    .await
                    .expect("create");
            }
            let mut claims = tokio::task::JoinSet::new();
            for slot in 0..RUNNERS {
                for _ in 0..2 {
                    let s = s.clone();
                    claims.spawn(async move {
                        let mut r = runner(&format!("r{slot}"));
                        r.labels = format!("slot={slot}");
                        s.claim(&r, LEASE).await.expect("claim")
                    });
                }
            }
            let mut got = Vec::new();
            while let Some(c) = claims.join_next().await {
                got.extend(c.expect("join"));
            }
            let ci = got.iter().filter(|c| c.stage.name == "ci").count();
            let deploys = got.iter().filter(|c| c.stage.name == "deploy").count();
            assert_eq!(ci, 2, "{be} round {round}: throttle 2");
            assert_eq!(deploys, 1, "{be} round {round}: concurrency 1");
            // Finish everything, also what the limits held back, before the next round.
            for c in &got {
                finish(&s, c).await;
            }
            for repo_id in [throttled.id, limited.id] {
                for built in s.builds(repo_id, 100).await.expect("builds") {
                    if !status::is_done(&built.status) {
                        s.cancel_build(&built).await.expect("cancel");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn settings_update_only_the_given_fields() {
    for b in backends().await {
        let s = &b.store;
        let r = repo(s, "settings").await;
        assert_eq!(
            r.approval, "forks",
            "default: pull requests from forks need approval"
        );
        assert_eq!(r.throttle, 0);
        assert!(!r.ignore_forks && !r.ignore_pull_requests && !r.cancel_pulls && !r.cancel_push);
        let updated = s
            .update_repo(
                r.id,
                &RepoSettings {
                    approval: Some("all".into()),
                    ignore_forks: Some(true),
                    cancel_push: Some(true),
                    timeout_secs: Some(90),
                    active: Some(false),
                    ..Default::default()
                },
            )
            .await
            .expect("update")
            .expect("repo");
        assert_eq!(updated.approval, "all");
        assert!(updated.ignore_forks && updated.cancel_push && !updated.active);
        assert!(!updated.ignore_pull_requests && !updated.cancel_pulls);
        assert_eq!(updated.timeout_secs, 90);
        assert_eq!(updated.config_path, r.config_path, "untouched");
        assert_eq!(updated.visibility, r.visibility);
        let again = s
            .update_repo(
                r.id,
                &RepoSettings {
                    ignore_forks: Some(false),
                    ..Default::default()
                },
            )
            .await
            .expect("update")
            .expect("repo");
        assert!(!again.ignore_forks && again.cancel_push, "others kept");
        assert!(
            s.update_repo(999_999, &RepoSettings::default())
                .await
                .expect("update")
                .is_none()
        );
    }
}

#[tokio::test]
async fn newer_build_of_the_same_ref_supersedes_pending_ones() {
    for b in backends().await {
        let s = &b.store;
        let r = repo(s, "cancel").await;
        let one = s
            .create_build(&build(&r, None, vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("build");
        let mut blocked = build(&r, None, vec![stage("ci", &[])]);
        blocked.status = status::BLOCKED.into();
        let two = s
            .create_build(&blocked)
            .await
            .expect("create")
            .expect("build");
        let mut other_branch = build(&r, None, vec![stage("ci", &[])]);
        other_branch.git_ref = "refs/heads/other".into();
        s.create_build(&other_branch).await.expect("create");
        let three = s
            .create_build(&build(&r, None, vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("build");
        let old: Vec<i64> = s
            .superseded_builds(&three, false)
            .await
            .expect("superseded")
            .iter()
            .map(|b| b.number)
            .collect();
        assert_eq!(old, [one.number, two.number], "{}", s.backend());
        // A running build is not superseded, unless running ones are asked for too.
        let c = claim(s).await.expect("claim");
        assert_eq!(c.stage.build_id, one.id);
        let numbers = |builds: Vec<skiff_store::Build>| -> Vec<i64> {
            builds.iter().map(|b| b.number).collect()
        };
        let old = s
            .superseded_builds(&three, false)
            .await
            .expect("superseded");
        assert_eq!(numbers(old), [two.number]);
        let old = s.superseded_builds(&three, true).await.expect("superseded");
        assert_eq!(numbers(old), [one.number, two.number]);
    }
}
