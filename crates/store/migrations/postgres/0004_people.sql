-- People and permissions (PostgreSQL); twin of ../sqlite/0004_people.sql, column for column.
-- Disabled accounts keep their rows (builds name them) but cannot log in.
ALTER TABLE users ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE;

-- The user who added a repository; NULL once that user is deleted (site admins still manage it).
ALTER TABLE repos ADD COLUMN owner_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL;

-- Members of a repository and their role: read, write or admin.
CREATE TABLE repo_members (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo_id BIGINT NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created BIGINT NOT NULL,
    UNIQUE (repo_id, user_id)
);
CREATE INDEX repo_members_user ON repo_members (user_id);

-- Browser sessions: the SHA-256 of the cookie's value, and the CSRF token handed out with it.
CREATE TABLE sessions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_hash TEXT NOT NULL UNIQUE,
    csrf_token TEXT NOT NULL,
    created BIGINT NOT NULL,
    expires BIGINT NOT NULL
);

-- Organisation secrets (Drone's org secrets): seen by builds of every repository `org/*`.
CREATE TABLE org_secrets (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    pull_request BOOLEAN NOT NULL DEFAULT FALSE,
    created BIGINT NOT NULL,
    UNIQUE (org, name)
);

-- Remote runners, each with its own token (only the SHA-256 is kept).
CREATE TABLE runners (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created BIGINT NOT NULL,
    last_seen BIGINT NOT NULL DEFAULT 0
);
