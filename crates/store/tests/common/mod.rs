//! The backends every store test runs on: SQLite in a temporary directory always, PostgreSQL
//! when `SKIFF_TEST_DATABASE_URL` is set (`eval "$(scripts/postgres-testenv up)"`). With CI=true
//! a missing PostgreSQL is a failure, not a skip.

use skiff_store::{NewBuild, NewRepo, NewStage, Repo, Store};

pub struct Backend {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
}

pub async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Store::open_sqlite(&dir.path().join("skiff.db"))
        .await
        .expect("open sqlite");
    let mut all = vec![Backend {
        store: sqlite,
        _dir: Some(dir),
    }];
    match std::env::var("SKIFF_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let pg = Store::fresh_postgres(&url).await.expect("connect postgres");
            all.push(Backend {
                store: pg,
                _dir: None,
            });
        }
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("SKIFF_TEST_DATABASE_URL is not set; run scripts/postgres-testenv up");
            }
            eprintln!("skipping PostgreSQL: SKIFF_TEST_DATABASE_URL is not set");
        }
    }
    all
}

pub async fn repo(store: &Store, name: &str) -> Repo {
    store
        .create_repo(&NewRepo {
            owner: "acme".into(),
            name: name.into(),
            git_url: "/nowhere".into(),
            config_path: ".drone.yml".into(),
            default_branch: "main".into(),
            trusted: false,
            timeout_secs: 60,
            visibility: "private".into(),
            fork_pr_secrets: false,
            webhook_secret: "s3cret".into(),
            hosted: false,
        })
        .await
        .expect("create repo")
}

pub fn stage(name: &str, deps: &[&str]) -> NewStage {
    NewStage {
        name: name.into(),
        kind: "exec".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        labels: String::new(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        on_success: true,
        on_failure: false,
        steps: vec!["one".into(), "two".into()],
        concurrency: 0,
    }
}

pub fn build(repo: &Repo, delivery: Option<&str>, stages: Vec<NewStage>) -> NewBuild {
    NewBuild {
        repo_id: repo.id,
        event: "push".into(),
        git_ref: "refs/heads/main".into(),
        branch: "main".into(),
        sha: "abc".into(),
        delivery_id: delivery.map(String::from),
        status: "pending".into(),
        stages,
        ..Default::default()
    }
}
