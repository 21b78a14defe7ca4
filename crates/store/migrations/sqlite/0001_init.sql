-- Skiff's first schema (SQLite). Timestamps are unix milliseconds; the PostgreSQL twin is in
-- ../postgres/0001_init.sql and must stay column-for-column the same.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created BIGINT NOT NULL
);

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE repos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    git_url TEXT NOT NULL,
    config_path TEXT NOT NULL DEFAULT '.drone.yml',
    default_branch TEXT NOT NULL DEFAULT 'main',
    trusted INTEGER NOT NULL DEFAULT 0,
    timeout_secs BIGINT NOT NULL DEFAULT 3600,
    visibility TEXT NOT NULL DEFAULT 'private',
    fork_pr_secrets INTEGER NOT NULL DEFAULT 0,
    webhook_secret TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    build_counter BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    event TEXT NOT NULL,
    action TEXT NOT NULL DEFAULT '',
    git_ref TEXT NOT NULL,
    branch TEXT NOT NULL DEFAULT '',
    target_branch TEXT NOT NULL DEFAULT '',
    sha TEXT NOT NULL,
    before_sha TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    author TEXT NOT NULL DEFAULT '',
    author_email TEXT NOT NULL DEFAULT '',
    fork INTEGER NOT NULL DEFAULT 0,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    delivery_id TEXT,
    created BIGINT NOT NULL,
    started BIGINT NOT NULL DEFAULT 0,
    finished BIGINT NOT NULL DEFAULT 0,
    UNIQUE (repo_id, number),
    UNIQUE (repo_id, delivery_id)
);

CREATE TABLE stages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    build_id BIGINT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    os TEXT NOT NULL,
    arch TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '',
    depends_on TEXT NOT NULL DEFAULT '[]',
    on_success INTEGER NOT NULL DEFAULT 1,
    on_failure INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_token TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    started BIGINT NOT NULL DEFAULT 0,
    finished BIGINT NOT NULL DEFAULT 0,
    UNIQUE (build_id, number)
);
CREATE INDEX stages_queue ON stages (status, id);

CREATE TABLE steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stage_id BIGINT NOT NULL REFERENCES stages(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code BIGINT NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    started BIGINT NOT NULL DEFAULT 0,
    finished BIGINT NOT NULL DEFAULT 0,
    UNIQUE (stage_id, number)
);

CREATE TABLE logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    step_id BIGINT NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
    pos BIGINT NOT NULL,
    line TEXT NOT NULL,
    time_secs BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX logs_step ON logs (step_id, pos);

CREATE TABLE secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    sealed BLOB NOT NULL,
    pull_request INTEGER NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    UNIQUE (repo_id, name)
);
