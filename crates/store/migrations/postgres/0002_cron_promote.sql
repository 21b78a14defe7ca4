-- Promotions and cron (PostgreSQL); twin of ../sqlite/0002_cron_promote.sql.
ALTER TABLE builds ADD COLUMN deploy_to TEXT NOT NULL DEFAULT '';
ALTER TABLE builds ADD COLUMN cron TEXT NOT NULL DEFAULT '';

CREATE TABLE crons (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    expr TEXT NOT NULL,
    branch TEXT NOT NULL,
    next_run BIGINT NOT NULL,
    created BIGINT NOT NULL,
    UNIQUE (repo_id, name)
);
CREATE INDEX crons_due ON crons (next_run);
