-- Gates (PostgreSQL); twin of ../sqlite/0003_gates.sql. Repository settings that decide whether
-- an event makes a build, whether the build waits for approval and how many of its stages may
-- run at once; stages carry their repository and pipeline concurrency limit so the claim
-- statement can count running stages without a join.
ALTER TABLE repos ADD COLUMN approval TEXT NOT NULL DEFAULT 'forks';
ALTER TABLE repos ADD COLUMN throttle BIGINT NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN ignore_forks BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE repos ADD COLUMN ignore_pull_requests BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE repos ADD COLUMN cancel_pulls BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE repos ADD COLUMN cancel_push BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE stages ADD COLUMN repo_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stages ADD COLUMN concurrency BIGINT NOT NULL DEFAULT 0;
UPDATE stages SET repo_id = (SELECT builds.repo_id FROM builds WHERE builds.id = stages.build_id);
CREATE INDEX stages_repo_status ON stages (repo_id, status);
