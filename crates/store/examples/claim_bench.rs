//! Claims per second on the durable queue (bench/server/run.sh, bench/RESULTS.md "CI server").
//!
//! Fills a fresh database with `--stages` pending stages through the store's public API
//! (`create_build`), then lets K concurrent claimers (`Store::claim`, each its own runner name)
//! take them all, and prints one line per backend and K. Afterwards it checks that every stage
//! was claimed exactly once: no stage id handed out twice, none left over, and each row still
//! holds the lease token of the one claim that got it (a second claim would have replaced it).
//! Any breach exits non-zero.
//!
//!   cargo run --release -p skiff-store --example claim_bench -- \
//!       [--stages 1000] [--per-build 1] [--claimers 1,4,16] [--backends sqlite,postgres]
//!
//! PostgreSQL needs `SKIFF_TEST_DATABASE_URL` (`scripts/postgres-testenv up`); each run makes
//! its own database on that server and drops it afterwards.

use skiff_store::{Claim, NewBuild, NewRepo, NewStage, RunnerSpec, Store, status};
use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Long enough that no lease expires during a run (an expired lease would be claimed again).
const LEASE: Duration = Duration::from_secs(600);
/// A run that has not claimed everything by then is a failure, not a slow result.
const DEADLINE: Duration = Duration::from_secs(300);

