//! Cron schedules: Drone's six-field expressions (seconds first, weekdays 0–6 with Sunday 0)
//! or `@hourly`, `@daily`…, parsed with `croner` (research/rust-stack.md §14). A scheduler task
//! looks for due jobs every `cron_interval`; each run is claimed by moving the job's next run
//! time with a compare-and-set, so several replicas fire it once. A run builds the head of the
//! job's branch as a `cron` event (`DRONE_CRON` = the job's name; `trigger: cron:` matches it).

use crate::builds::{self, Event, Outcome};
use crate::{Error, Shared};
use chrono::{TimeZone, Utc};
use croner::parser::{CronParser, Seconds};
use tokio_util::sync::CancellationToken;

/// The first run of `expr` strictly after `after_ms` (unix ms).
pub(crate) fn next_run(expr: &str, after_ms: i64) -> Result<i64, Error> {
    let bad = |reason: String| Error::BadRequest(format!("cron expression `{expr}`: {reason}"));
    let trimmed = expr.trim();
    let parser = if trimmed.starts_with('@') {
        CronParser::builder().build()
    } else {
        CronParser::builder().seconds(Seconds::Required).build()
    };
    let cron = parser.parse(trimmed).map_err(|e| bad(e.to_string()))?;
    let after = Utc
        .timestamp_millis_opt(after_ms)
        .single()
        .ok_or_else(|| bad("time out of range".into()))?;
    let next = cron
        .find_next_occurrence(&after, false)
        .map_err(|e| bad(e.to_string()))?;
    Ok(next.timestamp_millis())
}

pub(crate) fn spawn(state: Shared, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(state.config.cron_interval) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(error) = fire_due(&state).await {
                tracing::warn!(%error, "cron scheduler");
            }
        }
    })
}

async fn fire_due(state: &Shared) -> Result<(), Error> {
    let now = skiff_store::now_ms();
    for job in state.store.due_crons(now).await? {
        let next = match next_run(&job.expr, now) {
            Ok(next) => next,
            // An expression that no longer parses: push it a day out rather than spin.
            Err(_) => now + 86_400_000,
        };
        if !state.store.advance_cron(job.id, job.next_run, next).await? {
            continue;
        }
        let Some(repo) = state.store.repo_by_id(job.repo_id).await? else {
            continue;
        };
        let git_ref = format!("refs/heads/{}", job.branch);
        let sha = match state.git.resolve(&repo, &git_ref).await {
            Ok(sha) => sha,
            Err(error) => {
                tracing::warn!(repo = %repo.slug(), cron = %job.name, %error, "cron: cannot resolve the branch");
                continue;
            }
        };
        let event = Event {
            event: "cron".into(),
            git_ref,
            branch: job.branch.clone(),
            target_branch: job.branch.clone(),
            sha,
            message: format!("cron: {}", job.name),
            author: "cron".into(),
            cron: job.name.clone(),
            ..Default::default()
        };
        // The job id and run time make redelivery-proof ids: a run never builds twice.
        let delivery = format!("cron:{}:{}", job.id, job.next_run);
        match builds::create(state, &repo, event, Some(delivery)).await? {
            Outcome::Created(build) => {
                tracing::info!(repo = %repo.slug(), cron = %job.name, number = build.number, "cron build")
            }
            Outcome::Duplicate => {}
            Outcome::Skipped(reason) => {
                tracing::info!(repo = %repo.slug(), cron = %job.name, %reason, "cron: no build")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::next_run;

    #[test]
    fn drone_style_expressions() {
        // 2026-01-01T00:00:00Z is a Thursday.
        let start = 1_767_225_600_000;
        assert_eq!(
            next_run("0 0 * * * *", start).expect("hourly"),
            start + 3_600_000
        );
        assert_eq!(
            next_run("*/10 * * * * *", start).expect("10s"),
            start + 10_000
        );
        assert_eq!(
            next_run("@daily", start).expect("daily"),
            start + 86_400_000
        );
        // Sunday is 0: the next Sunday midnight is three days later.
        assert_eq!(
            next_run("0 0 0 * * 0", start).expect("sunday"),
            start + 3 * 86_400_000
        );
        assert!(
            next_run("0 0 * * *", start).is_err(),
            "five fields lack seconds"
        );
        assert!(next_run("bogus", start).is_err());
    }
}
