//! Releasing a stage (a runner shutting down) on both backends: with live step status the
//! steps had been recorded `running`; the released stage goes back to the queue with its steps
//! pending and its lines gone, and only the lease holder can release it.

mod common;

use common::{backends, build, repo, stage};
use skiff_store::{RunnerSpec, status};
use std::time::Duration;

fn runner() -> RunnerSpec {
    RunnerSpec {
        name: "r".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        kinds: vec!["exec".into()],
        labels: String::new(),
    }
}

#[tokio::test]
async fn release_forgets_live_steps_for_the_lease_holder_only() {
    for b in backends().await {
        let s = &b.store;
        let r = repo(s, "release").await;
        s.create_build(&build(&r, None, vec![stage("ci", &[])]))
            .await
            .expect("create")
            .expect("build");
        let lease = Duration::from_secs(30);
        let claim = s
            .claim(&runner(), lease)
            .await
            .expect("claim")
            .expect("a stage");
        let id = claim.stage.id;
        let token = claim.lease_token.as_str();
        assert!(
            s.update_step(id, token, 1, status::RUNNING, 0, "", 1_000, 0)
                .await
                .expect("step")
        );
        s.append_stage_logs(id, 1, &[(0, "half way".into(), 0)])
            .await
            .expect("logs");

        // Someone else's token releases nothing and resets nothing.
        assert!(!s.release_stage(id, "not-the-token").await.expect("release"));
        let steps = s.steps(id).await.expect("steps");
        assert_eq!(steps[0].status, status::RUNNING, "{}", s.backend());
        assert_eq!(s.logs(steps[0].id, 0).await.expect("logs").len(), 1);

        assert!(s.release_stage(id, token).await.expect("release"));
        let stage = s.stage(id).await.expect("stage").expect("exists");
        assert_eq!(stage.status, status::PENDING);
        let steps = s.steps(id).await.expect("steps");
        assert!(
            steps
                .iter()
                .all(|st| st.status == status::PENDING && st.started == 0),
            "{steps:?} ({})",
            s.backend()
        );
        assert!(s.logs(steps[0].id, 0).await.expect("logs").is_empty());

        // The old token writes nothing any more once another runner holds the stage.
        let again = s
            .claim(&runner(), lease)
            .await
            .expect("claim")
            .expect("the released stage");
        assert_eq!(again.stage.id, id);
        assert!(
            !s.update_step(id, token, 1, status::SUCCESS, 0, "", 1, 2)
                .await
                .expect("step")
        );
    }
}