struct Options {
    stages: usize,
    per_build: usize,
    claimers: Vec<usize>,
    backends: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        stages: 1000,
        per_build: 1,
        claimers: vec![1, 4, 16],
        backends: vec!["sqlite".into(), "postgres".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: `{v}` is not a positive number"))
        };
        match flag.as_str() {
            "--stages" => options.stages = number(&value)?,
            "--per-build" => options.per_build = number(&value)?,
            "--claimers" => {
                options.claimers = value
                    .split(',')
                    .map(number)
                    .collect::<Result<Vec<_>, _>>()?
            }
            "--backends" => options.backends = value.split(',').map(String::from).collect(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

/// One claimer's view: what it got and how long each claim took.
#[derive(Default)]
struct Claimed {
    claims: Vec<Claim>,
    latencies: Vec<Duration>,
    /// Claims that answered "nothing" while stages were still unclaimed.
    empty: usize,
}

struct Outcome {
    elapsed: Duration,
    latencies: Vec<Duration>,
    empty: usize,
}

fn runner(index: usize) -> RunnerSpec {
    RunnerSpec {
        name: format!("claimer-{index}"),
        os: "linux".into(),
        arch: "amd64".into(),
        kinds: vec!["docker".into(), "exec".into()],
        labels: String::new(),
    }
}

/// Creates the repository and `stages` pending stages; returns their ids.
async fn fill(store: &Store, stages: usize, per_build: usize) -> Result<Vec<i64>, String> {
    let repo = store
        .create_repo(&NewRepo {
            owner: "bench".into(),
            name: "queue".into(),
            git_url: "/nowhere".into(),
            config_path: ".drone.yml".into(),
            default_branch: "main".into(),
            trusted: false,
            timeout_secs: 3600,
            visibility: "private".into(),
            fork_pr_secrets: false,
            webhook_secret: "bench".into(),
            hosted: false,
        })
        .await
        .map_err(|e| format!("create repo: {e}"))?;
    let mut ids = Vec::with_capacity(stages);
    let mut made = 0;
    while made < stages {
        let count = per_build.min(stages - made);
        let new = NewBuild {
            repo_id: repo.id,
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            branch: "main".into(),
            sha: format!("{made:040x}"),
            delivery_id: Some(format!("bench-{made}")),
            status: status::PENDING.into(),
            params: "{}".into(),
            stages: (0..count)
                .map(|i| NewStage {
                    name: format!("stage-{i}"),
                    kind: "docker".into(),
                    os: "linux".into(),
                    arch: "amd64".into(),
                    labels: String::new(),
                    depends_on: Vec::new(),
                    on_success: true,
                    on_failure: false,
                    concurrency: 0,
                    steps: vec!["build".into(), "test".into()],
                })
                .collect(),
            ..Default::default()
        };
        let build = store
            .create_build(&new)
            .await
            .map_err(|e| format!("create build: {e}"))?
            .ok_or("create build: refused as a duplicate")?;
        let rows = store
            .stages(build.id)
            .await
            .map_err(|e| format!("list stages: {e}"))?;
        if rows.len() != count || rows.iter().any(|s| s.status != status::PENDING) {
            return Err(format!(
                "build {} has {} stages, not {count} pending ones",
                build.number,
                rows.len()
            ));
        }
        ids.extend(rows.iter().map(|s| s.id));
        made += count;
    }
    Ok(ids)
}

/// K claimers take every stage; checks each was claimed exactly once.
async fn claim_all(store: &Store, expected: &[i64], claimers: usize) -> Result<Outcome, String> {
    let total = expected.len();
    let taken = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(claimers + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..claimers {
        let store = store.clone();
        let taken = taken.clone();
        let start = start.clone();
        tasks.spawn(async move {
            let spec = runner(index);
            let mut mine = Claimed::default();
            start.wait().await;
            let began = Instant::now();
            while taken.load(Ordering::SeqCst) < total {
                if began.elapsed() > DEADLINE {
                    return Err(format!(
                        "claimer {index}: not all stages claimed after {DEADLINE:?}"
                    ));
                }
                let t0 = Instant::now();
                match store.claim(&spec, LEASE).await {
                    Ok(Some(claim)) => {
                        mine.latencies.push(t0.elapsed());
                        mine.claims.push(claim);
                        taken.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(None) => {
                        mine.empty += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(e) => return Err(format!("claimer {index}: claim failed: {e}")),
                }
            }
            Ok(mine)
        });
    }
    start.wait().await;
    let began = Instant::now();
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.push(joined.map_err(|e| format!("claimer task: {e}"))??);
    }
    let elapsed = began.elapsed();

    // Exactly once: every id handed out once, the set equal to what was queued, and each row
    // still carrying the token of the claim that returned it.
    let mut tokens: BTreeMap<i64, String> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(total);
    let mut empty = 0;
    for claimed in all {
        empty += claimed.empty;
        latencies.extend(claimed.latencies);
        for claim in claimed.claims {
            if let Some(first) = tokens.insert(claim.stage.id, claim.lease_token) {
                return Err(format!(
                    "stage {} was claimed twice (first token {first})",
                    claim.stage.id
                ));
            }
        }
    }
    let queued: HashSet<i64> = expected.iter().copied().collect();
    let got: HashSet<i64> = tokens.keys().copied().collect();
    if got != queued {
        let missing = queued.difference(&got).count();
        let extra = got.difference(&queued).count();
        return Err(format!(
            "{} stages claimed of {total}: {missing} never claimed, {extra} not queued by this run",
            got.len()
        ));
    }
    for (id, token) in &tokens {
        let row = store
            .stage(*id)
            .await
            .map_err(|e| format!("read stage {id}: {e}"))?
            .ok_or_else(|| format!("stage {id} vanished"))?;
        if row.status != status::RUNNING || row.attempts != 1 || &row.lease_token != token {
            return Err(format!(
                "stage {id}: status {}, attempts {}, token {} (claimed with {token})",
                row.status, row.attempts, row.lease_token
            ));
        }
    }
    Ok(Outcome {
        elapsed,
        latencies,
        empty,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// A fresh store on `backend`, and for PostgreSQL the server's URL and the new database's URL
/// (to drop it afterwards).
async fn open(
    backend: &str,
    dir: &std::path::Path,
    run: usize,
) -> Result<(Store, Option<(String, String)>), String> {
    match backend {
        "sqlite" => {
            let store = Store::open_sqlite(&dir.join(format!("claims-{run}.db")))
                .await
                .map_err(|e| format!("open sqlite: {e}"))?;
            Ok((store, None))
        }
        "postgres" => {
            let server = std::env::var("SKIFF_TEST_DATABASE_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .ok_or("SKIFF_TEST_DATABASE_URL is not set (scripts/postgres-testenv up)")?;
            let url = Store::create_postgres_database(&server)
                .await
                .map_err(|e| format!("create database: {e}"))?;
            let store = Store::connect(&url)
                .await
                .map_err(|e| format!("connect postgres: {e}"))?;
            Ok((store, Some((server, url))))
        }
        other => Err(format!("unknown backend {other} (sqlite or postgres)")),
    }
}

/// Drops the benchmark's own database (its name is the path of `url`).
async fn drop_postgres(server: &str, url: &str) -> Result<(), String> {
    let name = url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .filter(|n| {
            n.starts_with("skiff_test_") && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .ok_or("cannot tell the database's name")?;
    let admin = sqlx::PgPool::connect(server)
        .await
        .map_err(|e| format!("connect postgres: {e}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .map_err(|e| format!("drop database {name}: {e}"))?;
    admin.close().await;
    Ok(())
}

async fn bench(options: &Options) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let mut run = 0;
    for backend in &options.backends {
        for &claimers in &options.claimers {
            run += 1;
            let (store, database) = open(backend, dir.path(), run).await?;
            let fill_began = Instant::now();
            let ids = fill(&store, options.stages, options.per_build).await?;
            let fill_time = fill_began.elapsed();
            let result = claim_all(&store, &ids, claimers).await;
            store.close().await;
            if let Some((server, url)) = &database {
                drop_postgres(server, url).await?;
            }
            let mut outcome = result.map_err(|e| format!("{backend}, {claimers} claimers: {e}"))?;
            outcome.latencies.sort();
            println!(
                "claims backend={backend} claimers={claimers} stages={} per_build={} \
                 seconds={:.3} claims_per_s={:.0} p50_ms={:.2} p99_ms={:.2} empty_answers={} \
                 fill_s={:.2} exactly_once=ok",
                ids.len(),
                options.per_build,
                outcome.elapsed.as_secs_f64(),
                ids.len() as f64 / outcome.elapsed.as_secs_f64(),
                percentile(&outcome.latencies, 0.5),
                percentile(&outcome.latencies, 0.99),
                outcome.empty,
                fill_time.as_secs_f64(),
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("claim_bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("claim_bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
