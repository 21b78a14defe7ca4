-- Skiff's first schema (PostgreSQL). Timestamps are unix milliseconds; the SQLite twin is in
-- ../sqlite/0001_init.sql and must stay column-for-column the same.
CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    created BIGINT NOT NULL
);

CREATE TABLE tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE repos (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    git_url TEXT NOT NULL,
    config_path TEXT NOT NULL DEFAULT '.drone.yml',
    default_branch TEXT NOT NULL DEFAULT 'main',
    trusted BOOLEAN NOT NULL DEFAULT FALSE,
    timeout_secs BIGINT NOT NULL DEFAULT 3600,
    visibility TEXT NOT NULL DEFAULT 'private',
    fork_pr_secrets BOOLEAN NOT NULL DEFAULT FALSE,
    webhook_secret TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    build_counter BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE builds (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    fork BOOLEAN NOT NULL DEFAULT FALSE,
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
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    build_id BIGINT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    os TEXT NOT NULL,
    arch TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '',
    depends_on TEXT NOT NULL DEFAULT '[]',
    on_success BOOLEAN NOT NULL DEFAULT TRUE,
    on_failure BOOLEAN NOT NULL DEFAULT FALSE,
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
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id BIGINT NOT NULL REFERENCES steps(id) ON DELETE CASCADE,
    pos BIGINT NOT NULL,
    line TEXT NOT NULL,
    time_secs BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX logs_step ON logs (step_id, pos);

CREATE TABLE secrets (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    pull_request BOOLEAN NOT NULL DEFAULT FALSE,
    created BIGINT NOT NULL,
    UNIQUE (repo_id, name)
);
